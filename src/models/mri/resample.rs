//! Differentiable trilinear sampling in candle (candle has no grid_sample):
//! corner indices come from detached floor/clamp and an index gather, the
//! fractional weights stay on the autograd tape, so gradients flow from the
//! sampled intensities back to the sampling coordinates (and the affine).

use candle_core::{DType, Result, Tensor, D};

/// A volume flattened for gathering (i fastest), on some device.
pub struct GridTensor {
    pub data: Tensor,
    pub dims: [usize; 3],
}

impl GridTensor {
    pub fn new(vol: &super::Volume, dev: &candle_core::Device) -> Result<Self> {
        assert!(vol.len() < (1 << 24), "index math is in f32");
        Ok(Self {
            data: Tensor::from_slice(&vol.data, vol.len(), dev)?,
            dims: vol.dims,
        })
    }

    /// Sample at voxel coordinates `v` (N, 3). Returns (values, inside) with
    /// `inside` 1.0 where the point lies within the grid (0.0 elsewhere; the
    /// value there is the clamped edge and should be masked by the caller).
    pub fn trilinear(&self, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let [nx, ny, nz] = self.dims;
        let axis = |a: usize, n: usize| -> Result<(Tensor, Tensor, Tensor, Tensor)> {
            let x = v.narrow(D::Minus1, a, 1)?.squeeze(D::Minus1)?;
            let xd = x.detach();
            let inside =
                xd.ge(-0.5)?.to_dtype(DType::F32)? * xd.le(n as f64 - 0.5)?.to_dtype(DType::F32)?;
            let hi = (n as f64 - 1.0001).max(0.0);
            let xc = x.clamp(0.0, hi)?;
            let x0 = xc.detach().floor()?;
            let f = (&xc - &x0)?;
            let x1 = if n > 1 { (&x0 + 1.0)? } else { x0.clone() };
            Ok((x0, x1, f, inside?))
        };
        let (x0, x1, fx, ix) = axis(0, nx)?;
        let (y0, y1, fy, iy) = axis(1, ny)?;
        let (z0, z1, fz, iz) = axis(2, nz)?;
        let inside = ((ix * iy)? * iz)?;
        let gather = |x: &Tensor, y: &Tensor, z: &Tensor| -> Result<Tensor> {
            let idx = ((x + (y * nx as f64)?)? + (z * (nx * ny) as f64)?)?;
            self.data.index_select(&idx.to_dtype(DType::U32)?, 0)
        };
        let lerp = |a: Tensor, b: Tensor, f: &Tensor| -> Result<Tensor> { &a + (f * (b - &a)?)? };
        let c00 = lerp(gather(&x0, &y0, &z0)?, gather(&x1, &y0, &z0)?, &fx)?;
        let c10 = lerp(gather(&x0, &y1, &z0)?, gather(&x1, &y1, &z0)?, &fx)?;
        let c01 = lerp(gather(&x0, &y0, &z1)?, gather(&x1, &y0, &z1)?, &fx)?;
        let c11 = lerp(gather(&x0, &y1, &z1)?, gather(&x1, &y1, &z1)?, &fx)?;
        let c0 = lerp(c00, c10, &fy)?;
        let c1 = lerp(c01, c11, &fy)?;
        Ok((lerp(c0, c1, &fz)?, inside))
    }
}
