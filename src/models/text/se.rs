//! [`SqueezeExcite`] in the PP-OCR form: global average, 1×1 conv, ReLU,
//! 1×1 conv, hard-sigmoid (slope given), channels scaled in place.

use anyhow::{ensure, Result};
use rayon::prelude::*;

use super::weights::Weights;
use crate::models::ops::nhwc::Nhwc;

/// Squeeze-excite: global average → 1×1 conv → ReLU → 1×1 conv →
/// hard-sigmoid; the result scales the channels (`residual`: `x + x·se`).
pub(crate) struct SqueezeExcite {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    c: usize,
    r: usize,
    slope: f32,
    residual: bool,
}

impl SqueezeExcite {
    pub(crate) fn load(ws: &Weights, name: &str, slope: f32, residual: bool) -> Result<Self> {
        let w1 = ws.vec(&format!("{name}.conv1.weight"))?;
        let b1 = ws.vec(&format!("{name}.conv1.bias"))?;
        let w2 = ws.vec(&format!("{name}.conv2.weight"))?;
        let b2 = ws.vec(&format!("{name}.conv2.bias"))?;
        let r = b1.len();
        let c = b2.len();
        ensure!(w1.len() == r * c && w2.len() == r * c, "{name}: SE shapes");
        Ok(Self {
            w1,
            b1,
            w2,
            b2,
            c,
            r,
            slope,
            residual,
        })
    }

    pub(crate) fn forward(&self, x: &mut Nhwc) -> Result<()> {
        ensure!(x.c == self.c, "SE expects {} channels, got {}", self.c, x.c);
        let gates = self.gates(&channel_means(x));
        let c = x.c;
        x.data.par_chunks_mut(c * 256).for_each(|rows| {
            for px in rows.chunks_exact_mut(c) {
                px.iter_mut().zip(&gates).for_each(|(v, g)| *v *= g);
            }
        });
        Ok(())
    }

    /// The factor each channel is scaled by, given the channels' means.
    pub(crate) fn gates(&self, pooled: &[f32]) -> Vec<f32> {
        let hidden: Vec<f32> = (0..self.r)
            .map(|o| {
                let row = &self.w1[o * self.c..(o + 1) * self.c];
                (row.iter().zip(pooled).map(|(w, v)| w * v).sum::<f32>() + self.b1[o]).max(0.0)
            })
            .collect();
        (0..self.c)
            .map(|o| {
                let row = &self.w2[o * self.r..(o + 1) * self.r];
                let z = row.iter().zip(&hidden).map(|(w, v)| w * v).sum::<f32>() + self.b2[o];
                let g = (self.slope * z + 0.5).clamp(0.0, 1.0);
                if self.residual {
                    1.0 + g
                } else {
                    g
                }
            })
            .collect()
    }
}

/// Each channel's mean over the map (summed in f64).
pub(crate) fn channel_means(x: &Nhwc) -> Vec<f32> {
    let mut pooled = vec![0f64; x.c];
    for px in x.data.chunks_exact(x.c) {
        pooled.iter_mut().zip(px).for_each(|(s, v)| *s += *v as f64);
    }
    let n = (x.n * x.h * x.w) as f64;
    pooled.iter().map(|s| (s / n) as f32).collect()
}
