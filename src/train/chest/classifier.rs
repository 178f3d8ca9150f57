//! Abnormality classifier that keeps the deformation useful: a compact
//! DenseNet (the paper uses DenseNet-121; ours has three dense blocks of
//! `layers` bottleneck layers with growth rate `growth`) with one sigmoid
//! output per finding.
//!
//! Used only to train and judge the deformation, never by the gateway,
//! so it lives in `crate::train`.

use super::layers::{bn, conv, Stem};
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{linear, BatchNorm, Conv2d, Linear, Module, VarBuilder};

/// BN-ReLU-conv1×1 (4·growth) - BN-ReLU-conv3×3 (growth), concatenated.
struct DenseLayer {
    b1: BatchNorm,
    c1: Conv2d,
    b2: BatchNorm,
    c2: Conv2d,
}

impl DenseLayer {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.c1.forward(&self.b1.forward_t(x, train)?.relu()?)?;
        let y = self.c2.forward(&self.b2.forward_t(&y, train)?.relu()?)?;
        Tensor::cat(&[x, &y], 1)
    }
}

/// BN-ReLU-conv1×1 (halving channels), then 2×2 average pooling.
struct Transition {
    b: BatchNorm,
    c: Conv2d,
}

/// Compact DenseNet-BC.
pub struct DenseNet {
    stem: Stem,
    blocks: Vec<Vec<DenseLayer>>,
    trans: Vec<Transition>,
    final_bn: BatchNorm,
    fc: Linear,
}

impl DenseNet {
    /// `outputs` findings; three blocks of `layers` layers, growth `growth`.
    pub fn new(vb: VarBuilder, outputs: usize, growth: usize, layers: usize) -> Result<Self> {
        let mut c = 2 * growth;
        let stem = Stem::new(c, &vb)?;
        let mut blocks = vec![];
        let mut trans = vec![];
        for b in 0..3 {
            let mut block = vec![];
            for l in 0..layers {
                let p = vb.pp(format!("block{b}.{l}"));
                block.push(DenseLayer {
                    b1: bn(c, p.pp("b1"))?,
                    c1: conv(c, 4 * growth, 1, 1, p.pp("c1"))?,
                    b2: bn(4 * growth, p.pp("b2"))?,
                    c2: conv(4 * growth, growth, 3, 1, p.pp("c2"))?,
                });
                c += growth;
            }
            blocks.push(block);
            if b < 2 {
                let p = vb.pp(format!("trans{b}"));
                trans.push(Transition {
                    b: bn(c, p.pp("b"))?,
                    c: conv(c, c / 2, 1, 1, p.pp("c"))?,
                });
                c /= 2;
            }
        }
        Ok(Self {
            stem,
            blocks,
            trans,
            final_bn: bn(c, vb.pp("final_bn"))?,
            fc: linear(c, outputs, vb.pp("fc"))?,
        })
    }

    /// N×1×S×S → N×outputs logits.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.stem.forward_t(x, train)?;
        for (i, block) in self.blocks.iter().enumerate() {
            for l in block {
                x = l.forward_t(&x, train)?;
            }
            if let Some(t) = self.trans.get(i) {
                x =
                    t.c.forward(&t.b.forward_t(&x, train)?.relu()?)?
                        .avg_pool2d(2)?;
            }
        }
        let x = self.final_bn.forward_t(&x, train)?.relu()?;
        self.fc.forward(&x.mean((2, 3))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn densenet_output_shape() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let net = DenseNet::new(vb, 14, 4, 2).unwrap();
        let x = Tensor::rand(0f32, 1f32, (2, 1, 32, 32), &Device::Cpu).unwrap();
        assert_eq!(net.forward_t(&x, true).unwrap().dims(), &[2, 14]);
    }
}
