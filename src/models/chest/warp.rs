//! From the generator's tanh output to a bounded, smooth displacement and a
//! warped image: d = −μ·tanh(UNet(x)), smoothed with a 9×9 σ=2 Gaussian
//! (replicate border), grid = identity + d, bilinear resampling with border
//! padding and align_corners=true. Displacements are in normalized grid
//! units: [−1, 1] spans the image, so μ = 0.01 is about 1.3 px at 256².

use crate::models::ops::blur::gaussian_blur;
use crate::models::ops::grid_sample::{grid_sample, identity_grid};
use candle_core::{Result, Tensor};

/// Gaussian smoothing of the displacement (PriCheXy-Net: 9×9, σ = 2).
pub const SMOOTH_SIZE: usize = 9;
pub const SMOOTH_SIGMA: f64 = 2.0;

/// The smoothed displacement N×2×S×S from the generator's tanh output.
/// Smoothing is a convex combination, so every component stays within μ.
pub fn displacement(tanh_out: &Tensor, mu: f64) -> Result<Tensor> {
    gaussian_blur(&(tanh_out * -mu)?, SMOOTH_SIZE, SMOOTH_SIGMA)
}

/// Resample `x` (N×C×H×W) along `identity + d` (d: N×2×H×W, x then y).
pub fn warp(x: &Tensor, d: &Tensor) -> Result<Tensor> {
    let (n, _, h, w) = x.dims4()?;
    let grid = identity_grid(n, h, w, x.device())?.broadcast_add(&d.permute((0, 2, 3, 1))?)?;
    grid_sample(x, &grid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn zero_field_is_identity() {
        let dev = Device::Cpu;
        let x = Tensor::rand(0f32, 1f32, (2, 1, 16, 16), &dev).unwrap();
        let d = Tensor::zeros((2, 2, 16, 16), candle_core::DType::F32, &dev).unwrap();
        let y = warp(&x, &d).unwrap();
        let diff = crate::models::ops::tensor::max_abs_diff(&y, &x);
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn displacement_is_bounded_by_mu() {
        let dev = Device::Cpu;
        let t = Tensor::rand(-1f32, 1f32, (1, 2, 16, 16), &dev)
            .unwrap()
            .tanh()
            .unwrap();
        let d = displacement(&t, 0.01).unwrap();
        let m: f32 = d.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(m <= 0.01 + 1e-7 && m > 0.0);
    }

    #[test]
    fn constant_shift_moves_the_image() {
        // A shift of one pixel in x (2/(W-1) grid units) samples the right neighbour.
        let dev = Device::Cpu;
        let w = 9usize;
        let x = Tensor::arange(0f32, (w * w) as f32, &dev)
            .unwrap()
            .reshape((1, 1, w, w))
            .unwrap();
        let dx = Tensor::full(2.0 / (w as f32 - 1.0), (1, 1, w, w), &dev).unwrap();
        let dy = Tensor::zeros((1, 1, w, w), candle_core::DType::F32, &dev).unwrap();
        let d = Tensor::cat(&[dx, dy], 1).unwrap();
        let y: Vec<f32> = warp(&x, &d)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!((y[0] - 1.0).abs() < 1e-4 && (y[w - 1] - (w - 1) as f32).abs() < 1e-4);
    }
}
