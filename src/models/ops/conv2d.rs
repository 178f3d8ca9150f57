//! Convolution in NHWC order on the CPU, any padding, stride, dilation and
//! group count: the one CPU convolution every model runs.
//!
//! Why NHWC: one output pixel's im2col row is a handful of contiguous slice
//! copies (a kernel row of `kw·c_in` inputs is contiguous), the product
//! `im2col · W` writes NHWC output directly, and the layout carries into the
//! next layer without transposes. Output pixels are cut into tiles whose
//! im2col block stays in cache (one whole-image im2col is tens of MB of
//! freshly faulted pages, which costs more than the arithmetic); the tiles
//! run in parallel, each with one single-threaded GEMM
//! ([`super::gemm::sgemm`]) whose result gets its bias and activation while
//! still in cache. Depthwise layers have no reduction worth a GEMM and go to
//! [`super::depthwise`]; very thin layers to [`super::conv_direct`].

use super::act::bias_act;
use super::conv_direct;
use super::conv_layout::{Conv2dNhwc, ConvSpec};
use super::depthwise;
use super::gemm::{assume_written, par_written, sgemm_uninit};
use super::nhwc::Nhwc;
use candle_core::{bail, Result};
use std::mem::MaybeUninit;

impl Conv2dNhwc {
    /// One weight per tap and channel, no channel mixing.
    fn is_depthwise(&self) -> bool {
        self.spec.groups > 1 && self.spec.groups == self.c_in && self.c_out == self.c_in
    }

    pub fn forward(&self, x: &Nhwc) -> Result<Nhwc> {
        let (oh, ow) = match (
            self.spec.out_len(x.h, self.kh),
            self.spec.out_len(x.w, self.kw),
        ) {
            (Some(oh), Some(ow)) if x.c == self.c_in => (oh, ow),
            _ => bail!(
                "conv {}x{} over {} channels ({:?}) cannot take a {}x{}x{} input",
                self.kh,
                self.kw,
                self.c_in,
                self.spec,
                x.h,
                x.w,
                x.c
            ),
        };
        if self.is_depthwise() {
            return Ok(depthwise::forward(self, x, oh, ow));
        }
        if let Some(out) = conv_direct::try_forward(self, x, oh, ow) {
            return Ok(out);
        }
        Ok(self.forward_gemm(x, oh, ow))
    }

    /// Tiled im2col + GEMM; 1×1 stride-1 layers multiply the input rows
    /// directly.
    fn forward_gemm(&self, x: &Nhwc, oh: usize, ow: usize) -> Nhwc {
        let g = self.spec.groups;
        let (cin_g, cout_g) = (self.c_in / g, self.c_out / g);
        let row = self.kh * self.kw * cin_g;
        let total = x.n * oh * ow;
        let pointwise = self.kh == 1
            && self.kw == 1
            && self.spec.stride == 1
            && self.spec.padding == 0
            && g == 1;
        // Enough tiles to keep every thread busy, each small enough for cache.
        let threads = rayon::current_num_threads().max(1);
        let tile = (IM2COL_TILE_FLOATS / row)
            .min(total.div_ceil(2 * threads))
            .max(MIN_TILE_ROWS)
            .min(total.max(1));
        let init = Vec::new;
        let write = |cols: &mut Vec<f32>, t: usize, dst: &mut [MaybeUninit<f32>]| {
            let start = t * tile;
            let m = dst.len() / self.c_out;
            for grp in 0..g {
                let w = &self.wmat[grp * row * cout_g..(grp + 1) * row * cout_g];
                let dst = &mut dst[grp * cout_g..];
                if pointwise {
                    let a = &x.data[start * self.c_in..(start + m) * self.c_in];
                    sgemm_uninit(m, cout_g, row, a, self.c_in, w, cout_g, dst, self.c_out);
                } else {
                    cols.resize(m * row, 0.0);
                    self.im2col(x, oh, ow, grp, start, &mut cols[..m * row]);
                    sgemm_uninit(m, cout_g, row, cols, row, w, cout_g, dst, self.c_out);
                }
            }
            // SAFETY: the groups' GEMMs wrote columns `grp·cout_g..` of
            // every row, all `c_out` of them.
            bias_act(unsafe { assume_written(dst) }, &self.bias, &self.act);
        };
        // SAFETY: `write` fills every float of its tile (above).
        let out = unsafe { par_written(total * self.c_out, tile * self.c_out, init, write) };
        Nhwc::new(x.n, oh, ow, self.c_out, out)
    }

    /// im2col rows for output pixels `start..start + rows`, group `grp`:
    /// one row `(ky, kx, ci)` per output pixel, zeros where the kernel hangs
    /// over the padded border.
    fn im2col(&self, x: &Nhwc, oh: usize, ow: usize, grp: usize, start: usize, cols: &mut [f32]) {
        let ConvSpec {
            stride: s,
            padding: p,
            dilation: d,
            groups: g,
        } = self.spec;
        let (kh, kw, c) = (self.kh, self.kw, x.c);
        let cin_g = c / g;
        let row = kh * kw * cin_g;
        let c0 = grp * cin_g;
        for (j, patch) in cols.chunks_exact_mut(row).enumerate() {
            let q = start + j;
            let (b, rest) = (q / (oh * ow), q % (oh * ow));
            let (oy, ox) = (rest / ow, rest % ow);
            let img = &x.data[b * x.h * x.w * c..(b + 1) * x.h * x.w * c];
            let ix0 = (ox * s) as isize - p as isize;
            let inside_x = ix0 >= 0 && ix0 as usize + d * (kw - 1) < x.w;
            for ky in 0..kh {
                let seg = &mut patch[ky * kw * cin_g..(ky + 1) * kw * cin_g];
                let iy = (oy * s + ky * d) as isize - p as isize;
                if iy < 0 || iy as usize >= x.h {
                    seg.fill(0.0);
                    continue;
                }
                let line = &img[iy as usize * x.w * c..(iy as usize + 1) * x.w * c];
                if inside_x && d == 1 && g == 1 {
                    let src = ix0 as usize * c;
                    seg.copy_from_slice(&line[src..src + kw * c]);
                    continue;
                }
                for (kx, dst) in seg.chunks_exact_mut(cin_g).enumerate() {
                    let ix = ix0 + (kx * d) as isize;
                    if ix < 0 || ix as usize >= x.w {
                        dst.fill(0.0);
                    } else {
                        let src = ix as usize * c + c0;
                        dst.copy_from_slice(&line[src..src + cin_g]);
                    }
                }
            }
        }
    }
}

/// Floats per im2col tile (1 MiB): fits the L2 cache of current CPUs.
const IM2COL_TILE_FLOATS: usize = 256 * 1024;
/// Fewer output rows per GEMM than this and the weight packing dominates.
const MIN_TILE_ROWS: usize = 64;
