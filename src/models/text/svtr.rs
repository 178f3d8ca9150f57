//! The SVTR mixing blocks of the PP-OCRv4 recogniser's neck: pre-norm
//! transformer blocks over the line's column tokens (global attention with
//! `heads` heads, then a swish MLP), and the layer norm and linear layers
//! they are made of. Tokens are row-major `T × dim` host slices: a line has
//! a few dozen tokens, so plain loops plus the shared GEMM are enough.

use anyhow::{ensure, Result};

use super::weights::Weights;
use crate::models::ops::gemm::sgemm;

/// `x · sigmoid(x)` in place (Paddle's swish, beta 1).
pub(crate) fn swish(xs: &mut [f32]) {
    xs.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp());
}

/// `y = x·W + b` with `W` stored `[in, out]` (ONNX's MatMul layout).
pub(crate) struct Linear {
    w: Vec<f32>,
    b: Vec<f32>,
    pub(crate) inputs: usize,
    pub(crate) outputs: usize,
}

impl Linear {
    pub(crate) fn load(ws: &Weights, name: &str) -> Result<Self> {
        let w = ws.tensor(&format!("{name}.weight"))?;
        let (inputs, outputs) = w.dims2()?;
        let b = ws.vec(&format!("{name}.bias"))?;
        ensure!(b.len() == outputs, "{name}: bias length");
        Ok(Self {
            w: w.flatten_all()?.to_vec1()?,
            b,
            inputs,
            outputs,
        })
    }

    /// `rows` rows of `inputs` values in, `rows × outputs` out.
    pub(crate) fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.inputs, "linear input size");
        let mut y = vec![0f32; rows * self.outputs];
        for row in y.chunks_exact_mut(self.outputs) {
            row.copy_from_slice(&self.b);
        }
        sgemm(
            rows,
            self.outputs,
            self.inputs,
            x,
            self.inputs,
            &self.w,
            self.outputs,
            &mut y,
            self.outputs,
            true,
        );
        y
    }
}

/// Layer norm over the last axis, with its own epsilon (the export has
/// 1e-5 inside the blocks and 1e-6 after them).
pub(crate) struct LayerNorm {
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    pub(crate) fn load(ws: &Weights, name: &str) -> Result<Self> {
        let eps = ws.vec(&format!("{name}.eps"))?;
        ensure!(eps.len() == 1, "{name}: one epsilon");
        Ok(Self {
            w: ws.vec(&format!("{name}.weight"))?,
            b: ws.vec(&format!("{name}.bias"))?,
            eps: eps[0],
        })
    }

    pub(crate) fn forward(&self, x: &[f32]) -> Vec<f32> {
        let d = self.w.len();
        let mut y = x.to_vec();
        for row in y.chunks_exact_mut(d) {
            let mean = row.iter().sum::<f32>() / d as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.w).zip(&self.b) {
                *v = (*v - mean) * inv * w + b;
            }
        }
        y
    }
}

/// `x + proj(attention(norm1(x)))`, then `x + fc2(swish(fc1(norm2(x))))`.
pub(crate) struct SvtrBlock {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl SvtrBlock {
    pub(crate) fn load(ws: &Weights, name: &str, heads: usize) -> Result<Self> {
        let l = |s: &str| Linear::load(ws, &format!("{name}.{s}"));
        let block = Self {
            norm1: LayerNorm::load(ws, &format!("{name}.norm1"))?,
            qkv: l("qkv")?,
            proj: l("proj")?,
            norm2: LayerNorm::load(ws, &format!("{name}.norm2"))?,
            fc1: l("fc1")?,
            fc2: l("fc2")?,
            heads,
        };
        let dim = block.proj.outputs;
        ensure!(
            block.qkv.outputs == 3 * dim && dim.is_multiple_of(heads),
            "{name}: {dim} channels, {heads} heads, qkv {}",
            block.qkv.outputs
        );
        Ok(block)
    }

    /// `x` is `t × dim`, updated in place.
    pub(crate) fn forward(&self, x: &mut [f32], t: usize) {
        let dim = self.proj.outputs;
        let qkv = self.qkv.forward(&self.norm1.forward(x), t);
        let attn = self.attention(&qkv, t, dim);
        let y = self.proj.forward(&attn, t);
        x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
        let mut h = self.fc1.forward(&self.norm2.forward(x), t);
        swish(&mut h);
        let y = self.fc2.forward(&h, t);
        x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
    }

    /// Multi-head attention over all `t` tokens; `qkv` rows are
    /// `[q | k | v]`, each `heads × head_dim`. Output rows `heads × head_dim`.
    fn attention(&self, qkv: &[f32], t: usize, dim: usize) -> Vec<f32> {
        let hd = dim / self.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![0f32; t * dim];
        let mut p = vec![0f32; t];
        for h in 0..self.heads {
            let q = |i: usize| &qkv[i * 3 * dim + h * hd..i * 3 * dim + (h + 1) * hd];
            let k = |j: usize| &qkv[j * 3 * dim + dim + h * hd..j * 3 * dim + dim + (h + 1) * hd];
            let v = |j: usize| {
                &qkv[j * 3 * dim + 2 * dim + h * hd..j * 3 * dim + 2 * dim + (h + 1) * hd]
            };
            for i in 0..t {
                let qi = q(i);
                for (j, pj) in p.iter_mut().enumerate() {
                    *pj = scale * qi.iter().zip(k(j)).map(|(a, b)| a * b).sum::<f32>();
                }
                let max = p.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                p.iter_mut().for_each(|v| {
                    *v = (*v - max).exp();
                    sum += *v;
                });
                let o = &mut out[i * dim + h * hd..i * dim + (h + 1) * hd];
                for (j, pj) in p.iter().enumerate() {
                    let w = pj / sum;
                    o.iter_mut().zip(v(j)).for_each(|(a, b)| *a += w * b);
                }
            }
        }
        out
    }
}
