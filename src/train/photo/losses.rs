//! The three training losses of the learned path.
//!
//! - **reconstruction**: L1 between the crop and its decoding with its own
//!   identity code; teaches the decoder to render and the identity encoder to
//!   carry what the semantic map lacks.
//! - **medical**: L1 between the crop and its decoding with a *replacement*
//!   code, inside the medical-region mask only, normalised by the mask area;
//!   the replaced face must keep the signs the clinician needs.
//! - **identity swap**: hinge on the cosine between the identity code of the
//!   replaced decoding and the original's code, above a margin; the replaced
//!   face must not read as the same person to the identity encoder.
//!
//! Training only, so they live in `crate::train`.

use candle_core::{Result, Tensor, D};

/// Mean absolute difference.
pub fn l1(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a - b)?.abs()?.mean_all()
}

/// L1 inside `mask` (`N×1×S×S`, 0/1) over `N×3×S×S` images, per masked
/// value; 0 when no sample has a mask.
pub fn masked_l1(a: &Tensor, b: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let diff = (a - b)?.abs()?.broadcast_mul(mask)?.sum_all()?;
    let area = ((mask.sum_all()? * 3.0)? + 1.0)?;
    diff / area
}

/// `mean(max(0, cos(za, zb) - margin))` for unit-length codes.
pub fn identity_margin(za: &Tensor, zb: &Tensor, margin: f64) -> Result<Tensor> {
    let cos = (za * zb)?.sum(D::Minus1)?;
    (cos - margin)?.relu()?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }
    fn scalar(x: Tensor) -> f32 {
        x.to_scalar().unwrap()
    }

    #[test]
    fn masked_l1_only_counts_the_mask() {
        let a = t(&[1.0; 6], &[1, 3, 1, 2]);
        let b = t(&[0.0, 1.0, 0.0, 1.0, 0.0, 1.0], &[1, 3, 1, 2]);
        let m = t(&[0.0, 1.0], &[1, 1, 1, 2]);
        assert_eq!(scalar(masked_l1(&a, &b, &m).unwrap()), 0.0);
        let m = t(&[1.0, 0.0], &[1, 1, 1, 2]);
        assert!((scalar(masked_l1(&a, &b, &m).unwrap()) - 3.0 / 4.0).abs() < 1e-6);
    }

    #[test]
    fn margin_is_zero_for_different_codes() {
        let a = t(&[1.0, 0.0], &[1, 2]);
        let b = t(&[0.0, 1.0], &[1, 2]);
        assert_eq!(scalar(identity_margin(&a, &b, 0.3).unwrap()), 0.0);
        assert!((scalar(identity_margin(&a, &a, 0.3).unwrap()) - 0.7).abs() < 1e-6);
    }
}
