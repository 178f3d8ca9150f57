//! The N·H·W·C feature-map layout of the MTCNN detector's CPU path, and the
//! W·H·C flatten order its dense layers were trained with.

use candle_core::{Result, Tensor};

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

/// Concatenate maps of the same batch and size along channels, in order,
/// as `Tensor::cat(&maps, 1)` does in NCHW.
pub fn concat_channels(maps: &[&Nhwc]) -> Result<Nhwc> {
    let Some(first) = maps.first() else {
        candle_core::bail!("nothing to concatenate");
    };
    let (n, h, w) = (first.n, first.h, first.w);
    if let Some(m) = maps.iter().find(|m| (m.n, m.h, m.w) != (n, h, w)) {
        candle_core::bail!(
            "cannot concatenate {n}x{h}x{w} and {}x{}x{} maps",
            m.n,
            m.h,
            m.w
        );
    }
    let c: usize = maps.iter().map(|m| m.c).sum();
    let mut data = vec![0f32; n * h * w * c];
    let mut off = 0;
    for m in maps.iter().filter(|m| m.c > 0) {
        for (dst, src) in data.chunks_exact_mut(c).zip(m.data.chunks_exact(m.c)) {
            dst[off..off + m.c].copy_from_slice(src);
        }
        off += m.c;
    }
    Ok(Nhwc::new(n, h, w, c, data))
}

/// Flatten NCHW features the way the MTCNN dense layers were trained: the
/// original Caffe model saw transposed images, so facenet-pytorch permutes to
/// N·W·H·C before flattening, and its weights only fit that order.
pub fn flatten_whc(xs: &Tensor) -> Result<Tensor> {
    xs.permute((0, 3, 2, 1))?.contiguous()?.flatten_from(1)
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn flatten_orders_match() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 3, 4, 5), &dev)?;
        let reference = flatten_whc(&x)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(flatten_whc_nhwc(&Nhwc::from_nchw(&x)?), reference);
        Ok(())
    }

    #[test]
    fn concat_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        let a = Tensor::randn(0f32, 1., (2, 3, 4, 5), &dev)?;
        let b = Tensor::randn(0f32, 1., (2, 2, 4, 5), &dev)?;
        let want = Tensor::cat(&[&a, &b], 1)?;
        let got =
            concat_channels(&[&Nhwc::from_nchw(&a)?, &Nhwc::from_nchw(&b)?])?.to_nchw(&dev)?;
        assert_eq!(crate::models::ops::tensor::max_abs_diff(&got, &want), 0.0);
        Ok(())
    }
}
