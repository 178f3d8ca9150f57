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
