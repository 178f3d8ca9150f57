//! Transposed convolution in NHWC order on the CPU (the U-Net's and the DB
//! head's 2×2 / stride-2 up-sampling; any kernel, stride and padding).
//!
//! Why this form: every input pixel contributes `x·W` to a `kh×kw` patch of
//! outputs, so one GEMM `(pixels × c_in) · (c_in × kh·kw·c_out)` computes
//! all contributions at once, and a gather pass sums, for each output pixel,
//! the few contributions that land on it (no scatter, so the pass runs in
//! parallel over output rows without write conflicts). When the kernel is
//! the stride (2×2 / 2, no padding) each output pixel has exactly one
//! contribution, and each output row is one GEMM of an input row written
//! in place ([`ConvTranspose2dNhwc::forward_tiled`]).

use super::act::bias_act;
use super::gemm::{assume_written, par_written, rows_times, sgemm_uninit};
use super::nhwc::Nhwc;
use super::Act;
use candle_core::{bail, Result};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A transposed convolution (groups = 1) with fused bias and activation.
#[derive(Clone, Debug)]
pub struct ConvTranspose2dNhwc {
    kh: usize,
    kw: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
    dilation: usize,
    c_in: usize,
    c_out: usize,
    /// `c_in × (ky, kx, co)`.
    wmat: Vec<f32>,
    bias: Vec<f32>,
    act: Act,
}

impl ConvTranspose2dNhwc {
    /// From a PyTorch-layout weight `(c_in, c_out, kh, kw)` (flattened) and
    /// bias `(c_out)`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        weight: &[f32],
        shape: [usize; 4],
        bias: Vec<f32>,
        stride: usize,
        padding: usize,
        output_padding: usize,
        dilation: usize,
        act: Act,
    ) -> Result<Self> {
        let [c_in, c_out, kh, kw] = shape;
        if weight.len() != c_in * c_out * kh * kw || bias.len() != c_out {
            bail!(
                "transposed conv weight {shape:?} / bias {} mismatch",
                bias.len()
            );
        }
        if stride == 0 || dilation == 0 || kh == 0 || kw == 0 {
            bail!("transposed conv with zero stride, dilation or kernel");
        }
        let mut wmat = vec![0f32; weight.len()];
        for ci in 0..c_in {
            for co in 0..c_out {
                for kk in 0..kh * kw {
                    wmat[(ci * kh * kw + kk) * c_out + co] =
                        weight[(ci * c_out + co) * kh * kw + kk];
                }
            }
        }
        Ok(Self {
            kh,
            kw,
            stride,
            padding,
            output_padding,
            dilation,
            c_in,
            c_out,
            wmat,
            bias,
            act,
        })
    }

    fn out_len(&self, len: usize, k: usize) -> Option<usize> {
        let full = (len - 1) * self.stride + self.dilation * (k - 1) + self.output_padding + 1;
        (len > 0 && full > 2 * self.padding).then(|| full - 2 * self.padding)
    }

    pub fn forward(&self, x: &Nhwc) -> Result<Nhwc> {
        let (oh, ow) = match (self.out_len(x.h, self.kh), self.out_len(x.w, self.kw)) {
            (Some(oh), Some(ow)) if x.c == self.c_in => (oh, ow),
            _ => bail!(
                "transposed conv {}x{} over {} channels cannot take a {}x{}x{} input",
                self.kh,
                self.kw,
                self.c_in,
                x.h,
                x.w,
                x.c
            ),
        };
        if self.tiles() {
            return Ok(self.forward_tiled(x, oh, ow));
        }
        let taps = self.kh * self.kw * self.c_out;
        let pixels = x.n * x.h * x.w;
        // Contributions of every input pixel: (pixels) × (ky, kx, co).
        let tile = (TILE_ROWS)
            .min(pixels.div_ceil(2 * rayon::current_num_threads().max(1)))
            .max(16);
        let contrib = rows_times(&x.data, self.c_in, &self.wmat, taps, tile);
        let (s, p, d, c) = (self.stride, self.padding, self.dilation, self.c_out);
        let mut out = vec![0f32; x.n * oh * ow * c];
        out.par_chunks_mut(ow * c)
            .enumerate()
            .for_each(|(ny, orow)| {
                let (b, oy) = (ny / oh, ny % oh);
                for ky in 0..self.kh {
                    let Some(iy) = source(oy, p, ky * d, s, x.h) else {
                        continue;
                    };
                    for (ox, dst) in orow.chunks_exact_mut(c).enumerate() {
                        for kx in 0..self.kw {
                            let Some(ix) = source(ox, p, kx * d, s, x.w) else {
                                continue;
                            };
                            let src = ((b * x.h + iy) * x.w + ix) * taps + (ky * self.kw + kx) * c;
                            for (o, v) in dst.iter_mut().zip(&contrib[src..src + c]) {
                                *o += v;
                            }
                        }
                    }
                }
                bias_act(orow, &self.bias, &self.act);
            });
        Ok(Nhwc::new(x.n, oh, ow, c, out))
    }
}

impl ConvTranspose2dNhwc {
    /// Whether the kernel's patches tile the output without overlap.
    fn tiles(&self) -> bool {
        self.kh == self.stride
            && self.kw == self.stride
            && self.padding == 0
            && self.dilation == 1
            && self.output_padding == 0
    }

    /// [`Self::forward`] for a kernel that tiles the output: output row
    /// `s·iy + ky` is input row `iy` times the `ky` columns of the weights,
    /// laid out `(kx, co)` per input pixel, which is the output row's order.
    fn forward_tiled(&self, x: &Nhwc, oh: usize, ow: usize) -> Nhwc {
        let (s, c) = (self.stride, self.c_out);
        let taps = self.kh * self.kw * c;
        let n = self.kw * c;
        let write = |_: &mut (), ny: usize, orow: &mut [MaybeUninit<f32>]| {
            let (b, oy) = (ny / oh, ny % oh);
            let (iy, ky) = (oy / s, oy % s);
            let row = (b * x.h + iy) * x.w * self.c_in;
            let a = &x.data[row..row + x.w * self.c_in];
            let w = &self.wmat[ky * n..];
            sgemm_uninit(x.w, n, self.c_in, a, self.c_in, w, taps, orow, n);
            // SAFETY: the row is `x.w` runs of `n` floats, all written.
            bias_act(unsafe { assume_written(orow) }, &self.bias, &self.act);
        };
        // SAFETY: `write` fills every float of its output row (above).
        let out = unsafe { par_written(x.n * oh * ow * c, ow * c, || (), write) };
        Nhwc::new(x.n, oh, ow, c, out)
    }
}

/// The input index `i` whose tap at offset `off` lands on output `o`
/// (`o = i·s − p + off`), if there is one inside `0..len`.
fn source(o: usize, p: usize, off: usize, s: usize, len: usize) -> Option<usize> {
    let t = (o + p).checked_sub(off)?;
    (t.is_multiple_of(s) && t / s < len).then_some(t / s)
}

/// Input pixels per GEMM tile.
const TILE_ROWS: usize = 1024;
