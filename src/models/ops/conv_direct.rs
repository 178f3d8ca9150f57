//! Direct convolution for very thin layers: an RGB input layer has only 27
//! inputs per output pixel, too few for a matrix product to pay off, so the
//! output channels' accumulators stay in registers instead (AVX2 when the
//! CPU has it). Only valid, stride-1, ungrouped layers with an output width
//! the kernel is instantiated for (MTCNN's 10-channel first layers).

use super::conv_layout::{Conv2dNhwc, ConvSpec};
use super::nhwc::Nhwc;
use rayon::prelude::*;

/// Largest im2col row (`kh·kw·c_in`) handled here.
const DIRECT_MAX_ROW: usize = 27;

/// The direct result, or `None` when the layer is not one this kernel takes.
pub(super) fn try_forward(conv: &Conv2dNhwc, x: &Nhwc, oh: usize, ow: usize) -> Option<Nhwc> {
    if conv.spec != ConvSpec::default() || conv.kh * conv.kw * conv.c_in > DIRECT_MAX_ROW {
        return None;
    }
    let out = match conv.c_out {
        10 => direct::<10>(conv, x, oh, ow),
        _ => return None,
    };
    Some(Nhwc::new(x.n, oh, ow, conv.c_out, out))
}

/// Rows of output run in parallel.
fn direct<const CO: usize>(conv: &Conv2dNhwc, x: &Nhwc, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.n * oh * ow * CO];
    out.par_chunks_mut(ow * CO)
        .enumerate()
        .for_each(|(ny, dst)| {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                unsafe { direct_row_avx2::<CO>(conv, x, oh, ny, dst) };
                return;
            }
            direct_row::<CO>(conv, x, oh, ny, dst);
        });
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn direct_row_avx2<const CO: usize>(
    conv: &Conv2dNhwc,
    x: &Nhwc,
    oh: usize,
    ny: usize,
    dst: &mut [f32],
) {
    direct_row::<CO>(conv, x, oh, ny, dst)
}

/// One output row `ny` (batch-major).
#[inline(always)]
fn direct_row<const CO: usize>(conv: &Conv2dNhwc, x: &Nhwc, oh: usize, ny: usize, dst: &mut [f32]) {
    let (kh, kw, c) = (conv.kh, conv.kw, x.c);
    let (b, oy) = (ny / oh, ny % oh);
    let img = &x.data[b * x.h * x.w * c..(b + 1) * x.h * x.w * c];
    let kc = kw * c;
    let bias: [f32; CO] = conv.bias[..CO].try_into().expect("bias length");
    for (ox, out) in dst.chunks_exact_mut(CO).enumerate() {
        let mut acc = bias;
        for ky in 0..kh {
            let src = ((oy + ky) * x.w + ox) * c;
            let patch = &img[src..src + kc];
            let wrows = &conv.wmat[ky * kc * CO..(ky + 1) * kc * CO];
            for (v, wrow) in patch.iter().zip(wrows.chunks_exact(CO)) {
                // A fixed-size view lets the compiler unroll and vectorise.
                let wrow: &[f32; CO] = wrow.try_into().expect("weight row");
                for i in 0..CO {
                    acc[i] += v * wrow[i];
                }
            }
        }
        out.copy_from_slice(&acc);
        conv.act.apply_row(out);
    }
}
