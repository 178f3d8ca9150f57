//! The AVX2 kernel of [`super::conv_direct`]: up to 16 output channels held
//! as two 8-lane registers per pixel, four pixels at a time, so each weight
//! row is loaded once per four pixels and every input value is one broadcast.
//! Written with intrinsics because the auto-vectorised version of the same
//! loop (a 10-wide accumulator array) spilled to the stack and ran at a
//! quarter of this speed.
//!
//! Each output is accumulated exactly as the scalar kernel does it — bias
//! first, then taps in `(ky, kx, ci)` order, a multiply and a separate add
//! (no fused multiply-add) — so both give the same bits on every CPU.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::act::Act;
use super::conv_layout::Conv2dNhwc;
use super::nhwc::Nhwc;

/// Output channels the kernel holds per pixel (two 8-lane registers).
pub(super) const LANES: usize = 16;
/// Pixels computed together: 8 accumulators, 2 weight registers and a
/// broadcast fit the 16 AVX2 registers.
const PIXELS: usize = 4;

/// The layer's weights `(kh·kw·c_in) × c_out` and bias padded with zeros to
/// [`LANES`] columns, made once per forward call.
pub(super) struct Padded {
    pub(super) w: Vec<f32>,
    pub(super) bias: [f32; LANES],
    /// PReLU slopes, applied in registers: done in place on the stored
    /// values, the compiler turns the conditional write into masked stores,
    /// which are microcoded on some CPUs and took a third of the kernel.
    pub(super) slope: Option<[f32; LANES]>,
}

impl Padded {
    pub(super) fn new(conv: &Conv2dNhwc) -> Self {
        let co = conv.c_out;
        debug_assert!(co <= LANES);
        let rows = conv.wmat.len() / co;
        let mut w = vec![0f32; rows * LANES];
        for (dst, src) in w.chunks_exact_mut(LANES).zip(conv.wmat.chunks_exact(co)) {
            dst[..co].copy_from_slice(src);
        }
        let mut bias = [0f32; LANES];
        bias[..co].copy_from_slice(&conv.bias);
        let slope = match &conv.act {
            Act::PRelu(a) => {
                let mut s = [0f32; LANES];
                s[..co].copy_from_slice(a);
                Some(s)
            }
            _ => None,
        };
        Self { w, bias, slope }
    }
}

/// One output row `ny` (batch-major) of a valid, stride-1 convolution with
/// at most [`LANES`] output channels, activation applied.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn row(
    conv: &Conv2dNhwc,
    pad: &Padded,
    x: &Nhwc,
    oh: usize,
    ny: usize,
    dst: &mut [f32],
) {
    let (kh, kw, c, co) = (conv.kh, conv.kw, x.c, conv.c_out);
    let (b, oy) = (ny / oh, ny % oh);
    let img = &x.data[b * x.h * x.w * c..(b + 1) * x.h * x.w * c];
    let kc = kw * c;
    let ow = dst.len() / co;
    let mut ox = 0;
    while ox < ow {
        let n = PIXELS.min(ow - ox);
        let mut acc = [[_mm256_setzero_ps(); 2]; PIXELS];
        let b0 = _mm256_loadu_ps(pad.bias.as_ptr());
        let b1 = _mm256_loadu_ps(pad.bias.as_ptr().add(8));
        for a in acc.iter_mut() {
            *a = [b0, b1];
        }
        for ky in 0..kh {
            let src = ((oy + ky) * x.w + ox) * c;
            // The last pixel of this group reads up to `src + (n-1)·c + kc`.
            let patch = &img[src..src + (n - 1) * c + kc];
            let wrows = &pad.w[ky * kc * LANES..(ky + 1) * kc * LANES];
            for t in 0..kc {
                let w0 = _mm256_loadu_ps(wrows.as_ptr().add(t * LANES));
                let w1 = _mm256_loadu_ps(wrows.as_ptr().add(t * LANES + 8));
                if n == PIXELS {
                    for (p, a) in acc.iter_mut().enumerate() {
                        let v = _mm256_set1_ps(patch[p * c + t]);
                        a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(v, w0));
                        a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(v, w1));
                    }
                } else {
                    for (p, a) in acc.iter_mut().enumerate().take(n) {
                        let v = _mm256_set1_ps(patch[p * c + t]);
                        a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(v, w0));
                        a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(v, w1));
                    }
                }
            }
        }
        for (p, a) in acc.iter().enumerate().take(n) {
            let [v0, v1] = match &pad.slope {
                // `v < 0 ? v·a : v`, as `Act::apply_row` computes it.
                Some(sl) => {
                    let prelu = |v: __m256, half: usize| {
                        let neg = _mm256_mul_ps(v, _mm256_loadu_ps(sl.as_ptr().add(8 * half)));
                        let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_setzero_ps());
                        _mm256_blendv_ps(v, neg, lt)
                    };
                    [prelu(a[0], 0), prelu(a[1], 1)]
                }
                None => *a,
            };
            let at = (ox + p) * co;
            if at + LANES <= dst.len() {
                // Full-width stores: the lanes past `co` land on the next
                // pixels of the row, which are written after this one. A
                // copy of `co` floats compiled to a memcpy call per pixel.
                _mm256_storeu_ps(dst.as_mut_ptr().add(at), v0);
                _mm256_storeu_ps(dst.as_mut_ptr().add(at + 8), v1);
            } else {
                let mut lanes = [0f32; LANES];
                _mm256_storeu_ps(lanes.as_mut_ptr(), v0);
                _mm256_storeu_ps(lanes.as_mut_ptr().add(8), v1);
                dst[at..at + co].copy_from_slice(&lanes[..co]);
            }
            if pad.slope.is_none() {
                conv.act.apply_row(&mut dst[at..at + co]);
            }
        }
        ox += n;
    }
}
