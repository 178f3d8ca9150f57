//! Depthwise convolution (one filter per channel) in NHWC order, as a direct
//! kernel: with no reduction over channels there is nothing for a GEMM to
//! block, but in NHWC each tap is a multiply-add over a contiguous channel
//! vector, which the compiler vectorises.

use super::act::bias_act;
use super::conv_layout::Conv2dNhwc;
use super::nhwc::Nhwc;
use rayon::prelude::*;

/// `conv` must be depthwise (groups = c_in = c_out); its `wmat` is then
/// `(ky, kx, c)`.
pub(super) fn forward(conv: &Conv2dNhwc, x: &Nhwc, oh: usize, ow: usize) -> Nhwc {
    let c = x.c;
    let (s, p, d) = (conv.spec.stride, conv.spec.padding, conv.spec.dilation);
    let (kh, kw) = (conv.kh, conv.kw);
    let mut out = vec![0f32; x.n * oh * ow * c];
    out.par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(ny, orow)| {
            let (b, oy) = (ny / oh, ny % oh);
            let img = &x.data[b * x.h * x.w * c..(b + 1) * x.h * x.w * c];
            for ky in 0..kh {
                let iy = (oy * s + ky * d) as isize - p as isize;
                if iy < 0 || iy as usize >= x.h {
                    continue;
                }
                let line = &img[iy as usize * x.w * c..(iy as usize + 1) * x.w * c];
                for kx in 0..kw {
                    let wv = &conv.wmat[(ky * kw + kx) * c..(ky * kw + kx + 1) * c];
                    // Output columns whose input column lies inside the image.
                    let off = kx * d;
                    let lo = p.saturating_sub(off).div_ceil(s);
                    let hi = if x.w + p > off {
                        ((x.w + p - off - 1) / s + 1).min(ow)
                    } else {
                        0
                    };
                    for ox in lo..hi {
                        let ix = ox * s + off - p;
                        let src = &line[ix * c..(ix + 1) * c];
                        let dst = &mut orow[ox * c..(ox + 1) * c];
                        for ((o, v), w) in dst.iter_mut().zip(src).zip(wv) {
                            *o += v * w;
                        }
                    }
                }
            }
            bias_act(orow, &conv.bias, &conv.act);
        });
    Nhwc::new(x.n, oh, ow, c, out)
}
