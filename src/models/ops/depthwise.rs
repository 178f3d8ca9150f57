//! Depthwise convolution (one filter per channel) in NHWC order, as a direct
//! kernel: with no reduction over channels there is nothing for a GEMM to
//! block, but in NHWC each tap is a multiply-add over a contiguous channel
//! vector.
//!
//! Each output pixel is summed in registers, a block of 8–32 channels at a
//! time over every tap, and stored once: summing tap by tap into the output
//! row read and wrote it `kh·kw` times, and with the detector's 16–96
//! channels the loop overhead per tap outweighed the arithmetic (perf: 7–12 %
//! of the text route). Where the CPU has AVX-512 or AVX2 the same code is
//! compiled for it (16 or 8 lanes instead of SSE2's 4); interior pixels go
//! four at a time, so each weight vector is loaded once for four. Either way every output is `0 + Σ v·w`
//! in `(ky, kx)` order, a multiply and a separate add, then the bias: the
//! same bits on every CPU and as the earlier tap-by-tap loop.

use super::act::bias_act;
use super::conv_layout::Conv2dNhwc;
use super::nhwc::Nhwc;
use rayon::prelude::*;

/// `conv` must be depthwise (groups = c_in = c_out); its `wmat` is then
/// `(ky, kx, c)`.
pub(super) fn forward(conv: &Conv2dNhwc, x: &Nhwc, oh: usize, ow: usize) -> Nhwc {
    let c = x.c;
    let mut out = vec![0f32; x.n * oh * ow * c];
    out.par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(ny, orow)| {
            row(conv, x, oh, ny, orow);
            bias_act(orow, &conv.bias, &conv.act);
        });
    Nhwc::new(x.n, oh, ow, c, out)
}

/// Output row `ny` (image `ny / oh`, row `ny % oh`), before bias.
fn row(conv: &Conv2dNhwc, x: &Nhwc, oh: usize, ny: usize, orow: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            unsafe { row_avx512(conv, x, oh, ny, orow) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { row_avx2(conv, x, oh, ny, orow) };
            return;
        }
    }
    row_portable(conv, x, oh, ny, orow)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_avx2(conv: &Conv2dNhwc, x: &Nhwc, oh: usize, ny: usize, orow: &mut [f32]) {
    row_portable(conv, x, oh, ny, orow)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_avx512(conv: &Conv2dNhwc, x: &Nhwc, oh: usize, ny: usize, orow: &mut [f32]) {
    row_portable(conv, x, oh, ny, orow)
}

/// [`row`] for any CPU; inlined into [`row_avx2`] and [`row_avx512`] to compile it for each.
#[inline(always)]
fn row_portable(conv: &Conv2dNhwc, x: &Nhwc, oh: usize, ny: usize, orow: &mut [f32]) {
    let c = x.c;
    let (s, p, d) = (conv.spec.stride, conv.spec.padding, conv.spec.dilation);
    let (b, oy) = (ny / oh, ny % oh);
    let img = &x.data[b * x.h * x.w * c..(b + 1) * x.h * x.w * c];
    // `(ky, input row)` for each kernel row that falls inside the image.
    let rows: Vec<(usize, &[f32])> = (0..conv.kh)
        .filter_map(|ky| {
            let iy = (oy * s + ky * d).checked_sub(p)?;
            (iy < x.h).then(|| (ky, &img[iy * x.w * c..(iy + 1) * x.w * c]))
        })
        .collect();
    let taps = Taps {
        rows: &rows,
        wmat: &conv.wmat,
        c,
        kw: conv.kw,
        p,
        d,
    };
    // Kernel columns whose input column `ox·s + kx·d − p` is inside, for
    // each output column.
    let inside = |ox: usize| {
        let base = ox * s;
        let lo = p.saturating_sub(base).div_ceil(d);
        let hi = conv.kw.min((x.w + p).saturating_sub(base).div_ceil(d));
        (lo, hi.max(lo))
    };
    let ow = orow.len() / c;
    let full = (0, conv.kw);
    let mut ox = 0;
    while ox < ow {
        // Four pixels whose taps are all inside, eight channels at a time:
        // each weight vector is loaded once for the four.
        if c.is_multiple_of(8) && ox + 4 <= ow && inside(ox) == full && inside(ox + 3) == full {
            let dst = &mut orow[ox * c..(ox + 4) * c];
            if c.is_multiple_of(16) {
                for cb in (0..c).step_by(16) {
                    taps.four::<16>(ox * s, s, cb, dst);
                }
            } else {
                for cb in (0..c).step_by(8) {
                    taps.four::<8>(ox * s, s, cb, dst);
                }
            }
            ox += 4;
            continue;
        }
        let (lo, hi) = inside(ox);
        let dst = &mut orow[ox * c..(ox + 1) * c];
        let mut cb = 0;
        while cb + 32 <= c {
            taps.block::<32>(ox * s, lo..hi, cb, dst);
            cb += 32;
        }
        while cb + 8 <= c {
            taps.block::<8>(ox * s, lo..hi, cb, dst);
            cb += 8;
        }
        for ch in cb..c {
            taps.block::<1>(ox * s, lo..hi, ch, dst);
        }
        ox += 1;
    }
}

/// What one output row's pixels share.
struct Taps<'a> {
    rows: &'a [(usize, &'a [f32])],
    wmat: &'a [f32],
    c: usize,
    kw: usize,
    p: usize,
    d: usize,
}

impl Taps<'_> {
    /// Channels `cb..cb + B` of the pixel whose first input column (before
    /// padding) is `base`, over kernel columns `kx`, into `dst`.
    #[inline(always)]
    fn block<const B: usize>(
        &self,
        base: usize,
        kx: std::ops::Range<usize>,
        cb: usize,
        dst: &mut [f32],
    ) {
        let c = self.c;
        let mut acc = [0f32; B];
        for &(ky, line) in self.rows {
            for k in kx.clone() {
                let ix = base + k * self.d - self.p;
                let v: &[f32; B] = line[ix * c + cb..][..B].try_into().unwrap();
                let w: &[f32; B] = self.wmat[(ky * self.kw + k) * c + cb..][..B]
                    .try_into()
                    .unwrap();
                for j in 0..B {
                    acc[j] += v[j] * w[j];
                }
            }
        }
        dst[cb..cb + B].copy_from_slice(&acc);
    }

    /// Channels `cb..cb + L` of four pixels `s` input columns apart, the
    /// first at `base`, every kernel column inside the image; `dst` holds
    /// the four pixels. The same sums, in the same order, as [`Self::block`].
    #[inline(always)]
    fn four<const L: usize>(&self, base: usize, s: usize, cb: usize, dst: &mut [f32]) {
        let c = self.c;
        let mut acc = [[0f32; L]; 4];
        for &(ky, line) in self.rows {
            for k in 0..self.kw {
                let w: &[f32; L] = self.wmat[(ky * self.kw + k) * c + cb..][..L]
                    .try_into()
                    .unwrap();
                let ix = base + k * self.d - self.p;
                for (q, a) in acc.iter_mut().enumerate() {
                    let v: &[f32; L] = line[(ix + q * s) * c + cb..][..L].try_into().unwrap();
                    for j in 0..L {
                        a[j] += v[j] * w[j];
                    }
                }
            }
        }
        for (q, a) in acc.iter().enumerate() {
            dst[q * c + cb..q * c + cb + L].copy_from_slice(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ops::act::Act;
    use crate::models::ops::conv_layout::ConvSpec;

    /// The earlier kernel: tap by tap into the output row.
    fn tap_by_tap(conv: &Conv2dNhwc, x: &Nhwc, oh: usize, ow: usize) -> Vec<f32> {
        let (c, s, p, d) = (x.c, conv.spec.stride, conv.spec.padding, conv.spec.dilation);
        let mut out = vec![0f32; oh * ow * c];
        for oy in 0..oh {
            for ky in 0..conv.kh {
                let Some(iy) = (oy * s + ky * d).checked_sub(p).filter(|&i| i < x.h) else {
                    continue;
                };
                for kx in 0..conv.kw {
                    for ox in 0..ow {
                        let Some(ix) = (ox * s + kx * d).checked_sub(p).filter(|&i| i < x.w) else {
                            continue;
                        };
                        for ch in 0..c {
                            out[(oy * ow + ox) * c + ch] += x.data[(iy * x.w + ix) * c + ch]
                                * conv.wmat[(ky * conv.kw + kx) * c + ch];
                        }
                    }
                }
            }
        }
        for px in out.chunks_exact_mut(c) {
            px.iter_mut().zip(&conv.bias).for_each(|(v, b)| *v += b);
            conv.act.apply_row(px);
        }
        out
    }

    #[test]
    fn same_bits_as_summing_tap_by_tap() {
        let mut seed = 7u32;
        let mut rnd = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        // channels, kernel, stride, padding, dilation, height, width
        for (c, k, s, p, d, h, w) in [
            (16, 3, 1, 1, 1, 13, 17),
            (24, 3, 2, 1, 1, 16, 16),
            (96, 5, 1, 2, 1, 9, 11),
            (40, 5, 2, 2, 1, 12, 10),
            (12, 3, 1, 2, 2, 8, 9),
            (3, 3, 1, 0, 1, 5, 6),
        ] {
            let conv = Conv2dNhwc {
                spec: ConvSpec {
                    stride: s,
                    padding: p,
                    dilation: d,
                    groups: c,
                },
                kh: k,
                kw: k,
                c_in: c,
                c_out: c,
                wmat: (0..k * k * c).map(|_| rnd()).collect(),
                bias: (0..c).map(|_| rnd()).collect(),
                act: Act::hard_swish(),
            };
            let x = Nhwc::new(1, h, w, c, (0..h * w * c).map(|_| rnd()).collect());
            let (oh, ow) = (
                conv.spec.out_len(h, k).unwrap(),
                conv.spec.out_len(w, k).unwrap(),
            );
            let got = forward(&conv, &x, oh, ow);
            let want = tap_by_tap(&conv, &x, oh, ow);
            assert!(
                got.data
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "c {c} k {k} s {s} p {p} d {d}"
            );
        }
    }
}
