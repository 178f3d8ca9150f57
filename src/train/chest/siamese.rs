//! Patient re-identification network (Packhäuser et al. 2022), the attacker
//! the deformation is trained against and evaluated with. Two shared
//! ResNet-18-style branches (the paper uses ResNet-50; our data is tiny)
//! give 128-d sigmoid embeddings; a linear layer on |e1 − e2| gives the
//! "same patient" logit.
//!
//! Used only to train and judge the deformation, never by the gateway,
//! so it lives in `crate::train`.

use super::layers::{bn, conv, Stem};
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{linear, BatchNorm, Conv2d, Linear, Module, VarBuilder};

/// Embedding size of each branch.
pub const EMBED: usize = 128;

/// ResNet basic block: two 3×3 convolutions and a (projected) shortcut.
struct BasicBlock {
    c1: Conv2d,
    b1: BatchNorm,
    c2: Conv2d,
    b2: BatchNorm,
    proj: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let proj = if stride != 1 || cin != cout {
            Some((
                conv(cin, cout, 1, stride, vb.pp("pc"))?,
                bn(cout, vb.pp("pb"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            c1: conv(cin, cout, 3, stride, vb.pp("c1"))?,
            b1: bn(cout, vb.pp("b1"))?,
            c2: conv(cout, cout, 3, 1, vb.pp("c2"))?,
            b2: bn(cout, vb.pp("b2"))?,
            proj,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.b1.forward_t(&self.c1.forward(x)?, train)?.relu()?;
        let y = self.b2.forward_t(&self.c2.forward(&y)?, train)?;
        let s = match &self.proj {
            Some((c, b)) => b.forward_t(&c.forward(x)?, train)?,
            None => x.clone(),
        };
        (y + s)?.relu()
    }
}

/// ResNet-18 layout (stem 7×7/2 + max-pool 3/2, 4 stages × 2 blocks) with
/// stage widths w, 2w, 4w, 8w (w = 64 is the real ResNet-18).
pub struct ResNet18 {
    stem: Stem,
    blocks: Vec<BasicBlock>,
    fc: Linear,
}

impl ResNet18 {
    pub fn new(vb: VarBuilder, width: usize, out: usize) -> Result<Self> {
        let stem = Stem::new(width, &vb)?;
        let mut blocks = vec![];
        let mut cin = width;
        for stage in 0..4 {
            let cout = width << stage;
            let stride = if stage == 0 { 1 } else { 2 };
            blocks.push(BasicBlock::new(
                cin,
                cout,
                stride,
                vb.pp(format!("s{stage}.0")),
            )?);
            blocks.push(BasicBlock::new(
                cout,
                cout,
                1,
                vb.pp(format!("s{stage}.1")),
            )?);
            cin = cout;
        }
        let fc = linear(cin, out, vb.pp("fc"))?;
        Ok(Self { stem, blocks, fc })
    }

    /// N×1×S×S → N×out (raw, before any activation).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.stem.forward_t(x, train)?;
        for b in &self.blocks {
            x = b.forward_t(&x, train)?;
        }
        self.fc.forward(&x.mean((2, 3))?)
    }
}

/// The siamese re-identification network.
pub struct Siamese {
    branch: ResNet18,
    head: Linear,
}

impl Siamese {
    pub fn new(vb: VarBuilder, width: usize) -> Result<Self> {
        Ok(Self {
            branch: ResNet18::new(vb.pp("branch"), width, EMBED)?,
            head: linear(EMBED, 1, vb.pp("head"))?,
        })
    }

    /// Sigmoid embedding of each image, N×128.
    pub fn embed(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.branch.forward_t(x, train)?)
    }

    /// "Same patient" logit for each pair, shape N. Both images go through
    /// the branch in one batch so BatchNorm sees the same statistics.
    pub fn forward_t(&self, a: &Tensor, b: &Tensor, train: bool) -> Result<Tensor> {
        let n = a.dim(0)?;
        let e = self.embed(&Tensor::cat(&[a, b], 0)?, train)?;
        let d = (e.narrow(0, 0, n)? - e.narrow(0, n, n)?)?.abs()?;
        self.head.forward(&d)?.squeeze(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn siamese_is_symmetric_and_shaped() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let net = Siamese::new(vb, 4).unwrap();
        let a = Tensor::rand(0f32, 1f32, (3, 1, 32, 32), &Device::Cpu).unwrap();
        let b = Tensor::rand(0f32, 1f32, (3, 1, 32, 32), &Device::Cpu).unwrap();
        let l1: Vec<f32> = net.forward_t(&a, &b, false).unwrap().to_vec1().unwrap();
        let l2: Vec<f32> = net.forward_t(&b, &a, false).unwrap().to_vec1().unwrap();
        assert_eq!(l1.len(), 3);
        for (x, y) in l1.iter().zip(&l2) {
            assert!((x - y).abs() < 1e-5);
        }
    }
}
