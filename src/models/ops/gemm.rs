//! Row-major single-precision matrix products on host slices, through the
//! `gemm` crate that candle's CPU matmul uses. Calling it on slices (rather
//! than through `Tensor::matmul`) lets the convolutions write each product
//! straight into its place in the NHWC output, without copies.

use std::mem::MaybeUninit;

use rayon::prelude::*;

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
    check(m, n, k, a, lda, b, ldb, c.len(), ldc);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: `check` keeps every index the strides reach inside the three
    // slices; `c` is borrowed mutably and does not alias `a`/`b`.
    unsafe { raw(m, n, k, a, lda, b, ldb, c.as_mut_ptr(), ldc, accumulate) }
}

/// [`sgemm`] overwriting `c`, which need not be initialised: the product
/// is written without `c` being read (the output buffers of the
/// convolutions, which zeroing first would cost a pass over memory).
/// Afterwards the first `n` floats of each of the `m` rows are initialised.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_uninit(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
) {
    check(m, n, k, a, lda, b, ldb, c.len(), ldc);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in c.chunks_mut(ldc).take(m) {
            row[..n].fill(MaybeUninit::new(0.0));
        }
        return;
    }
    // SAFETY: as in `sgemm`; with `accumulate` false the GEMM only writes
    // `c` (the `gemm` crate reads the destination only when told to).
    unsafe { raw(m, n, k, a, lda, b, ldb, c.as_mut_ptr().cast(), ldc, false) }
}

#[allow(clippy::too_many_arguments)]
fn check(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c_len: usize,
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + k, "gemm: lhs too short");
    assert!(
        k == 0 || b.len() >= (k - 1) * ldb + n,
        "gemm: rhs too short"
    );
    assert!(c_len >= (m - 1) * ldc + n, "gemm: dst too short");
}

/// # Safety
/// The strides must keep every index inside `a`, `b` and the `c` buffer,
/// and `c` must not alias `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn raw(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    gemm::gemm(
        m,
        n,
        k,
        c,
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

/// A vector of `len` floats built in parallel, `chunk` floats at a time,
/// without zeroing it first: `write(state, i, piece)` fills piece `i`
/// (`state` from `init`, one per worker, as rayon's `for_each_init`).
///
/// # Safety
/// `write` must initialise every float of the piece it is given (through
/// [`sgemm_uninit`] or otherwise) before it returns, and must read none it
/// has not written.
pub unsafe fn par_written<S>(
    len: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    write: impl Fn(&mut S, usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each_init(init, |s, (i, piece)| write(s, i, piece));
    // SAFETY: the caller's `write` initialised every piece, and the pieces
    // cover `0..len`.
    unsafe { v.set_len(len) };
    v
}

/// Every row of `a` (`k` floats each) times `b` (`k × n`, row-major): the
/// `rows × n` product, row-major, in parallel tiles of `tile_rows` rows
/// (the per-pixel, per-tap products the transposed and upsampled
/// convolutions then gather).
pub fn rows_times(a: &[f32], k: usize, b: &[f32], n: usize, tile_rows: usize) -> Vec<f32> {
    let rows = a.len() / k.max(1);
    let tile = tile_rows.max(1);
    let write = |_: &mut (), t: usize, dst: &mut [MaybeUninit<f32>]| {
        let (start, m) = (t * tile, dst.len() / n);
        sgemm_uninit(m, n, k, &a[start * k..(start + m) * k], k, b, n, dst, n);
    };
    // SAFETY: each piece is `m` whole rows of `n`, all written by the GEMM.
    unsafe { par_written(rows * n, tile * n, || (), write) }
}

/// `piece` as floats, once every one of them has been written.
///
/// # Safety
/// Every element of `piece` must be initialised.
pub unsafe fn assume_written(piece: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: MaybeUninit<f32> has f32's layout; the caller vouches that
    // every element is initialised.
    unsafe { std::slice::from_raw_parts_mut(piece.as_mut_ptr().cast(), piece.len()) }
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
