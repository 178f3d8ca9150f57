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

/// Largest absolute elementwise difference between two tensors (test helper).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
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

// ---------------------------------------------------------------------------
// Differentiable operations for the chest deformation model (PriCheXy-Net).
// Candle 0.11 has no grid_sample, no backward for upsample_bilinear2d and no
// backward for max-pool when kernel != stride, so these are composed from
// primitives whose backward passes candle does have (gather, maximum,
// matmul, conv2d, narrow/cat).
// ---------------------------------------------------------------------------

/// Bilinear `grid_sample` with `padding_mode="border"` and
/// `align_corners=true`, as PyTorch defines it.
///
/// `input` is N×C×H×W, `grid` is N×Ho×Wo×2 with (x, y) in [-1, 1]; -1 is the
/// centre of the first pixel and +1 that of the last. Coordinates outside are
/// clamped to the border. Gradients flow to both `input` and `grid` (the
/// corner indices come from `floor`, which candle treats as constant).
pub fn grid_sample(input: &Tensor, grid: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = input.dims4()?;
    let (gn, ho, wo, two) = grid.dims4()?;
    if gn != n || two != 2 {
        candle_core::bail!(
            "grid_sample: grid {:?} for input {:?}",
            grid.dims(),
            input.dims()
        );
    }
    let gx = grid.narrow(3, 0, 1)?.squeeze(3)?; // N×Ho×Wo
    let gy = grid.narrow(3, 1, 1)?.squeeze(3)?;
    let ix = ((gx + 1.0)? * ((w as f64 - 1.0) / 2.0))?.clamp(0f32, (w - 1) as f32)?;
    let iy = ((gy + 1.0)? * ((h as f64 - 1.0) / 2.0))?.clamp(0f32, (h - 1) as f32)?;
    let x0 = ix.floor()?.detach();
    let y0 = iy.floor()?.detach();
    let wx = (&ix - &x0)?; // in [0, 1]
    let wy = (&iy - &y0)?;
    let x1 = (&x0 + 1.0)?.clamp(0f32, (w - 1) as f32)?;
    let y1 = (&y0 + 1.0)?.clamp(0f32, (h - 1) as f32)?;
    let flat = input.reshape((n, c, h * w))?;
    let gather = |yy: &Tensor, xx: &Tensor| -> Result<Tensor> {
        let idx = ((yy * w as f64)? + xx)?
            .to_dtype(DType::U32)?
            .reshape((n, 1, ho * wo))?
            .broadcast_as((n, c, ho * wo))?
            .contiguous()?;
        flat.gather(&idx, 2)?.reshape((n, c, ho, wo))
    };
    let v00 = gather(&y0, &x0)?;
    let v01 = gather(&y0, &x1)?;
    let v10 = gather(&y1, &x0)?;
    let v11 = gather(&y1, &x1)?;
    let wx = wx.unsqueeze(1)?.to_dtype(input.dtype())?;
    let wy = wy.unsqueeze(1)?.to_dtype(input.dtype())?;
    let top = (v00.broadcast_mul(&(1.0 - &wx)?)? + v01.broadcast_mul(&wx)?)?;
    let bot = (v10.broadcast_mul(&(1.0 - &wx)?)? + v11.broadcast_mul(&wx)?)?;
    top.broadcast_mul(&(1.0 - &wy)?)? + bot.broadcast_mul(&wy)?
}

/// The identity sampling grid (N×H×W×2, x then y, align_corners=true).
pub fn identity_grid(n: usize, h: usize, w: usize, device: &candle_core::Device) -> Result<Tensor> {
    let lin = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|i| {
                if len > 1 {
                    -1.0 + 2.0 * i as f32 / (len - 1) as f32
                } else {
                    0.0
                }
            })
            .collect()
    };
    let xs = Tensor::from_vec(lin(w), (1, w), device)?.broadcast_as((h, w))?;
    let ys = Tensor::from_vec(lin(h), (h, 1), device)?.broadcast_as((h, w))?;
    Tensor::stack(&[xs, ys], 2)?
        .unsqueeze(0)?
        .broadcast_as((n, h, w, 2))?
        .contiguous()
}

/// Normalised 1-D Gaussian taps (sum 1).
pub fn gaussian_taps(size: usize, sigma: f64) -> Vec<f32> {
    let c = (size as f64 - 1.0) / 2.0;
    let raw: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = raw.iter().sum();
    raw.iter().map(|v| (v / s) as f32).collect()
}

/// Separable Gaussian smoothing of every channel of an N×C×H×W tensor with
/// **replicate** padding (edge values repeated). Replicate rather than zero
/// padding so that a displacement field is not pulled towards zero at the
/// image border; and because the taps are non-negative and sum to one, every
/// output is a convex combination of inputs, so |smoothed| <= max |input|.
pub fn gaussian_blur(xs: &Tensor, size: usize, sigma: f64) -> Result<Tensor> {
    let (n, c, h, w) = xs.dims4()?;
    let taps = gaussian_taps(size, sigma);
    let r = size / 2;
    let dev = xs.device();
    let kx = Tensor::from_vec(taps.clone(), (1, 1, 1, size), dev)?.to_dtype(xs.dtype())?;
    let ky = Tensor::from_vec(taps, (1, 1, size, 1), dev)?.to_dtype(xs.dtype())?;
    let flat = xs.reshape((n * c, 1, h, w))?;
    let padded = flat.pad_with_same(3, r, r)?;
    let rows = padded.conv2d(&kx, 0, 1, 1, 1)?;
    let padded = rows.pad_with_same(2, r, r)?;
    padded.conv2d(&ky, 0, 1, 1, 1)?.reshape((n, c, h, w))
}

/// Bilinear interpolation matrix (out×inp) mapping a length-`inp` signal to
/// length `out`. `align_corners=true` maps first/last samples onto each
/// other (right for fields in normalized grid units); `false` uses PyTorch's
/// half-pixel centres (right for images).
pub fn interp_matrix(out: usize, inp: usize, align_corners: bool) -> Vec<f32> {
    let mut m = vec![0f32; out * inp];
    for o in 0..out {
        let src = if align_corners {
            if out > 1 {
                o as f64 * (inp as f64 - 1.0) / (out as f64 - 1.0)
            } else {
                0.0
            }
        } else {
            ((o as f64 + 0.5) * inp as f64 / out as f64 - 0.5).max(0.0)
        };
        let i0 = (src.floor() as usize).min(inp - 1);
        let i1 = (i0 + 1).min(inp - 1);
        let f = (src - i0 as f64) as f32;
        m[o * inp + i0] += 1.0 - f;
        m[o * inp + i1] += f;
    }
    m
}

/// Bilinear resize of N×C×H×W to N×C×oh×ow as two matrix products
/// (A_h · X · A_wᵀ), so the backward pass is candle's matmul backward.
pub fn resize_bilinear(xs: &Tensor, oh: usize, ow: usize, align_corners: bool) -> Result<Tensor> {
    let (_n, _c, h, w) = xs.dims4()?;
    let dev = xs.device();
    let ah = Tensor::from_vec(interp_matrix(oh, h, align_corners), (oh, h), dev)?
        .to_dtype(xs.dtype())?;
    let awt = Tensor::from_vec(interp_matrix(ow, w, align_corners), (ow, w), dev)?
        .to_dtype(xs.dtype())?
        .t()?;
    ah.broadcast_matmul(xs)?.broadcast_matmul(&awt)
}

/// Max-pool (k×k, stride s, symmetric zero-cost padding `pad`) whose backward
/// works for any kernel/stride: the padded border is a large negative value,
/// each of the k² window offsets is a strided view (narrow + reshape), and
/// the result is their elementwise maximum. Output size is PyTorch's
/// floor((H + 2·pad − k)/s) + 1.
pub fn max_pool2d_padded(xs: &Tensor, k: usize, s: usize, pad: usize) -> Result<Tensor> {
    let (n, c, h, w) = xs.dims4()?;
    let oh = (h + 2 * pad - k) / s + 1;
    let ow = (w + 2 * pad - k) / s + 1;
    // Room for k-1 + s*oh rows so every offset can take s*oh rows.
    let ph = (k - 1 + s * oh).max(h + 2 * pad);
    let pw = (k - 1 + s * ow).max(w + 2 * pad);
    let neg = -1e30f64;
    let dev = xs.device();
    // Pad `x` along `dim` with `before` and `after` slices of `neg`.
    let pad_along = |x: Tensor, dim: usize, before: usize, after: usize| -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let fill = |len: usize| -> Result<Tensor> {
            let mut shape = dims.clone();
            shape[dim] = len;
            Tensor::full(neg as f32, shape, dev)?.to_dtype(xs.dtype())
        };
        let mut parts = vec![];
        if before > 0 {
            parts.push(fill(before)?);
        }
        parts.push(x);
        if after > 0 {
            parts.push(fill(after)?);
        }
        Tensor::cat(&parts, dim)
    };
    let x = pad_along(xs.clone(), 3, pad, pw - w - pad)?;
    let x = pad_along(x, 2, pad, ph - h - pad)?;
    let mut out: Option<Tensor> = None;
    for ky in 0..k {
        for kx in 0..k {
            let v = x
                .narrow(2, ky, s * oh)?
                .narrow(3, kx, s * ow)?
                .reshape((n, c, oh, s, ow, s))?
                .narrow(3, 0, 1)?
                .narrow(5, 0, 1)?
                .reshape((n, c, oh, ow))?;
            out = Some(match out {
                None => v,
                Some(o) => o.maximum(&v)?,
            });
        }
    }
    out.ok_or_else(|| candle_core::Error::Msg("max_pool2d_padded: empty kernel".into()))
}

/// log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(−|x|)).
pub fn softplus(xs: &Tensor) -> Result<Tensor> {
    xs.relu()? + (xs.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Mean binary cross-entropy on logits, stable for large |x|:
/// max(x, 0) − x·y + log(1 + exp(−|x|)).
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    (softplus(logits)? - (logits * targets)?)?.mean_all()
}

#[cfg(test)]
mod chest_op_tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rnd(n: usize, seed: u64) -> Vec<f32> {
        // Small LCG: deterministic test data without extra dependencies.
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) as f32
            })
            .collect()
    }

    /// Reference grid_sample written independently with f64 loops.
    fn grid_sample_ref(
        inp: &[f32],
        c: usize,
        h: usize,
        w: usize,
        grid: &[f32],
        ho: usize,
        wo: usize,
    ) -> Vec<f64> {
        let mut out = vec![0f64; c * ho * wo];
        for i in 0..ho * wo {
            let gx = grid[2 * i] as f64;
            let gy = grid[2 * i + 1] as f64;
            let x = ((gx + 1.0) / 2.0 * (w - 1) as f64).clamp(0.0, (w - 1) as f64);
            let y = ((gy + 1.0) / 2.0 * (h - 1) as f64).clamp(0.0, (h - 1) as f64);
            for ch in 0..c {
                let px = |yy: i64, xx: i64| {
                    let yy = yy.clamp(0, h as i64 - 1) as usize;
                    let xx = xx.clamp(0, w as i64 - 1) as usize;
                    inp[ch * h * w + yy * w + xx] as f64
                };
                let (x0, y0) = (x.floor(), y.floor());
                let (fx, fy) = (x - x0, y - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                out[ch * ho * wo + i] = px(y0, x0) * (1.0 - fx) * (1.0 - fy)
                    + px(y0, x0 + 1) * fx * (1.0 - fy)
                    + px(y0 + 1, x0) * (1.0 - fx) * fy
                    + px(y0 + 1, x0 + 1) * fx * fy;
            }
        }
        out
    }

    #[test]
    fn grid_sample_matches_reference_including_border() {
        let dev = Device::Cpu;
        let (c, h, w, ho, wo) = (2, 5, 7, 4, 6);
        let inp = rnd(c * h * w, 1);
        // Grid in [-1.3, 1.3] so some points fall outside and hit the border.
        let grid: Vec<f32> = rnd(ho * wo * 2, 2).iter().map(|v| v * 2.6 - 1.3).collect();
        let t = Tensor::from_vec(inp.clone(), (1, c, h, w), &dev).unwrap();
        let g = Tensor::from_vec(grid.clone(), (1, ho, wo, 2), &dev).unwrap();
        let got: Vec<f32> = grid_sample(&t, &g)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = grid_sample_ref(&inp, c, h, w, &grid, ho, wo);
        for (a, b) in got.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn grid_sample_identity_grid_is_identity() {
        let dev = Device::Cpu;
        let inp = rnd(3 * 9 * 11, 3);
        let t = Tensor::from_vec(inp.clone(), (1, 3, 9, 11), &dev).unwrap();
        let g = identity_grid(1, 9, 11, &dev).unwrap();
        let got: Vec<f32> = grid_sample(&t, &g)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in got.iter().zip(&inp) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn grid_sample_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let (h, w, ho, wo) = (4, 5, 3, 3);
        let inp = rnd(h * w, 4);
        // Keep points strictly inside and ≥ 0.1 px away from integer positions
        // so the function is smooth where we difference it.
        let r = rnd(ho * wo * 4, 5);
        let grid: Vec<f32> = (0..ho * wo * 2)
            .map(|k| {
                let len = if k % 2 == 0 { w } else { h };
                let cell = (r[2 * k] * (len - 1) as f32).floor().min((len - 2) as f32);
                let px = cell + 0.1 + 0.8 * r[2 * k + 1];
                px / (len - 1) as f32 * 2.0 - 1.0
            })
            .collect();
        let wts = rnd(ho * wo, 6); // loss = sum(weights * out)
        let loss_of = |inp: &[f32], grid: &[f32]| -> f64 {
            let o = grid_sample_ref(inp, 1, h, w, grid, ho, wo);
            o.iter().zip(&wts).map(|(a, b)| a * *b as f64).sum()
        };
        let vi = Var::from_vec(inp.clone(), (1, 1, h, w), &dev).unwrap();
        let vg = Var::from_vec(grid.clone(), (1, ho, wo, 2), &dev).unwrap();
        let wt = Tensor::from_vec(wts.clone(), (1, 1, ho, wo), &dev).unwrap();
        let loss = (grid_sample(vi.as_tensor(), vg.as_tensor()).unwrap() * &wt)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let grad_of = |v: &Var| -> Vec<f32> {
            grads
                .get(v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let (gi, gg) = (grad_of(&vi), grad_of(&vg));
        let eps = 1e-3f32;
        // Central differences of the loss in each entry of `base` (`loss` of
        // the perturbed copy) against the autograd gradient `g`.
        let check =
            |what: &str, base: &[f32], g: &[f32], tol: f64, loss: &dyn Fn(&[f32]) -> f64| {
                for k in 0..base.len() {
                    let (mut p, mut m) = (base.to_vec(), base.to_vec());
                    p[k] += eps;
                    m[k] -= eps;
                    let fd = (loss(&p) - loss(&m)) / (2.0 * eps as f64);
                    assert!(
                        (fd - g[k] as f64).abs() < tol,
                        "{what} grad {k}: {fd} vs {}",
                        g[k]
                    );
                }
            };
        check("input", &inp, &gi, 1e-3, &|p| loss_of(p, &grid));
        check("grid", &grid, &gg, 2e-3, &|p| loss_of(&inp, p));
    }

    #[test]
    fn gaussian_blur_matches_naive_replicate_convolution() {
        let dev = Device::Cpu;
        let (h, w) = (12, 10);
        let inp = rnd(h * w, 7);
        let t = Tensor::from_vec(inp.clone(), (1, 1, h, w), &dev).unwrap();
        let got: Vec<f32> = gaussian_blur(&t, 9, 2.0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Naive 2-D 9×9 Gaussian, replicate border, f64, built from exp directly.
        let g = |d: i64| (-(d * d) as f64 / 8.0).exp();
        let norm: f64 = (-4..=4).map(g).sum::<f64>().powi(2);
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                let mut acc = 0.0;
                for dy in -4..=4i64 {
                    for dx in -4..=4i64 {
                        let yy = (y + dy).clamp(0, h as i64 - 1) as usize;
                        let xx = (x + dx).clamp(0, w as i64 - 1) as usize;
                        acc += g(dy) * g(dx) * inp[yy * w + xx] as f64;
                    }
                }
                let want = acc / norm;
                let a = got[y as usize * w + x as usize] as f64;
                assert!((a - want).abs() < 1e-5, "({y},{x}) {a} vs {want}");
            }
        }
        // Taps are a normalised, symmetric Gaussian.
        let taps = gaussian_taps(9, 2.0);
        assert!((taps.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((taps[0] - taps[8]).abs() < 1e-9 && taps[4] > taps[3]);
    }

    #[test]
    fn resize_matches_hand_values_and_backward_runs() {
        let dev = Device::Cpu;
        // align_corners: [0, 3] -> 4 samples 0,1,2,3.
        let t = Tensor::from_vec(vec![0f32, 3.0, 0.0, 3.0], (1, 1, 2, 2), &dev).unwrap();
        let up: Vec<f32> = resize_bilinear(&t, 2, 4, true)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(up, vec![0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0]);
        // Half-pixel: [0, 4] -> 4 samples 0, 1, 3, 4 (PyTorch align_corners=False).
        let t = Tensor::from_vec(vec![0f32, 4.0], (1, 1, 1, 2), &dev).unwrap();
        let up: Vec<f32> = resize_bilinear(&t, 1, 4, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(up, vec![0.0, 1.0, 3.0, 4.0]);
        // Backward: d(sum(resize(x)))/dx = column sums of the matrices.
        let v = Var::from_vec(vec![1f32; 6], (1, 1, 2, 3), &dev).unwrap();
        let s = resize_bilinear(v.as_tensor(), 3, 5, true)
            .unwrap()
            .sum_all()
            .unwrap();
        let g: Vec<f32> = s
            .backward()
            .unwrap()
            .get(&v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Rows 2->3: column sums [1.5, 1.5]; cols 3->5: [1.5, 2, 1.5].
        let want = [2.25f32, 3.0, 2.25, 2.25, 3.0, 2.25];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn max_pool_padded_matches_naive_and_has_gradient() {
        let dev = Device::Cpu;
        let (h, w) = (7, 6);
        let inp: Vec<f32> = rnd(h * w, 8).iter().map(|v| v - 0.5).collect();
        let v = Var::from_vec(inp.clone(), (1, 1, h, w), &dev).unwrap();
        let out = max_pool2d_padded(v.as_tensor(), 3, 2, 1).unwrap();
        assert_eq!(out.dims(), &[1, 1, 4, 3]);
        let got: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        for oy in 0..4i64 {
            for ox in 0..3i64 {
                let mut m = f32::NEG_INFINITY;
                for y in (2 * oy - 1)..(2 * oy + 2) {
                    for x in (2 * ox - 1)..(2 * ox + 2) {
                        if y >= 0 && x >= 0 && y < h as i64 && x < w as i64 {
                            m = m.max(inp[(y as usize) * w + x as usize]);
                        }
                    }
                }
                assert_eq!(got[(oy * 3 + ox) as usize], m);
            }
        }
        let g = out.sum_all().unwrap().backward().unwrap();
        let gs: f32 = g.get(&v).unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(
            (gs - 12.0).abs() < 1e-6,
            "one unit of gradient per output, got {gs}"
        );
    }

    #[test]
    fn bce_with_logits_is_stable_and_correct() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[0f32, 2.0, -3.0, 100.0, -100.0], &dev).unwrap();
        let y = Tensor::new(&[1f32, 0.0, 1.0, 1.0, 0.0], &dev).unwrap();
        let got: f32 = bce_with_logits(&x, &y).unwrap().to_scalar().unwrap();
        let naive = |x: f64, y: f64| {
            let p = 1.0 / (1.0 + (-x).exp());
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        };
        // The ±100 terms are ~0 (naive f64 would give 0 too: p = 1 exactly).
        let want = (naive(0.0, 1.0) + naive(2.0, 0.0) + naive(-3.0, 1.0)) / 5.0;
        assert!((got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        let big = Tensor::new(&[100f32], &dev).unwrap();
        let l: f32 = bce_with_logits(&big, &Tensor::new(&[0f32], &dev).unwrap())
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((l - 100.0).abs() < 1e-4 && l.is_finite());
    }
}
