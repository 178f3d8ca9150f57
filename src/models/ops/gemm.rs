//! Row-major single-precision matrix products on host slices, through the
//! `gemm` crate that candle's CPU matmul uses. Calling it on slices (rather
//! than through `Tensor::matmul`) lets the convolutions write each product
//! straight into its place in the NHWC output, without copies.

/// `c[m×n] (+)= a[m×k] · b[k×n]`, all row-major with leading dimensions
/// `lda`, `ldb`, `ldc` (elements between rows). `accumulate` adds to `c`
/// instead of overwriting it. Single-threaded: the callers split the work
/// into independent tiles and run those in parallel.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + k, "gemm: lhs too short");
    assert!(
        k == 0 || b.len() >= (k - 1) * ldb + n,
        "gemm: rhs too short"
    );
    assert!(c.len() >= (m - 1) * ldc + n, "gemm: dst too short");
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the asserts above keep every index the strides reach inside
    // the three slices; `c` is borrowed mutably and does not alias `a`/`b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.as_ptr(),
            1,
            lda as isize,
            b.as_ptr(),
            1,
            ldb as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgemm_matches_naive_with_strides() {
        let (m, n, k) = (5, 3, 4);
        let a: Vec<f32> = (0..m * 6).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * 7).map(|i| (i % 5) as f32 - 1.0).collect();
        let mut c = vec![1.0f32; m * 4];
        sgemm(m, n, k, &a, 6, &b, 7, &mut c, 4, true);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|l| a[i * 6 + l] * b[l * 7 + j]).sum::<f32>();
                assert!((c[i * 4 + j] - want).abs() < 1e-4);
            }
            assert_eq!(c[i * 4 + 3], 1.0, "padding column untouched");
        }
    }
}
