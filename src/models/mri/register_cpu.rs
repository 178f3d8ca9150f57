//! The registration objective of [`super::register`] on the CPU: the masked
//! NCC of trilinear template samples and its analytic gradient with respect
//! to the 12 affine parameters, in one pass over the subject points.
//!
//! Why not candle's autograd here: one loss and backward pass over 30,000
//! points is some 60 small tensor operations, each allocating and sweeping
//! memory, and took 10–20 ms; a registration runs about 175 of them, which
//! was most of a head series' time in the gateway. The same function, with
//! the trilinear gradient written out, is one cache-friendly loop. It
//! matches the candle objective (same clamping, masking and `+1` in the
//! mean's denominator; tested against it), and the candle objective still
//! runs on other devices.
//!
//! The pass accumulates raw moments (f64): NCC and its gradient are
//! combinations of `Σ in`, `Σ in·f`, `Σ in·m`, `Σ in·f²`, `Σ in·m²`,
//! `Σ in·f·m` and the Jacobian sums `Σ in·J`, `Σ in·f·J`, `Σ in·m·J`. Points
//! are split into fixed chunks whose partial sums are added in chunk order,
//! so the result does not depend on the thread count.

use super::Volume;
use rayon::prelude::*;

/// Scale of the linear-part parameters: `lin = I + LIN_SCALE·P`, so that
/// Adam's roughly constant step moves translation (mm) and the linear part
/// comparably (see [`super::register`]).
pub const LIN_SCALE: f64 = 0.01;

/// Points per parallel chunk (fixed: the summation order depends on it).
const CHUNK: usize = 4096;

/// One pyramid level's subject points and the template grid, on the host.
pub struct CpuLevel {
    /// Subject points minus the subject pivot (mm).
    pub xs: Vec<[f32; 3]>,
    /// Subject intensities.
    pub f: Vec<f32>,
    /// Template level (i fastest).
    pub grid: Vec<f32>,
    pub dims: [usize; 3],
    /// Template world -> voxel: linear part and offset.
    pub inv_lin: [[f32; 3]; 3],
    pub inv_off: [f32; 3],
}

/// Moments of one chunk (see the module docs). `j*` are the Jacobian sums:
/// 3 translation entries then the 3×3 linear part, row-major.
#[derive(Clone, Copy, Default)]
struct Moments {
    n: f64,
    sf: f64,
    sm: f64,
    sff: f64,
    smm: f64,
    sfm: f64,
    j1: [f64; 12],
    jf: [f64; 12],
    jm: [f64; 12],
}

impl Moments {
    fn add(&mut self, o: &Moments) {
        self.n += o.n;
        self.sf += o.sf;
        self.sm += o.sm;
        self.sff += o.sff;
        self.smm += o.smm;
        self.sfm += o.sfm;
        for i in 0..12 {
            self.j1[i] += o.j1[i];
            self.jf[i] += o.jf[i];
            self.jm[i] += o.jm[i];
        }
    }
}

/// One axis of the trilinear sample as `GridTensor::trilinear` does it:
/// inside flag, clamped base index, fraction, and whether the coordinate's
/// gradient passes the clamp. `hi` is `max(n − 1.0001, 0)`.
#[inline(always)]
fn axis(x: f32, n: usize, hi: f32) -> (bool, usize, f32, bool) {
    let inside = x >= -0.5 && x <= n as f32 - 0.5;
    let xc = x.clamp(0.0, hi);
    let x0 = xc.floor();
    (inside, x0 as usize, xc - x0, x > 0.0 && x < hi)
}

impl CpuLevel {
    pub fn new(pts: &[f32], vals: Vec<f32>, moving: &Volume, inv: &super::volume::Mat4) -> Self {
        let mut inv_lin = [[0f32; 3]; 3];
        for (r, row) in inv_lin.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = inv[r][c] as f32;
            }
        }
        Self {
            xs: pts.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect(),
            f: vals,
            grid: moving.data.clone(),
            dims: moving.dims,
            inv_lin,
            inv_off: [inv[0][3] as f32, inv[1][3] as f32, inv[2][3] as f32],
        }
    }

    /// Negative NCC at parameters `p` with template pivot `ct`, and its
    /// gradient when `grad` is set.
    pub fn loss(&self, p: &[f32; 12], ct: [f32; 3], grad: bool) -> (f64, Option<[f32; 12]>) {
        let mut lin = [[0f32; 3]; 3];
        for (r, row) in lin.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = (r == c) as u8 as f32 + p[3 + 3 * r + c] * LIN_SCALE as f32;
            }
        }
        let off = [ct[0] + p[0], ct[1] + p[1], ct[2] + p[2]];
        let parts: Vec<Moments> = self
            .xs
            .par_chunks(CHUNK)
            .zip(self.f.par_chunks(CHUNK))
            .map(|(xs, fs)| self.moments(xs, fs, &lin, off, grad))
            .collect();
        let mut s = Moments::default();
        for p in &parts {
            s.add(p);
        }
        // Means over the inside points with the `+1` of the candle loss.
        let cnt = s.n + 1.0;
        let (mf, mm) = (s.sf / cnt, s.sm / cnt);
        let cov = s.sfm - mm * s.sf - mf * s.sm + s.n * mf * mm;
        let vf = s.sff - 2.0 * mf * s.sf + s.n * mf * mf;
        let vm = s.smm - 2.0 * mm * s.sm + s.n * mm * mm;
        let d = vf * vm + 1e-12;
        let sd = d.sqrt();
        let loss = -(cov / sd);
        if !grad {
            return (loss, None);
        }
        // d loss / d m_j = in_j·(α·(df_j − Σdf/cnt) + β·(dm_j − Σdm/cnt)),
        // with df_j = f_j − mf, dm_j = m_j − mm on inside points.
        let (alpha, beta) = (-1.0 / sd, cov * vf / (d * sd));
        let sdf = s.sf - s.n * mf;
        let sdm = s.sm - s.n * mm;
        let mut g = [0f32; 12];
        for (i, gi) in g.iter_mut().enumerate() {
            let a = s.jf[i] - mf * s.j1[i] - sdf / cnt * s.j1[i];
            let b = s.jm[i] - mm * s.j1[i] - sdm / cnt * s.j1[i];
            *gi = (alpha * a + beta * b) as f32;
        }
        (loss, Some(g))
    }

    fn moments(
        &self,
        xs: &[[f32; 3]],
        fs: &[f32],
        lin: &[[f32; 3]; 3],
        off: [f32; 3],
        grad: bool,
    ) -> Moments {
        let [nx, ny, nz] = self.dims;
        let hi = self.dims.map(|n| (n as f64 - 1.0001).max(0.0) as f32);
        let (il, io) = (&self.inv_lin, &self.inv_off);
        let mut s = Moments::default();
        for (x, &f) in xs.iter().zip(fs) {
            let mut w = [0f32; 3];
            for r in 0..3 {
                w[r] = lin[r][0] * x[0] + lin[r][1] * x[1] + lin[r][2] * x[2] + off[r];
            }
            let mut v = [0f32; 3];
            for r in 0..3 {
                v[r] = il[r][0] * w[0] + il[r][1] * w[1] + il[r][2] * w[2] + io[r];
            }
            let (ix, x0, fx, px) = axis(v[0], nx, hi[0]);
            let (iy, y0, fy, py) = axis(v[1], ny, hi[1]);
            let (iz, z0, fz, pz) = axis(v[2], nz, hi[2]);
            if !(ix && iy && iz) {
                continue;
            }
            let (x1, y1, z1) = (
                if nx > 1 { x0 + 1 } else { x0 },
                if ny > 1 { y0 + 1 } else { y0 },
                if nz > 1 { z0 + 1 } else { z0 },
            );
            let at = |x: usize, y: usize, z: usize| self.grid[x + nx * (y + ny * z)];
            let lerp = |a: f32, b: f32, t: f32| a + t * (b - a);
            let (g000, g100, g010, g110) = (
                at(x0, y0, z0),
                at(x1, y0, z0),
                at(x0, y1, z0),
                at(x1, y1, z0),
            );
            let (g001, g101, g011, g111) = (
                at(x0, y0, z1),
                at(x1, y0, z1),
                at(x0, y1, z1),
                at(x1, y1, z1),
            );
            let c00 = lerp(g000, g100, fx);
            let c10 = lerp(g010, g110, fx);
            let c01 = lerp(g001, g101, fx);
            let c11 = lerp(g011, g111, fx);
            let c0 = lerp(c00, c10, fy);
            let c1 = lerp(c01, c11, fy);
            let m = lerp(c0, c1, fz);
            let (f64_, m64) = (f as f64, m as f64);
            s.n += 1.0;
            s.sf += f64_;
            s.sm += m64;
            s.sff += f64_ * f64_;
            s.smm += m64 * m64;
            s.sfm += f64_ * m64;
            if !grad {
                continue;
            }
            // d m / d v, zero along a clamped axis.
            let dx = (1.0 - fz) * ((1.0 - fy) * (g100 - g000) + fy * (g110 - g010))
                + fz * ((1.0 - fy) * (g101 - g001) + fy * (g111 - g011));
            let dy = (1.0 - fz) * (c10 - c00) + fz * (c11 - c01);
            let dz = c1 - c0;
            let gv = [
                if px { dx } else { 0.0 },
                if py { dy } else { 0.0 },
                if pz { dz } else { 0.0 },
            ];
            // d m / d w = inv_linᵀ · d m / d v; then d w / d p.
            let mut jac = [0f64; 12];
            for r in 0..3 {
                let gw = (il[0][r] * gv[0] + il[1][r] * gv[1] + il[2][r] * gv[2]) as f64;
                jac[r] = gw;
                for c in 0..3 {
                    jac[3 + 3 * r + c] = gw * LIN_SCALE * x[c] as f64;
                }
            }
            for (i, &j) in jac.iter().enumerate() {
                s.j1[i] += j;
                s.jf[i] += f64_ * j;
                s.jm[i] += m64 * j;
            }
        }
        s
    }
}
