//! Direct convolution for very thin layers: an RGB input layer has only 27
//! inputs per output pixel, too few for a matrix product to pay off, so the
//! output channels' accumulators stay in registers instead (AVX2 when the
//! CPU has it: [`super::conv_direct_avx2`]). Only valid, stride-1, ungrouped layers with an output width
//! the kernel is instantiated for (MTCNN's 10-channel first layers).

#[cfg(target_arch = "x86_64")]
use super::conv_direct_avx2 as avx2;
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
    #[cfg(target_arch = "x86_64")]
    if CO <= avx2::LANES && std::is_x86_feature_detected!("avx2") {
        let pad = avx2::Padded::new(conv);
        out.par_chunks_mut(ow * CO)
            .enumerate()
            // SAFETY: the CPU supports AVX2, checked just above.
            .for_each(|(ny, dst)| unsafe { avx2::row(conv, &pad, x, oh, ny, dst) });
        return out;
    }
    out.par_chunks_mut(ow * CO)
        .enumerate()
        .for_each(|(ny, dst)| direct_row::<CO>(conv, x, oh, ny, dst));
    out
}

/// One output row `ny` (batch-major): the portable kernel, and the
/// reference the AVX2 one must match bit for bit.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ops::Act;

    /// The AVX2 kernel gives the portable kernel's bits, activation
    /// included, for every width remainder of its four-pixel groups.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_matches_portable_bit_for_bit() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let noise = |n: usize, k: u32| -> Vec<f32> {
            (0..n as u32)
                .map(|i| ((i.wrapping_mul(2654435761) ^ k) >> 9) as f32 / 4194304.0 - 1.0)
                .collect()
        };
        let slopes = noise(10, 7).iter().map(|v| v * 0.3).collect();
        let conv = Conv2dNhwc::new(
            &noise(10 * 27, 1),
            [10, 3, 3, 3],
            noise(10, 3),
            ConvSpec::default(),
            Act::PRelu(slopes),
        )
        .unwrap();
        for (h, w) in [(9, 13), (5, 7), (3, 3), (6, 12)] {
            let x = Nhwc::new(2, h, w, 3, noise(2 * h * w * 3, 5));
            let (oh, ow) = (h - 2, w - 2);
            let fast = direct::<10>(&conv, &x, oh, ow);
            let mut slow = vec![0f32; fast.len()];
            for (ny, dst) in slow.chunks_mut(ow * 10).enumerate() {
                direct_row::<10>(&conv, &x, oh, ny, dst);
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow), "{h}x{w}");
        }
    }
}
