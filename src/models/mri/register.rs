//! Affine registration of the template (moving) to a subject (fixed).
//!
//! The transform maps subject world points (LPS mm) to template world points:
//! `x_t = c_t + t + (I + 0.01·P)(x_s − c_s)` with `c_s`, `c_t` the intensity
//! centroids (the rotation pivots about the head, so rotation and translation
//! barely couple) and 12 parameters `t` (mm) and `P` (scaled so that Adam's
//! roughly-constant step size means comparable motion for both). Orientation
//! needs no search: both volumes carry their patient orientation in the
//! affine, so identity in world space is already the right way up.
//! Similarity is normalized cross-correlation over the subject grid, at 8, 4
//! and 2 mm, optimized with Adam: on the CPU with the analytic gradient of
//! [`super::register_cpu`], on other devices with candle autograd.

#![allow(clippy::needless_range_loop)] // index math on 3x3/4x4 matrices and axes

use super::register_cpu::{CpuLevel, LIN_SCALE};
use super::resample::GridTensor;
use super::volume::{apply, invert, Mat4};
use super::{mask, Volume};
use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};

/// Most subject points used per level (strided subsample beyond that).
const MAX_POINTS: usize = 30_000;

#[derive(Clone, Debug)]
pub struct Registration {
    /// Subject world (LPS mm) -> template world (LPS mm).
    pub subject_to_template: Mat4,
    /// Final NCC at the finest level (1 = perfect).
    pub ncc: f64,
}

/// Levels: (spacing mm, Adam iterations, learning rate).
pub const LEVELS: [(f64, usize, f64); 3] = [(8.0, 80, 1.0), (4.0, 40, 0.4), (2.0, 20, 0.15)];

/// Intensity centroid of the head (voxels above the air threshold), world mm.
pub fn centroid(v: &Volume) -> [f64; 3] {
    let t = mask::air_threshold(&v.data);
    let (mut s, mut w) = ([0.0f64; 3], 0.0f64);
    for k in 0..v.dims[2] {
        for j in 0..v.dims[1] {
            for i in 0..v.dims[0] {
                let x = v.data[v.idx(i, j, k)];
                if x > t {
                    let p = v.world(i as f64, j as f64, k as f64);
                    for a in 0..3 {
                        s[a] += x as f64 * p[a];
                    }
                    w += x as f64;
                }
            }
        }
    }
    s.map(|c| c / w.max(1e-9))
}

struct Level {
    /// Subject points minus c_s, (N, 3).
    xs: Tensor,
    /// Subject intensities, (N).
    f: Tensor,
    moving: GridTensor,
    /// Template world -> voxel, linear part transposed (3, 3) and offset (3).
    minv_t: Tensor,
    minv_o: Tensor,
}

/// One level's subject points, intensities and template level on the host,
/// from which either objective is built.
struct LevelData {
    pts: Vec<f32>,
    vals: Vec<f32>,
    moving: Volume,
    inv: Mat4,
}

impl LevelData {
    fn new(fixed: &Volume, moving: &Volume, mm: f64, cs: [f64; 3]) -> Self {
        let fl = fixed.downsample(fixed.factors_for(mm));
        let ml = moving.downsample(moving.factors_for(mm));
        let n = fl.len();
        let stride = n.div_ceil(MAX_POINTS).max(1);
        let (mut pts, mut vals) = (Vec::new(), Vec::new());
        for p in (0..n).step_by(stride) {
            let (i, j, k) = (
                p % fl.dims[0],
                (p / fl.dims[0]) % fl.dims[1],
                p / (fl.dims[0] * fl.dims[1]),
            );
            let w = fl.world(i as f64, j as f64, k as f64);
            pts.extend([
                (w[0] - cs[0]) as f32,
                (w[1] - cs[1]) as f32,
                (w[2] - cs[2]) as f32,
            ]);
            vals.push(fl.data[p]);
        }
        let inv = invert(&ml.affine);
        Self {
            pts,
            vals,
            moving: ml,
            inv,
        }
    }
}

impl Level {
    fn new(d: LevelData, dev: &Device) -> Result<Self> {
        let LevelData {
            pts,
            vals,
            moving: ml,
            inv,
        } = d;
        let m = vals.len();
        let mut lt = Vec::with_capacity(9);
        for r in 0..3 {
            for c in 0..3 {
                lt.push(inv[c][r] as f32);
            }
        }
        Ok(Self {
            xs: Tensor::from_vec(pts, (m, 3), dev)?,
            f: Tensor::from_vec(vals, m, dev)?,
            moving: GridTensor::new(&ml, dev)?,
            minv_t: Tensor::from_vec(lt, (3, 3), dev)?,
            minv_o: Tensor::from_vec(
                vec![inv[0][3] as f32, inv[1][3] as f32, inv[2][3] as f32],
                (1, 3),
                dev,
            )?,
        })
    }

    /// Negative masked NCC for parameters `p` (12) with template pivot `ct`.
    fn loss(&self, p: &Tensor, ct: &Tensor) -> Result<Tensor> {
        let dev = p.device();
        let t = p.narrow(0, 0, 3)?.reshape((1, 3))?;
        let lin = (Tensor::eye(3, DType::F32, dev)?
            + (p.narrow(0, 3, 9)?.reshape((3, 3))? * LIN_SCALE)?)?;
        let w = self.xs.matmul(&lin.t()?)?.broadcast_add(&(ct + t)?)?;
        let v = w.matmul(&self.minv_t)?.broadcast_add(&self.minv_o)?;
        let (m, inside) = self.moving.trilinear(&v)?;
        let cnt = (inside.sum_all()? + 1.0)?;
        let mf = ((&self.f * &inside)?.sum_all()? / &cnt)?;
        let mm = ((&m * &inside)?.sum_all()? / &cnt)?;
        let df = (self.f.broadcast_sub(&mf)? * &inside)?;
        let dm = (m.broadcast_sub(&mm)? * &inside)?;
        let cov = (&df * &dm)?.sum_all()?;
        let vf = df.sqr()?.sum_all()?;
        let vm = dm.sqr()?.sum_all()?;
        let ncc = (cov / ((vf * vm)? + 1e-12)?.sqrt()?)?;
        Ok(ncc.neg()?)
    }
}

/// The loss at one level: analytic on the CPU ([`super::register_cpu`]),
/// candle autograd elsewhere.
enum Objective {
    Cpu(CpuLevel, [f32; 3]),
    Candle(Level, Tensor),
}

impl Objective {
    fn new(d: LevelData, ct: [f64; 3], dev: &Device) -> Result<Self> {
        let ct32 = ct.map(|c| c as f32);
        Ok(if dev.is_cpu() {
            Objective::Cpu(CpuLevel::new(&d.pts, d.vals, &d.moving, &d.inv), ct32)
        } else {
            let ct = Tensor::from_vec(ct32.to_vec(), (1, 3), dev)?;
            Objective::Candle(Level::new(d, dev)?, ct)
        })
    }

    /// The loss at `p`, and its gradient when `grad` is set.
    fn eval(&self, p: &[f32; 12], grad: bool) -> Result<(f64, Option<[f32; 12]>)> {
        match self {
            Objective::Cpu(level, ct) => Ok(level.loss(p, *ct, grad)),
            Objective::Candle(level, ct) => {
                let dev = ct.device();
                let var = Var::from_vec(p.to_vec(), 12, dev)?;
                let loss = level.loss(var.as_tensor(), ct)?;
                let l = loss.to_scalar::<f32>()? as f64;
                if !grad {
                    return Ok((l, None));
                }
                let grads = loss.backward()?;
                let g = match grads.get(&var) {
                    Some(g) => g.to_vec1::<f32>()?,
                    None => vec![0.0; 12],
                };
                let mut out = [0f32; 12];
                out.copy_from_slice(&g);
                Ok((l, Some(out)))
            }
        }
    }
}

/// Adam as candle's `AdamW` with no weight decay (the optimizer the
/// registration was tuned with), on the 12 host parameters.
struct Adam {
    m: [f64; 12],
    v: [f64; 12],
    t: i32,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new() -> Self {
        Self {
            m: [0.0; 12],
            v: [0.0; 12],
            t: 0,
        }
    }

    fn step(&mut self, p: &mut [f32; 12], g: &[f32; 12], lr: f64) {
        self.t += 1;
        let scale_m = 1.0 / (1.0 - Self::BETA1.powi(self.t));
        let scale_v = 1.0 / (1.0 - Self::BETA2.powi(self.t));
        for i in 0..12 {
            let g = g[i] as f64;
            self.m[i] = self.m[i] * Self::BETA1 + g * (1.0 - Self::BETA1);
            self.v[i] = self.v[i] * Self::BETA2 + g * g * (1.0 - Self::BETA2);
            let step = self.m[i] * scale_m / ((self.v[i] * scale_v).sqrt() + Self::EPS);
            p[i] = (p[i] as f64 - lr * step) as f32;
        }
    }
}

/// Register `moving` (template) to `fixed` (subject).
pub fn register(fixed: &Volume, moving: &Volume, dev: &Device) -> Result<Registration> {
    let cs = centroid(fixed);
    let ct = centroid(moving);
    let mut params = [0f32; 12];
    let mut ncc = 0.0;
    for (li, &(mm, iters, lr)) in LEVELS.iter().enumerate() {
        let level = Objective::new(LevelData::new(fixed, moving, mm, cs), ct, dev)?;
        if li == 0 {
            // Coarse translation search: head centroids differ when the field of
            // view includes more or less neck, so try shifts along S-I and A-P.
            let mut best = (f64::INFINITY, params);
            for dz in [-30.0f32, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0] {
                for dy in [-20.0f32, -10.0, 0.0, 10.0, 20.0] {
                    let mut p = params;
                    p[1] += dy;
                    p[2] += dz;
                    let l = level.eval(&p, false)?.0;
                    if l < best.0 {
                        best = (l, p);
                    }
                }
            }
            params = best.1;
        }
        let mut opt = Adam::new();
        let mut best = (f64::INFINITY, params);
        for it in 0..iters {
            // cosine decay: large steps first, fine convergence at the end
            let rate = lr
                * (0.1
                    + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * it as f64 / iters as f64).cos()));
            let (l, g) = level.eval(&params, true)?;
            if l < best.0 {
                best = (l, params);
            }
            opt.step(&mut params, &g.expect("gradient requested"), rate);
        }
        let l = level.eval(&params, false)?.0;
        if l < best.0 {
            best = (l, params);
        }
        params = best.1;
        ncc = -best.0;
        tracing::debug!(mm, ncc, "registration level done");
    }
    Ok(Registration {
        subject_to_template: to_matrix(&params, cs, ct),
        ncc,
    })
}

/// The 4x4 subject->template matrix for parameters `p`.
pub fn to_matrix(p: &[f32], cs: [f64; 3], ct: [f64; 3]) -> Mat4 {
    let mut m: Mat4 = [[0.0; 4]; 4];
    for r in 0..3 {
        for c in 0..3 {
            m[r][c] = (r == c) as u8 as f64 + LIN_SCALE * p[3 + 3 * r + c] as f64;
        }
    }
    let lc = apply(&m, cs); // linear part only so far (translation column is 0)
    for r in 0..3 {
        m[r][3] = ct[r] + p[r] as f64 - lc[r];
    }
    m[3][3] = 1.0;
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::mri::template::Template;
    use crate::models::mri::volume::mat_mul;

    fn rot(axis: [f64; 3], deg: f64) -> [[f64; 3]; 3] {
        let n = (axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]).sqrt();
        let (x, y, z) = (axis[0] / n, axis[1] / n, axis[2] / n);
        let (s, c) = deg.to_radians().sin_cos();
        let t = 1.0 - c;
        [
            [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
        ]
    }

    /// The CPU objective's loss and analytic gradient match candle's
    /// autograd of the same loss, at parameters away from the optimum.
    #[test]
    fn cpu_objective_matches_candle_autograd() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mri");
        let t = Template::load(&dir).unwrap();
        let tv = &t.intensity;
        let (cs, ct) = (centroid(tv), centroid(tv));
        let dev = Device::Cpu;
        for mm in [8.0, 4.0] {
            let cpu = match Objective::new(LevelData::new(tv, tv, mm, cs), ct, &dev).unwrap() {
                Objective::Cpu(l, c) => (l, c),
                Objective::Candle(..) => unreachable!("the CPU gets the analytic objective"),
            };
            let cpu = Objective::Cpu(cpu.0, cpu.1);
            let ctt = Tensor::from_vec(ct.map(|c| c as f32).to_vec(), (1, 3), &dev).unwrap();
            let candle = Objective::Candle(
                Level::new(LevelData::new(tv, tv, mm, cs), &dev).unwrap(),
                ctt,
            );
            let p: [f32; 12] = [
                2.0, -3.0, 4.0, 1.5, -0.5, 0.8, 0.3, -1.2, 0.4, -0.7, 0.9, 1.1,
            ];
            let (la, ga) = cpu.eval(&p, true).unwrap();
            let (lb, gb) = candle.eval(&p, true).unwrap();
            let (ga, gb) = (ga.unwrap(), gb.unwrap());
            eprintln!("{mm} mm: loss {la:.5} / {lb:.5}, gradient {ga:?} / {gb:?}");
            assert!((la - lb).abs() < 1e-4, "{mm} mm: loss {la} vs {lb}");
            let scale = gb.iter().fold(0f32, |m, v| m.max(v.abs()));
            for i in 0..12 {
                assert!(
                    (ga[i] - gb[i]).abs() <= 0.02 * scale,
                    "{mm} mm: gradient {i}: {} vs {} ({ga:?} vs {gb:?})",
                    ga[i],
                    gb[i]
                );
            }
        }
    }

    /// A template moved by a known rigid transform (3, -4, 5 mm; 4 degrees)
    /// is registered back within 1 mm (over a 160 mm head-sized cube) and 1 degree.
    #[test]
    fn recovers_known_affine() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mri");
        let t = Template::load(&dir).unwrap();
        let tv = &t.intensity;
        let c = centroid(tv);
        let r = rot([1.0, 1.0, 0.3], 4.0);
        let tr = [3.0, -4.0, 5.0];
        let mut truth: Mat4 = [[0.0; 4]; 4];
        for i in 0..3 {
            for j in 0..3 {
                truth[i][j] = r[i][j];
            }
            truth[i][3] = c[i] + tr[i] - (0..3).map(|j| r[i][j] * c[j]).sum::<f64>();
        }
        truth[3][3] = 1.0;
        // subject voxel -> template voxel
        let m = mat_mul(&invert(&tv.affine), &mat_mul(&truth, &tv.affine));
        let mut subj = tv.clone();
        for k in 0..tv.dims[2] {
            for j in 0..tv.dims[1] {
                for i in 0..tv.dims[0] {
                    let g = tv.idx(i, j, k);
                    subj.data[g] = tv.sample(apply(&m, [i as f64, j as f64, k as f64]), 0.0);
                }
            }
        }
        let t0 = std::time::Instant::now();
        let reg = register(&subj, tv, &Device::Cpu).unwrap();
        let est = reg.subject_to_template;
        let mut max_err = 0.0f64;
        for corner in 0..8 {
            let p = [0, 1, 2].map(|a| c[a] + if corner >> a & 1 == 1 { 80.0 } else { -80.0 });
            let (a, b) = (apply(&est, p), apply(&truth, p));
            let e = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
            max_err = max_err.max(e);
        }
        let ce = {
            let (a, b) = (apply(&est, c), apply(&truth, c));
            ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
        };
        // rotation left between estimate and truth: est * truth^-1
        let d = mat_mul(&est, &invert(&truth));
        let tr_d = d[0][0] + d[1][1] + d[2][2];
        let angle = ((tr_d - 1.0) / 2.0).clamp(-1.0, 1.0).acos().to_degrees();
        eprintln!(
            "registration: centre error {ce:.3} mm, max error over 160 mm cube {max_err:.3} mm, \
             residual rotation {angle:.3} deg, ncc {:.4}, {:.1} s",
            reg.ncc,
            t0.elapsed().as_secs_f64()
        );
        assert!(ce < 1.0, "centre error {ce} mm");
        assert!(max_err < 2.0, "corner error {max_err} mm");
        assert!(angle < 1.0, "rotation error {angle} deg");
    }
}
