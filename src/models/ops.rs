//! Tensor operations shared by the pixel models that candle does not offer
//! in the exact form the pretrained weights expect.

use candle_core::{DType, Result, Tensor};

/// Output length of a pooling window sweep in PyTorch's `ceil_mode=True`:
/// the last, partial window counts as long as it starts inside the input.
pub fn ceil_pool_len(len: usize, kernel: usize, stride: usize) -> usize {
    if len <= kernel {
        return 1;
    }
    let mut out = (len - kernel).div_ceil(stride) + 1;
    if (out - 1) * stride >= len {
        out -= 1;
    }
    out
}

/// 2-D max pooling over an NCHW tensor with PyTorch's `ceil_mode=True`.
///
/// candle pools in floor mode only; the networks were trained with ceil mode,
/// so the right and bottom edges are padded with `-inf` (never with zeros:
/// PReLU outputs are negative and a zero would win the max) until floor mode
/// yields the ceil-mode size.
pub fn max_pool2d_ceil(xs: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    let (n, c, h, w) = xs.dims4()?;
    let oh = ceil_pool_len(h, kernel, stride);
    let ow = ceil_pool_len(w, kernel, stride);
    let need_h = (oh - 1) * stride + kernel;
    let need_w = (ow - 1) * stride + kernel;
    let mut xs = xs.clone();
    if need_h > h {
        let pad = Tensor::full(f32::NEG_INFINITY, (n, c, need_h - h, w), xs.device())?
            .to_dtype(xs.dtype())?;
        xs = Tensor::cat(&[&xs, &pad], 2)?;
    }
    if need_w > w {
        let pad = Tensor::full(
            f32::NEG_INFINITY,
            (n, c, need_h.max(h), need_w - w),
            xs.device(),
        )?
        .to_dtype(xs.dtype())?;
        xs = Tensor::cat(&[&xs, &pad], 3)?;
    }
    xs.max_pool2d_with_stride(kernel, stride)
}

/// Flatten NCHW features the way the MTCNN dense layers were trained: the
/// original Caffe model saw transposed images, so facenet-pytorch permutes to
/// N·W·H·C before flattening, and its weights only fit that order.
pub fn flatten_whc(xs: &Tensor) -> Result<Tensor> {
    xs.permute((0, 3, 2, 1))?.contiguous()?.flatten_from(1)
}

/// Make sure a tensor is f32 (weights may be stored in another dtype).
pub fn as_f32(xs: &Tensor) -> Result<Tensor> {
    if xs.dtype() == DType::F32 {
        Ok(xs.clone())
    } else {
        xs.to_dtype(DType::F32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn ceil_len_matches_pytorch() {
        // Sizes that occur in MTCNN: 24 -> 22 -> pool(3,2) -> 11, 48 -> 46 -> 23.
        assert_eq!(ceil_pool_len(22, 3, 2), 11);
        assert_eq!(ceil_pool_len(46, 3, 2), 23);
        assert_eq!(ceil_pool_len(21, 3, 2), 10);
        assert_eq!(ceil_pool_len(10, 2, 2), 5);
        assert_eq!(ceil_pool_len(11, 2, 2), 6);
        assert_eq!(ceil_pool_len(2, 3, 2), 1);
    }

    #[test]
    fn ceil_pool_keeps_negative_edges() -> Result<()> {
        let dev = Device::Cpu;
        let xs = Tensor::from_vec(vec![-5f32, -4., -3., -2., -1.], (1, 1, 1, 5), &dev)?;
        let ys = max_pool2d_ceil(&xs, 2, 2)?;
        assert_eq!(ys.flatten_all()?.to_vec1::<f32>()?, vec![-4., -2., -1.]);
        Ok(())
    }
}

/// A batch of feature maps in N·H·W·C order, on the CPU.
///
/// candle's CPU convolution is slow for the few-channel layers of small
/// detectors (it tiles output pixels into many tiny matrix products). In
/// NHWC order a valid convolution is one im2col pass plus one tall matrix
/// product, which candle's gemm runs several times faster; the layout then
/// carries straight into the next layer without transposes.
#[derive(Clone, Debug, PartialEq)]
pub struct Nhwc {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

impl Nhwc {
    pub fn new(n: usize, h: usize, w: usize, c: usize, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), n * h * w * c);
        Self { n, h, w, c, data }
    }

    /// From an NCHW tensor (for tests and for device round trips).
    pub fn from_nchw(xs: &Tensor) -> Result<Self> {
        let (n, c, h, w) = xs.dims4()?;
        let data = xs
            .permute((0, 2, 3, 1))?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(Self::new(n, h, w, c, data))
    }

    /// As an NCHW tensor on `device`.
    pub fn to_nchw(&self, device: &candle_core::Device) -> Result<Tensor> {
        Tensor::from_slice(&self.data, (self.n, self.h, self.w, self.c), device)?
            .permute((0, 3, 1, 2))?
            .contiguous()
    }
}

/// Apply a per-channel bias and, when given, PReLU slopes in place to rows of
/// `c` channels.
fn bias_prelu(data: &mut [f32], bias: &[f32], alpha: Option<&[f32]>) {
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

/// A dense layer with bias and optional PReLU over rows of features.
pub struct DenseRows {
    /// `(in, out)`.
    wmat: Tensor,
    bias: Vec<f32>,
    alpha: Option<Vec<f32>>,
}

impl DenseRows {
    /// From PyTorch-layout weights `(out, in)`.
    pub fn new(weight: &Tensor, bias: &Tensor, alpha: Option<&Tensor>) -> Result<Self> {
        Ok(Self {
            wmat: as_f32(weight)?.t()?.contiguous()?,
            bias: as_f32(bias)?.to_vec1()?,
            alpha: alpha.map(|a| as_f32(a)?.to_vec1()).transpose()?,
        })
    }

    /// `rows` is `n × in`, row-major; returns `n × out`.
    pub fn forward(&self, rows: Vec<f32>, n: usize) -> Result<Vec<f32>> {
        let d_in = self.wmat.dim(0)?;
        let x = Tensor::from_vec(rows, (n, d_in), self.wmat.device())?;
        let mut out = x.matmul(&self.wmat)?.flatten_all()?.to_vec1::<f32>()?;
        bias_prelu(&mut out, &self.bias, self.alpha.as_deref());
        Ok(out)
    }
}

/// Max pooling with PyTorch's `ceil_mode=True` in NHWC order.
pub fn max_pool_ceil_nhwc(x: &Nhwc, kernel: usize, stride: usize) -> Nhwc {
    use rayon::prelude::*;
    let (oh, ow) = (
        ceil_pool_len(x.h, kernel, stride),
        ceil_pool_len(x.w, kernel, stride),
    );
    let c = x.c;
    let mut out = vec![f32::NEG_INFINITY; x.n * oh * ow * c];
    out.par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(ny, out_row)| {
            let (b, oy) = (ny / oh, ny % oh);
            let img = &x.data[b * x.h * x.w * c..(b + 1) * x.h * x.w * c];
            let (y0, y1) = (oy * stride, (oy * stride + kernel).min(x.h));
            for ox in 0..ow {
                let (x0, x1) = (ox * stride, (ox * stride + kernel).min(x.w));
                let dst = &mut out_row[ox * c..(ox + 1) * c];
                for y in y0..y1 {
                    for xx in x0..x1 {
                        let src = &img[(y * x.w + xx) * c..(y * x.w + xx + 1) * c];
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d = d.max(*s);
                        }
                    }
                }
            }
        });
    Nhwc::new(x.n, oh, ow, c, out)
}

/// Flatten each map in W·H·C order, the order MTCNN's dense layers expect
/// (see [`flatten_whc`]).
pub fn flatten_whc_nhwc(x: &Nhwc) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.data.len());
    for b in 0..x.n {
        let img = &x.data[b * x.h * x.w * x.c..(b + 1) * x.h * x.w * x.c];
        for xx in 0..x.w {
            for y in 0..x.h {
                out.extend_from_slice(&img[(y * x.w + xx) * x.c..(y * x.w + xx + 1) * x.c]);
            }
        }
    }
    out
}

/// Probability of class 1 from two logits (a two-way softmax).
pub fn softmax2(l0: f32, l1: f32) -> f32 {
    1.0 / (1.0 + (l0 - l1).exp())
}

#[cfg(test)]
mod nhwc_tests {
    use super::*;
    use candle_core::{Device, Module};

    #[test]
    fn conv_nhwc_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 5, 9, 11), &dev)?;
        let w = Tensor::randn(0f32, 1., (7, 5, 3, 3), &dev)?;
        let b = Tensor::randn(0f32, 1., 7, &dev)?;
        let a = Tensor::rand(0f32, 1., 7, &dev)?;
        let reference = candle_nn::PReLU::new(a.clone(), false).forward(
            &x.conv2d(&w, 0, 1, 1, 1)?
                .broadcast_add(&b.reshape((1, 7, 1, 1))?)?,
        )?;
        let fast = ConvNhwc::new(&w, &b, Some(&a))?.forward(&Nhwc::from_nchw(&x)?)?;
        let diff = (fast.to_nchw(&dev)? - reference)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-4, "{diff}");
        Ok(())
    }

    #[test]
    fn pool_nhwc_matches_nchw() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 3, 11, 10), &dev)?;
        for (k, s) in [(2, 2), (3, 2)] {
            let reference = max_pool2d_ceil(&x, k, s)?;
            let fast = max_pool_ceil_nhwc(&Nhwc::from_nchw(&x)?, k, s).to_nchw(&dev)?;
            let diff = (fast - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(diff, 0.0);
        }
        Ok(())
    }

    #[test]
    fn flatten_orders_match() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 3, 4, 5), &dev)?;
        let reference = flatten_whc(&x)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(flatten_whc_nhwc(&Nhwc::from_nchw(&x)?), reference);
        Ok(())
    }
}
