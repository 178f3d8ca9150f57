//! Numerically stable losses on logits for the chest model's training:
//! softplus and binary cross-entropy.

use candle_core::{Result, Tensor};

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
mod tests {
    use super::*;
    use candle_core::Device;

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
