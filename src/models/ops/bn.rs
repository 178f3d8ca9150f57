//! Inference batch norm, folded into the preceding convolution at load time:
//! `γ·(conv(x) + b − μ)/√(σ²+ε) + β` is a convolution with weights scaled by
//! `γ/√(σ²+ε)` per output channel and a shifted bias, so at run time the
//! normalisation costs nothing.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// The running statistics and affine of an inference batch norm.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub eps: f32,
}

fn host(t: &Tensor) -> Result<Vec<f32>> {
    super::tensor::as_f32(t)?.flatten_all()?.to_vec1()
}

impl BatchNorm {
    /// From PyTorch / candle-nn names: `weight`, `bias`, `running_mean`,
    /// `running_var`.
    pub fn from_vb(c: usize, eps: f32, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            gamma: host(&vb.get(c, "weight")?)?,
            beta: host(&vb.get(c, "bias")?)?,
            mean: host(&vb.get(c, "running_mean")?)?,
            var: host(&vb.get(c, "running_var")?)?,
            eps,
        })
    }

    /// From the four tensors.
    pub fn new(
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f32,
    ) -> Result<Self> {
        Ok(Self {
            gamma: host(gamma)?,
            beta: host(beta)?,
            mean: host(mean)?,
            var: host(var)?,
            eps,
        })
    }

    /// Per-channel `(scale, shift)` with `bn(y) = scale·y + shift`.
    pub fn scale_shift(&self) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = self
            .gamma
            .iter()
            .zip(&self.var)
            .map(|(g, v)| g / (v + self.eps).sqrt())
            .collect();
        let shift = self
            .beta
            .iter()
            .zip(&self.mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        (scale, shift)
    }

    /// Fold into a conv's weights and bias. The weights are walked in runs
    /// of `per_channel` contiguous values that each belong to one output
    /// channel, cycling through the channels: a forward conv `(c_out,
    /// c_in/g, kh, kw)` has runs of `c_in/g·kh·kw`; a transposed conv `(c_in,
    /// c_out, kh, kw)` has runs of `kh·kw`.
    pub fn fold_into(&self, weight: &mut [f32], bias: &mut [f32], per_channel: usize) {
        let (scale, shift) = self.scale_shift();
        let c = scale.len();
        for (i, chunk) in weight.chunks_mut(per_channel).enumerate() {
            let s = scale[i % c];
            chunk.iter_mut().for_each(|v| *v *= s);
        }
        for ((b, s), t) in bias.iter_mut().zip(&scale).zip(&shift) {
            *b = *b * s + t;
        }
    }
}
