//! Identity encoder: a face crop to a unit-length identity code. Trained
//! only by reconstruction, it learns what the semantic map leaves out (who
//! the face is, its colouring); the swap loss then measures identity in its
//! space.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{linear, Conv2d, Linear, VarBuilder};

use super::layers::{conv3, conv_act};

pub struct IdentityEncoder {
    convs: Vec<Conv2d>,
    head: Linear,
}

/// Channels after each stride-2 convolution (size / 16 at the end).
const CHANNELS: [usize; 4] = [32, 64, 128, 128];

impl IdentityEncoder {
    pub fn new(id_dim: usize, vb: VarBuilder) -> Result<Self> {
        let mut convs = Vec::new();
        let mut cin = 3;
        for (i, &c) in CHANNELS.iter().enumerate() {
            convs.push(conv3(cin, c, 2, vb.pp(format!("conv{i}")))?);
            cin = c;
        }
        Ok(Self {
            convs,
            head: linear(cin, id_dim, vb.pp("head"))?,
        })
    }

    /// `N×3×S×S` in [-1, 1] to `N×id_dim`, each row of unit length.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut h = xs.clone();
        for c in &self.convs {
            h = conv_act(c, &h)?;
        }
        let pooled = h.mean(D::Minus1)?.mean(D::Minus1)?;
        normalize(&self.head.forward(&pooled)?)
    }
}

/// Rows scaled to unit length (codes live on the sphere, so a random
/// replacement code is a random unit vector).
pub fn normalize(z: &Tensor) -> Result<Tensor> {
    let norm = (z.sqr()?.sum_keepdim(D::Minus1)? + 1e-8)?.sqrt()?;
    z.broadcast_div(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn code_shape_and_unit_length() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let enc = IdentityEncoder::new(16, vb).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
        let z = enc.forward(&x).unwrap();
        assert_eq!(z.dims(), &[2, 16]);
        let n: Vec<f32> = z.sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
        for v in n {
            assert!((v - 1.0).abs() < 1e-4, "{v}");
        }
    }
}
