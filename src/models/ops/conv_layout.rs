//! The shape of a CPU convolution and its weights laid out for the NHWC
//! kernels ([`super::conv2d`], [`super::depthwise`], [`super::conv_direct`]),
//! apart from the kernels so that none of them depends on another.

use super::act::Act;
use candle_core::{bail, Result};

/// Geometry of a convolution, as PyTorch names it (symmetric padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for ConvSpec {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl ConvSpec {
    pub fn new(stride: usize, padding: usize) -> Self {
        Self {
            stride,
            padding,
            ..Default::default()
        }
    }

    pub fn with_groups(self, groups: usize) -> Self {
        Self { groups, ..self }
    }

    pub fn with_dilation(self, dilation: usize) -> Self {
        Self { dilation, ..self }
    }

    /// Output length along one axis for an input of `len` and kernel `k`.
    pub fn out_len(&self, len: usize, k: usize) -> Option<usize> {
        let span = self.dilation * (k - 1) + 1;
        let padded = len + 2 * self.padding;
        (padded >= span).then(|| (padded - span) / self.stride + 1)
    }
}

/// A forward convolution with fused bias and activation, weights prepared
/// for the NHWC kernels.
#[derive(Clone, Debug)]
pub struct Conv2dNhwc {
    pub(super) spec: ConvSpec,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) c_in: usize,
    pub(super) c_out: usize,
    /// Per group, a `(kh·kw·c_in/g) × (c_out/g)` matrix, rows ordered
    /// `(ky, kx, ci)` like the im2col rows; for depthwise layers `(ky, kx, c)`.
    pub(super) wmat: Vec<f32>,
    pub(super) bias: Vec<f32>,
    pub(super) act: Act,
}

impl Conv2dNhwc {
    /// From a PyTorch-layout weight `(c_out, c_in/g, kh, kw)` (flattened) and
    /// bias `(c_out)`.
    pub fn new(
        weight: &[f32],
        shape: [usize; 4],
        bias: Vec<f32>,
        spec: ConvSpec,
        act: Act,
    ) -> Result<Self> {
        let [c_out, cin_g, kh, kw] = shape;
        let g = spec.groups;
        if g == 0 || c_out % g != 0 || weight.len() != c_out * cin_g * kh * kw {
            bail!(
                "conv weight {shape:?} does not fit {g} groups / {} values",
                weight.len()
            );
        }
        if bias.len() != c_out {
            bail!("conv bias has {} values for {c_out} channels", bias.len());
        }
        if spec.stride == 0 || spec.dilation == 0 || kh == 0 || kw == 0 {
            bail!("conv with zero stride, dilation or kernel");
        }
        if let Act::PRelu(a) = &act {
            if a.len() != c_out {
                bail!("PReLU has {} slopes for {c_out} channels", a.len());
            }
        }
        let cout_g = c_out / g;
        let row = kh * kw * cin_g;
        let mut wmat = vec![0f32; g * row * cout_g];
        for co in 0..c_out {
            let (grp, o) = (co / cout_g, co % cout_g);
            for ci in 0..cin_g {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let r = (ky * kw + kx) * cin_g + ci;
                        wmat[grp * row * cout_g + r * cout_g + o] =
                            weight[((co * cin_g + ci) * kh + ky) * kw + kx];
                    }
                }
            }
        }
        if cin_g == 1 && g == c_out && g > 1 {
            // Depthwise: `(ky, kx, c)`, so each tap is one channel vector.
            for (co, filt) in weight.chunks_exact(kh * kw).enumerate() {
                for (t, v) in filt.iter().enumerate() {
                    wmat[t * c_out + co] = *v;
                }
            }
        }
        Ok(Self {
            spec,
            kh,
            kw,
            c_in: cin_g * g,
            c_out,
            wmat,
            bias,
            act,
        })
    }

    pub fn c_in(&self) -> usize {
        self.c_in
    }

    pub fn c_out(&self) -> usize {
        self.c_out
    }
}
