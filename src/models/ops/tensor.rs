//! Small tensor helpers shared by the models: dtype normalisation, and the
//! helpers unit tests of the models and of `crate::train` compare with.

use candle_core::{DType, Result, Tensor};

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

/// Deterministic uniform [0, 1) test data from a small LCG, without extra
/// dependencies (test helper).
#[cfg(test)]
pub(crate) fn rnd(n: usize, seed: u64) -> Vec<f32> {
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
