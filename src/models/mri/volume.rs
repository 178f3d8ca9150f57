//! Geometry and plain (non-differentiable) voxel helpers on [`Volume`].

#![allow(clippy::needless_range_loop)] // index math on 3x3/4x4 matrices and axes

use super::Volume;

pub type Mat4 = [[f64; 4]; 4];

/// Voxel size along each voxel axis (mm): column norms of the affine.
pub fn spacing(a: &Mat4) -> [f64; 3] {
    let mut s = [0.0; 3];
    for (c, v) in s.iter_mut().enumerate() {
        *v = (a[0][c].powi(2) + a[1][c].powi(2) + a[2][c].powi(2)).sqrt();
    }
    s
}

pub fn mat_mul(a: &Mat4, b: &Mat4) -> Mat4 {
    let mut m = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            m[i][j] = (0..4).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

pub fn apply(a: &Mat4, p: [f64; 3]) -> [f64; 3] {
    let mut o = [0.0; 3];
    for (r, v) in o.iter_mut().enumerate() {
        *v = a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3];
    }
    o
}

/// Inverse of an affine 4x4 (last row 0 0 0 1) via the 3x3 adjugate.
pub fn invert(a: &Mat4) -> Mat4 {
    let m = |r: usize, c: usize| a[r][c];
    let det = m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1))
        - m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0))
        + m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0));
    let d = if det.abs() < 1e-12 { 1e-12 } else { det };
    let mut inv = [[0.0; 4]; 4];
    inv[0][0] = (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)) / d;
    inv[0][1] = (m(0, 2) * m(2, 1) - m(0, 1) * m(2, 2)) / d;
    inv[0][2] = (m(0, 1) * m(1, 2) - m(0, 2) * m(1, 1)) / d;
    inv[1][0] = (m(1, 2) * m(2, 0) - m(1, 0) * m(2, 2)) / d;
    inv[1][1] = (m(0, 0) * m(2, 2) - m(0, 2) * m(2, 0)) / d;
    inv[1][2] = (m(0, 2) * m(1, 0) - m(0, 0) * m(1, 2)) / d;
    inv[2][0] = (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0)) / d;
    inv[2][1] = (m(0, 1) * m(2, 0) - m(0, 0) * m(2, 1)) / d;
    inv[2][2] = (m(0, 0) * m(1, 1) - m(0, 1) * m(1, 0)) / d;
    for r in 0..3 {
        inv[r][3] = -(0..3).map(|c| inv[r][c] * a[c][3]).sum::<f64>();
    }
    inv[3][3] = 1.0;
    inv
}

impl Volume {
    pub fn len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn idx(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// World (LPS mm) position of a voxel centre.
    pub fn world(&self, i: f64, j: f64, k: f64) -> [f64; 3] {
        apply(&self.affine, [i, j, k])
    }

    /// Trilinear sample at continuous voxel coordinates; `outside` beyond the
    /// grid (half a voxel of clamp at the faces, so edge voxels keep weight).
    pub fn sample(&self, p: [f64; 3], outside: f32) -> f32 {
        let [nx, ny, nz] = self.dims;
        let lim = |v: f64, n: usize| v >= -0.5 && v <= n as f64 - 0.5;
        if !(lim(p[0], nx) && lim(p[1], ny) && lim(p[2], nz)) {
            return outside;
        }
        let c = |v: f64, n: usize| v.clamp(0.0, (n - 1) as f64);
        let (x, y, z) = (c(p[0], nx), c(p[1], ny), c(p[2], nz));
        let (x0, y0, z0) = (x.floor() as usize, y.floor() as usize, z.floor() as usize);
        let (x1, y1, z1) = (
            (x0 + 1).min(nx - 1),
            (y0 + 1).min(ny - 1),
            (z0 + 1).min(nz - 1),
        );
        let (fx, fy, fz) = (
            (x - x0 as f64) as f32,
            (y - y0 as f64) as f32,
            (z - z0 as f64) as f32,
        );
        let g = |i, j, k| self.data[self.idx(i, j, k)];
        let c00 = g(x0, y0, z0) * (1.0 - fx) + g(x1, y0, z0) * fx;
        let c10 = g(x0, y1, z0) * (1.0 - fx) + g(x1, y1, z0) * fx;
        let c01 = g(x0, y0, z1) * (1.0 - fx) + g(x1, y0, z1) * fx;
        let c11 = g(x0, y1, z1) * (1.0 - fx) + g(x1, y1, z1) * fx;
        let c0 = c00 * (1.0 - fy) + c10 * fy;
        let c1 = c01 * (1.0 - fy) + c11 * fy;
        c0 * (1.0 - fz) + c1 * fz
    }

    /// Sample at a world point (LPS mm) given this volume's inverse affine.
    pub fn sample_world(&self, inv: &Mat4, w: [f64; 3], outside: f32) -> f32 {
        self.sample(apply(inv, w), outside)
    }

    /// Block-average by integer factors per axis (anti-aliased pyramid level).
    pub fn downsample(&self, f: [usize; 3]) -> Volume {
        let f = [f[0].max(1), f[1].max(1), f[2].max(1)];
        let nd = [
            self.dims[0].div_ceil(f[0]),
            self.dims[1].div_ceil(f[1]),
            self.dims[2].div_ceil(f[2]),
        ];
        let mut sum = vec![0.0f32; nd[0] * nd[1] * nd[2]];
        let mut cnt = vec![0u32; sum.len()];
        for k in 0..self.dims[2] {
            for j in 0..self.dims[1] {
                for i in 0..self.dims[0] {
                    let o = i / f[0] + nd[0] * (j / f[1] + nd[1] * (k / f[2]));
                    sum[o] += self.data[self.idx(i, j, k)];
                    cnt[o] += 1;
                }
            }
        }
        for (s, c) in sum.iter_mut().zip(&cnt) {
            *s /= (*c).max(1) as f32;
        }
        // New voxel i' covers old voxels f*i' .. f*i'+f-1: centre f*i' + (f-1)/2.
        let mut sc: Mat4 = [[0.0; 4]; 4];
        for a in 0..3 {
            sc[a][a] = f[a] as f64;
            sc[a][3] = (f[a] as f64 - 1.0) / 2.0;
        }
        sc[3][3] = 1.0;
        Volume {
            dims: nd,
            data: sum,
            affine: mat_mul(&self.affine, &sc),
        }
    }

    /// Factors that bring each axis close to `mm` spacing (never below 1).
    pub fn factors_for(&self, mm: f64) -> [usize; 3] {
        let s = spacing(&self.affine);
        [0, 1, 2].map(|a| ((mm / s[a]).round() as usize).max(1))
    }
}

/// Value at quantile q (0..=1) of `v` (copied and partially sorted).
pub fn quantiles(v: &[f32], qs: &[f64]) -> Vec<f32> {
    if v.is_empty() {
        return vec![0.0; qs.len()];
    }
    let mut s = v.to_vec();
    s.sort_unstable_by(|a, b| a.total_cmp(b));
    qs.iter()
        .map(|q| s[((q.clamp(0.0, 1.0)) * (s.len() - 1) as f64).round() as usize])
        .collect()
}
