//! Random elastic baseline: a smooth random displacement with the same
//! bound μ as the learned field, so the model card can show what learning
//! the field adds over "just wobble the image by the same amount".
//!
//! An evaluation baseline only, so it lives in `crate::train`.

use crate::models::chest::warp::{SMOOTH_SIGMA, SMOOTH_SIZE};
use crate::models::ops::blur::gaussian_blur;
use crate::train::ops::resize::resize_bilinear;
use candle_core::{Device, Result, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Coarse control grid: one random vector every 8 pixels, upsampled.
const CONTROL_STEP: usize = 8;

/// A 1×2×S×S random field, smooth (bilinear control grid + the same
/// Gaussian as the learned warp), scaled so max |d| over both components
/// is exactly μ. Deterministic in `seed`.
pub fn random_field(size: usize, mu: f64, seed: u64, device: &Device) -> Result<Tensor> {
    let c = size / CONTROL_STEP + 1;
    let mut rng = StdRng::seed_from_u64(seed);
    let noise: Vec<f32> = (0..2 * c * c).map(|_| rng.gen_range(-1f32..1f32)).collect();
    let coarse = Tensor::from_vec(noise, (1, 2, c, c), device)?;
    let fine = resize_bilinear(&coarse, size, size, true)?;
    let smooth = gaussian_blur(&fine, SMOOTH_SIZE, SMOOTH_SIGMA)?;
    let m: f32 = smooth.abs()?.max_all()?.to_scalar()?;
    if m <= 0.0 {
        return smooth.zeros_like();
    }
    smooth * (mu / m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elastic_field_hits_but_never_exceeds_mu() {
        let d = random_field(32, 0.005, 7, &Device::Cpu).unwrap();
        let m: f32 = d.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!((m - 0.005).abs() < 1e-6, "{m}");
        let d2 = random_field(32, 0.005, 7, &Device::Cpu).unwrap();
        let diff = crate::models::ops::tensor::max_abs_diff(&d, &d2);
        assert_eq!(diff, 0.0, "deterministic in the seed");
    }
}
