//! A stride-1, same-padded convolution over a map enlarged by
//! nearest-neighbour upsampling, evaluated at the map's own size.
//!
//! Why: feature pyramids upsample coarse maps ×2…×8 and then convolve them.
//! Over a map upsampled `f` times, each tap of a small kernel lands on a
//! pixel of the coarse map, so every tap's product is taken once per
//! *coarse* pixel (one GEMM over the small map, all taps at once) and each
//! output pixel adds up the products its taps land on. That is the conv of
//! the upsampled map, up to float summation order, at 1/f² of the
//! multiplications, and the upsampled map is never built.

use super::gemm::rows_times;
use super::nhwc::Nhwc;
use candle_core::{bail, Result};
use rayon::prelude::*;

/// The conv's weights laid out for [`UpsampledConv::add_to`].
#[derive(Clone, Debug)]
pub struct UpsampledConv {
    k: usize,
    c_in: usize,
    c_out: usize,
    /// `c_in × (k·k·c_out)`: row `ci`, column `(ky·k + kx)·c_out + co`.
    taps: Vec<f32>,
}

/// Coarse pixels per GEMM tile (each tile's products stay in cache).
const TILE_ROWS: usize = 256;

impl UpsampledConv {
    /// From a PyTorch-layout weight `(c_out, c_in, k, k)` (flattened), odd
    /// `k`; no bias (the caller adds its own once).
    pub fn new(weight: &[f32], shape: [usize; 4]) -> Result<Self> {
        let [c_out, c_in, kh, kw] = shape;
        if kh != kw || kh % 2 == 0 || weight.len() != c_out * c_in * kh * kw {
            bail!("upsampled conv needs an odd square kernel, got {shape:?}");
        }
        let k = kh;
        let cols = k * k * c_out;
        let mut taps = vec![0f32; c_in * cols];
        for co in 0..c_out {
            for ci in 0..c_in {
                for t in 0..k * k {
                    taps[ci * cols + t * c_out + co] = weight[(co * c_in + ci) * k * k + t];
                }
            }
        }
        Ok(Self {
            k,
            c_in,
            c_out,
            taps,
        })
    }

    /// Adds the conv (stride 1, padding k/2) of `x` upsampled `f` times to
    /// `out`, which must be `x.n × f·x.h × f·x.w × c_out`.
    pub fn add_to(&self, x: &Nhwc, f: usize, out: &mut Nhwc) -> Result<()> {
        let (oh, ow) = (x.h * f, x.w * f);
        if x.c != self.c_in || (out.n, out.h, out.w, out.c) != (x.n, oh, ow, self.c_out) || f == 0 {
            bail!(
                "upsampled conv {}→{} cannot add a {}x{}x{} map ×{f} to a {}x{}x{} one",
                self.c_in,
                self.c_out,
                x.h,
                x.w,
                x.c,
                out.h,
                out.w,
                out.c
            );
        }
        let (k, co) = (self.k, self.c_out);
        let cols = k * k * co;
        let prod = rows_times(&x.data, x.c, &self.taps, cols, TILE_ROWS);
        // Where each output column's taps land: `(kx, coarse column)`, the
        // same for every row.
        let p = k / 2;
        let landing: Vec<Vec<(usize, usize)>> = (0..ow)
            .map(|ox| {
                (0..k)
                    .filter_map(|kx| {
                        let sx = (ox + kx).checked_sub(p)?;
                        (sx < ow).then_some((kx, sx / f))
                    })
                    .collect()
            })
            .collect();
        let plane = x.h * x.w * cols;
        out.data
            .par_chunks_mut(ow * co)
            .enumerate()
            .for_each(|(ny, row)| {
                let (b, oy) = (ny / oh, ny % oh);
                let img = &prod[b * plane..(b + 1) * plane];
                // `(ky, the coarse row's products)` for the taps inside.
                let rows: Vec<(usize, &[f32])> = (0..k)
                    .filter_map(|ky| {
                        let sy = (oy + ky).checked_sub(p)?;
                        (sy < oh).then(|| (ky, &img[(sy / f) * x.w * cols..][..x.w * cols]))
                    })
                    .collect();
                let s = Sums {
                    rows: &rows,
                    landing: &landing,
                    k,
                    co,
                    cols,
                };
                s.add_row(row);
            });
        Ok(())
    }
}

/// What one output row's sums need: the coarse rows its taps land on and
/// where each column's taps land.
struct Sums<'a> {
    rows: &'a [(usize, &'a [f32])],
    landing: &'a [Vec<(usize, usize)>],
    k: usize,
    co: usize,
    cols: usize,
}

impl Sums<'_> {
    /// Adds to each output pixel of `row` the products its taps land on,
    /// summed first in `(ky, kx)` order (so the same bits on every CPU).
    fn add_row(&self, row: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                unsafe { self.add_row_avx512(row) };
                return;
            }
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                unsafe { self.add_row_avx2(row) };
                return;
            }
        }
        self.add_row_portable(row)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn add_row_avx2(&self, row: &mut [f32]) {
        self.add_row_portable(row)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn add_row_avx512(&self, row: &mut [f32]) {
        self.add_row_portable(row)
    }

    #[inline(always)]
    fn add_row_portable(&self, row: &mut [f32]) {
        let (k, co, cols) = (self.k, self.co, self.cols);
        let mut acc = vec![0f32; co];
        let mut last: Option<&Vec<(usize, usize)>> = None;
        for (o, land) in row.chunks_exact_mut(co).zip(self.landing) {
            // Neighbours inside one coarse pixel land on the same products.
            if last != Some(land) {
                acc.fill(0.0);
                for &(ky, src) in self.rows {
                    for &(kx, cx) in land {
                        let at = cx * cols + (ky * k + kx) * co;
                        add(&mut acc, &src[at..at + co]);
                    }
                }
                last = Some(land);
            }
            add(o, &acc);
        }
    }
}

/// `acc += v`, eight lanes at a time.
#[inline(always)]
fn add(acc: &mut [f32], v: &[f32]) {
    let mut a = acc.chunks_exact_mut(8);
    let mut b = v.chunks_exact(8);
    for (a, b) in (&mut a).zip(&mut b) {
        for i in 0..8 {
            a[i] += b[i];
        }
    }
    for (a, b) in a.into_remainder().iter_mut().zip(b.remainder()) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ops::{Act, Conv2dNhwc, ConvSpec};

    fn upsampled(x: &Nhwc, f: usize) -> Nhwc {
        let (oh, ow) = (x.h * f, x.w * f);
        let mut d = Vec::with_capacity(x.n * oh * ow * x.c);
        for b in 0..x.n {
            for y in 0..oh {
                for xx in 0..ow {
                    let at = ((b * x.h + y / f) * x.w + xx / f) * x.c;
                    d.extend_from_slice(&x.data[at..at + x.c]);
                }
            }
        }
        Nhwc::new(x.n, oh, ow, x.c, d)
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn equals_the_conv_of_the_upsampled_map() {
        for (f, k, n) in [(1, 3, 1), (2, 3, 1), (4, 3, 2), (8, 3, 1), (2, 5, 1)] {
            let (c_in, c_out, h, w) = (5, 7, 3, 4);
            let x = Nhwc::new(n, h, w, c_in, values(n * h * w * c_in, 7));
            let shape = [c_out, c_in, k, k];
            let weight = values(c_out * c_in * k * k, 99);
            let plain = Conv2dNhwc::new(
                &weight,
                shape,
                vec![0.0; c_out],
                ConvSpec::new(1, k / 2),
                Act::None,
            )
            .unwrap()
            .forward(&upsampled(&x, f))
            .unwrap();
            let start = values(plain.data.len(), 3);
            let mut got = Nhwc::new(n, h * f, w * f, c_out, start.clone());
            UpsampledConv::new(&weight, shape)
                .unwrap()
                .add_to(&x, f, &mut got)
                .unwrap();
            for ((g, p), s) in got.data.iter().zip(&plain.data).zip(&start) {
                assert!((g - (p + s)).abs() < 1e-4, "f={f} k={k}: {g} vs {}", p + s);
            }
        }
    }

    #[test]
    fn refuses_a_destination_of_the_wrong_size() {
        let x = Nhwc::new(1, 2, 2, 3, vec![0.0; 12]);
        let c = UpsampledConv::new(&[0.0; 2 * 3 * 9], [2, 3, 3, 3]).unwrap();
        let mut out = Nhwc::new(1, 4, 5, 2, vec![0.0; 40]);
        assert!(c.add_to(&x, 2, &mut out).is_err());
        assert!(UpsampledConv::new(&[0.0; 2 * 3 * 4], [2, 3, 2, 2]).is_err());
    }
}
