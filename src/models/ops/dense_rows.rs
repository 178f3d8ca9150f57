//! Dense layers over rows of features on the CPU, and the two-way softmax of
//! the MTCNN heads they feed.

use super::act::{bias_act, Act};
use super::tensor::as_f32;
use candle_core::{Result, Tensor};

/// A dense layer with bias and optional PReLU over rows of features.
pub struct DenseRows {
    /// `(in, out)`.
    wmat: Tensor,
    bias: Vec<f32>,
    act: Act,
}

impl DenseRows {
    /// From PyTorch-layout weights `(out, in)`.
    pub fn new(weight: &Tensor, bias: &Tensor, alpha: Option<&Tensor>) -> Result<Self> {
        Ok(Self {
            wmat: as_f32(weight)?.t()?.contiguous()?,
            bias: as_f32(bias)?.to_vec1()?,
            act: match alpha {
                Some(a) => Act::PRelu(as_f32(a)?.to_vec1()?),
                None => Act::None,
            },
        })
    }

    /// `rows` is `n × in`, row-major; returns `n × out`.
    pub fn forward(&self, rows: Vec<f32>, n: usize) -> Result<Vec<f32>> {
        let d_in = self.wmat.dim(0)?;
        let x = Tensor::from_vec(rows, (n, d_in), self.wmat.device())?;
        let mut out = x.matmul(&self.wmat)?.flatten_all()?.to_vec1::<f32>()?;
        bias_act(&mut out, &self.bias, &self.act);
        Ok(out)
    }
}

/// Probability of class 1 from two logits (a two-way softmax).
pub fn softmax2(l0: f32, l1: f32) -> f32 {
    1.0 / (1.0 + (l0 - l1).exp())
}
