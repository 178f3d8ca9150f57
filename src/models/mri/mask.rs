//! Binary masks on voxel grids: thresholds, separable box morphology,
//! connected components, feathering. Box (cuboid) dilation is used for the
//! brain safety margin on purpose: a cuboid with half-widths of at least the
//! margin contains the ball of that radius, so it can only protect more.

#![allow(clippy::needless_range_loop)] // index math on 3x3/4x4 matrices and axes

use crate::models::components::Components;

/// Otsu threshold over a 256-bin histogram of values in [lo, p99.5].
pub fn otsu(data: &[f32]) -> f32 {
    let q = super::volume::quantiles(data, &[0.0, 0.995]);
    let (lo, hi) = (q[0], q[1].max(q[0] + 1e-6));
    let mut hist = [0f64; 256];
    for &v in data {
        let b = (((v - lo) / (hi - lo)) * 255.0).clamp(0.0, 255.0) as usize;
        hist[b] += 1.0;
    }
    let total: f64 = hist.iter().sum();
    let sum_all: f64 = hist.iter().enumerate().map(|(i, h)| i as f64 * h).sum();
    let (mut w0, mut s0, mut best, mut best_t) = (0.0, 0.0, -1.0, 0usize);
    for (t, h) in hist.iter().enumerate() {
        w0 += h;
        s0 += t as f64 * h;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let m0 = s0 / w0;
        let m1 = (sum_all - s0) / w1;
        let between = w0 * w1 * (m0 - m1).powi(2);
        if between > best {
            best = between;
            best_t = t;
        }
    }
    lo + (best_t as f32 + 0.5) / 255.0 * (hi - lo)
}

/// Head/air threshold for skin surfaces and intensity matching: half of the
/// Otsu threshold, so that dark skin/fat in T1 still counts as head.
pub fn air_threshold(data: &[f32]) -> f32 {
    0.5 * otsu(data)
}

fn run_axis(dims: [usize; 3], axis: usize, mut f: impl FnMut(&[usize])) {
    let [nx, ny, nz] = dims;
    let stride = [1, nx, nx * ny][axis];
    let n = dims[axis];
    let mut line = vec![0usize; n];
    let (a, b) = match axis {
        0 => (ny, nz),
        1 => (nx, nz),
        _ => (nx, ny),
    };
    for u in 0..a {
        for v in 0..b {
            let base = match axis {
                0 => nx * (u + ny * v),
                1 => u + nx * ny * v,
                _ => u + nx * v,
            };
            for (t, l) in line.iter_mut().enumerate() {
                *l = base + t * stride;
            }
            f(&line);
        }
    }
}

/// Separable (2r+1) box window per axis (clamped at the edges): along each
/// axis with r > 0, every voxel becomes `out(sum, len)` of the `len` values
/// `val(v)` in its window, summed through prefix sums for O(1) queries.
fn box_window<T: Copy>(
    v: &[T],
    dims: [usize; 3],
    r: [usize; 3],
    val: impl Fn(T) -> f64,
    out: impl Fn(f64, usize) -> T,
) -> Vec<T> {
    let mut cur = v.to_vec();
    for axis in 0..3 {
        if r[axis] == 0 {
            continue;
        }
        let src = cur.clone();
        let rr = r[axis];
        run_axis(dims, axis, |line| {
            let n = line.len();
            let mut pre = vec![0f64; n + 1];
            for t in 0..n {
                pre[t + 1] = pre[t] + val(src[line[t]]);
            }
            for t in 0..n {
                let lo = t.saturating_sub(rr);
                let hi = (t + rr + 1).min(n);
                cur[line[t]] = out(pre[hi] - pre[lo], hi - lo);
            }
        });
    }
    cur
}

/// Dilate with a (2r+1) box per axis (separable running max; the window
/// counts of set voxels are exact integers in f64).
pub fn dilate(m: &[bool], dims: [usize; 3], r: [usize; 3]) -> Vec<bool> {
    box_window(m, dims, r, |b| b as u8 as f64, |count, _| count > 0.0)
}

/// Erode with a (2r+1) box per axis (outside the grid counts as set).
pub fn erode(m: &[bool], dims: [usize; 3], r: [usize; 3]) -> Vec<bool> {
    let inv: Vec<bool> = m.iter().map(|v| !v).collect();
    dilate(&inv, dims, r).into_iter().map(|v| !v).collect()
}

/// Radii in voxels so that a box dilation covers at least `mm` on each axis.
pub fn radii_mm(spacing: [f64; 3], mm: f64) -> [usize; 3] {
    spacing.map(|s| (mm / s.max(1e-6)).ceil() as usize)
}

/// Keep the largest 6-connected component (the first of equals).
pub fn largest_component(m: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let c = Components::of(m, dims);
    let sizes = c.sizes();
    let mut best = 0;
    for l in 1..sizes.len() {
        if sizes[l] > sizes[best] || best == 0 {
            best = l;
        }
    }
    c.label
        .iter()
        .map(|&l| best != 0 && l as usize == best)
        .collect()
}

/// Separable box blur of a float field (radius per axis, clamped edges).
pub fn box_blur(v: &[f32], dims: [usize; 3], r: [usize; 3]) -> Vec<f32> {
    box_window(
        v,
        dims,
        r,
        |x| x as f64,
        |sum, len| (sum / len as f64) as f32,
    )
}

/// Box mean with zero padding: like [`box_blur`] but every window counts
/// its full `2r+1` voxels per axis (outside the grid = 0), so the result
/// changes by at most `1/(2r+1)` per voxel step along each axis, edges too.
pub fn box_mean_zero_pad(v: &[f32], dims: [usize; 3], r: [usize; 3]) -> Vec<f32> {
    let mut cur = v.to_vec();
    for axis in 0..3 {
        if r[axis] == 0 {
            continue;
        }
        let mut ra = [0; 3];
        ra[axis] = r[axis];
        let div = (2 * r[axis] + 1) as f64;
        cur = box_window(
            &cur,
            dims,
            ra,
            |x| x as f64,
            move |sum, _| (sum / div) as f32,
        );
    }
    cur
}

/// Blend weight inside `m`: 0 at the region's border rising to 1 at about
/// `mm` depth, 0 outside. The border of the changed region therefore shows
/// the subject's own voxels, and the template face fades in.
pub fn feather(m: &[bool], dims: [usize; 3], spacing: [f64; 3], mm: f64) -> Vec<f32> {
    let f: Vec<f32> = m.iter().map(|&b| b as u8 as f32).collect();
    let b = box_blur(&f, dims, radii_mm(spacing, mm));
    b.iter()
        .zip(m)
        .map(|(&v, &inside)| {
            if inside {
                (2.0 * v - 1.0).clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect()
}
