//! Max pooling with PyTorch's `ceil_mode=True`, as the MTCNN weights were
//! trained: over NCHW tensors and over the detector's NHWC feature maps.

use super::nhwc::Nhwc;
use candle_core::{Result, Tensor};

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
}
