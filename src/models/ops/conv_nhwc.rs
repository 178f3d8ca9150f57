//! A valid convolution in NHWC order on the CPU, used only by the MTCNN
//! face detector: an im2col pass plus one tall matrix product, and for thin
//! layers a direct kernel that keeps its accumulators in registers (AVX2
//! when the CPU has it).

use super::nhwc::Nhwc;
use super::tensor::as_f32;
use candle_core::{Result, Tensor};

/// Apply a per-channel bias and, when given, PReLU slopes in place to rows of
/// `c` channels.
pub(super) fn bias_prelu(data: &mut [f32], bias: &[f32], alpha: Option<&[f32]>) {
    let c = bias.len();
    for row in data.chunks_exact_mut(c) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
        if let Some(alpha) = alpha {
            for (v, a) in row.iter_mut().zip(alpha) {
                *v = if *v < 0.0 { *v * a } else { *v };
            }
        }
    }
}

/// A valid (unpadded, stride 1) convolution with bias and optional PReLU,
/// computed in NHWC order on the CPU.
pub struct ConvNhwc {
    /// `(k·k·c_in, c_out)`, rows ordered (kh, kw, c_in) like the im2col.
    wmat: Tensor,
    /// The same matrix on the host, for the direct kernel of thin layers.
    wvec: Vec<f32>,
    bias: Vec<f32>,
    alpha: Option<Vec<f32>>,
    k: usize,
    c_in: usize,
}

impl ConvNhwc {
    /// From PyTorch-layout weights `(c_out, c_in, k, k)`, bias `(c_out)` and
    /// PReLU slopes `(c_out)`.
    pub fn new(weight: &Tensor, bias: &Tensor, alpha: Option<&Tensor>) -> Result<Self> {
        let (c_out, c_in, k, k2) = weight.dims4()?;
        if k != k2 {
            candle_core::bail!("square kernels only, got {k}x{k2}");
        }
        let wmat = as_f32(weight)?
            .permute((2, 3, 1, 0))?
            .reshape((k * k * c_in, c_out))?
            .contiguous()?;
        Ok(Self {
            wvec: wmat.flatten_all()?.to_vec1()?,
            wmat,
            bias: as_f32(bias)?.to_vec1()?,
            alpha: alpha.map(|a| as_f32(a)?.to_vec1()).transpose()?,
            k,
            c_in,
        })
    }

    pub fn forward(&self, x: &Nhwc) -> Result<Nhwc> {
        use rayon::prelude::*;
        if x.c != self.c_in || x.h < self.k || x.w < self.k {
            candle_core::bail!(
                "conv {}x{} over {} channels cannot take a {}x{}x{} input",
                self.k,
                self.k,
                self.c_in,
                x.h,
                x.w,
                x.c
            );
        }
        let (k, c) = (self.k, x.c);
        let (oh, ow) = (x.h - k + 1, x.w - k + 1);
        let (kc, row) = (k * c, k * k * c);
        let total = x.n * oh * ow;
        let c_out = self.bias.len();
        if row <= DIRECT_MAX_ROW {
            let direct = match c_out {
                10 => Some(self.direct::<10>(x)),
                _ => None,
            };
            if let Some(out) = direct {
                return Ok(Nhwc::new(x.n, oh, ow, c_out, out));
            }
        }
        // Tiles of output pixels whose im2col block stays in cache: one big
        // im2col matrix would be tens of MB of freshly faulted pages, which
        // costs more than the arithmetic.
        let tile = (IM2COL_TILE_FLOATS / row).clamp(1, total);
        let mut out = Vec::with_capacity(total * c_out);
        for start in (0..total).step_by(tile) {
            let m = tile.min(total - start);
            let mut cols = vec![0f32; m * row];
            // One im2col row per output pixel; for a given kh the kw·c inputs
            // are contiguous in NHWC, so each patch is k slice copies.
            cols.par_chunks_mut(row * 64)
                .enumerate()
                .for_each(|(chunk, dst)| {
                    for (j, patch) in dst.chunks_exact_mut(row).enumerate() {
                        let p = start + chunk * 64 + j;
                        let (b, rest) = (p / (oh * ow), p % (oh * ow));
                        let (oy, ox) = (rest / ow, rest % ow);
                        let img = &x.data[b * x.h * x.w * c..(b + 1) * x.h * x.w * c];
                        for kh in 0..k {
                            let src = ((oy + kh) * x.w + ox) * c;
                            patch[kh * kc..(kh + 1) * kc].copy_from_slice(&img[src..src + kc]);
                        }
                    }
                });
            let cols = Tensor::from_vec(cols, (m, row), self.wmat.device())?;
            let mut part = cols.matmul(&self.wmat)?.flatten_all()?.to_vec1::<f32>()?;
            bias_prelu(&mut part, &self.bias, self.alpha.as_deref());
            out.extend_from_slice(&part);
        }
        Ok(Nhwc::new(x.n, oh, ow, c_out, out))
    }
}

impl ConvNhwc {
    /// Direct convolution for thin layers (an RGB input layer has only 27
    /// inputs per output pixel, too few for a matrix product to pay off):
    /// the `CO` accumulators stay in registers. Rows run in parallel.
    fn direct<const CO: usize>(&self, x: &Nhwc) -> Vec<f32> {
        use rayon::prelude::*;
        let (oh, ow) = (x.h - self.k + 1, x.w - self.k + 1);
        let mut out = vec![0f32; x.n * oh * ow * CO];
        out.par_chunks_mut(ow * CO)
            .enumerate()
            .for_each(|(ny, dst)| {
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    unsafe { direct_row_avx2::<CO>(self, x, ny, dst) };
                    return;
                }
                direct_row::<CO>(self, x, ny, dst);
            });
        out
    }
}

/// Largest im2col row (`k·k·c_in`) handled by the direct kernel.
const DIRECT_MAX_ROW: usize = 27;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn direct_row_avx2<const CO: usize>(conv: &ConvNhwc, x: &Nhwc, ny: usize, dst: &mut [f32]) {
    direct_row::<CO>(conv, x, ny, dst)
}

/// One output row `ny` (batch-major) of the direct kernel.
#[inline(always)]
fn direct_row<const CO: usize>(conv: &ConvNhwc, x: &Nhwc, ny: usize, dst: &mut [f32]) {
    let (k, c) = (conv.k, x.c);
    let oh = x.h - k + 1;
    let (b, oy) = (ny / oh, ny % oh);
    let img = &x.data[b * x.h * x.w * c..(b + 1) * x.h * x.w * c];
    let kc = k * c;
    let bias: [f32; CO] = conv.bias[..CO].try_into().expect("bias length");
    for (ox, out) in dst.chunks_exact_mut(CO).enumerate() {
        let mut acc = bias;
        for kh in 0..k {
            let src = ((oy + kh) * x.w + ox) * c;
            let patch = &img[src..src + kc];
            let wrows = &conv.wvec[kh * kc * CO..(kh + 1) * kc * CO];
            for (v, wrow) in patch.iter().zip(wrows.chunks_exact(CO)) {
                // A fixed-size view lets the compiler unroll and vectorise.
                let wrow: &[f32; CO] = wrow.try_into().expect("weight row");
                for i in 0..CO {
                    acc[i] += v * wrow[i];
                }
            }
        }
        if let Some(alpha) = &conv.alpha {
            for (a, s) in acc.iter_mut().zip(alpha) {
                *a = if *a < 0.0 { *a * s } else { *a };
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// Floats per im2col tile (1 MiB): fits the L2 cache of current CPUs.
const IM2COL_TILE_FLOATS: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module};

    #[test]
    fn conv_nhwc_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        // (c_out, c_in, k, width): the direct kernel of the RGB layer, a 1×1
        // head, and the im2col path with several channel counts.
        for (co, ci, k, wd) in [
            (7, 5, 3, 11),
            (10, 3, 3, 12),
            (20, 16, 3, 14),
            (32, 16, 3, 7),
            (6, 32, 1, 9),
            (40, 5, 3, 11),
            (48, 28, 3, 10),
        ] {
            let x = Tensor::randn(0f32, 1., (2, ci, 9, wd), &dev)?;
            let w = Tensor::randn(0f32, 1., (co, ci, k, k), &dev)?;
            let b = Tensor::randn(0f32, 1., co, &dev)?;
            let a = Tensor::rand(0f32, 1., co, &dev)?;
            let reference = candle_nn::PReLU::new(a.clone(), false).forward(
                &x.conv2d(&w, 0, 1, 1, 1)?
                    .broadcast_add(&b.reshape((1, co, 1, 1))?)?,
            )?;
            let fast = ConvNhwc::new(&w, &b, Some(&a))?.forward(&Nhwc::from_nchw(&x)?)?;
            let diff = (fast.to_nchw(&dev)? - reference)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-3, "{co}x{ci}x{k}: {diff}");
            let plain = ConvNhwc::new(&w, &b, None)?.forward(&Nhwc::from_nchw(&x)?)?;
            assert_eq!((plain.h, plain.w, plain.c), (9 - k + 1, wd - k + 1, co));
        }
        Ok(())
    }
}
