//! Carry the template's face and brain masks (and intensities) into the
//! subject grid, and make the changed region exclude the dilated brain.

use super::mask;
use super::template::Template;
use super::volume::{apply, invert, mat_mul, spacing, Mat4};
use super::{Volume, BRAIN_MARGIN_MM, MIN_FACE_COVERAGE};
use anyhow::{bail, Result};
use rayon::prelude::*;

/// The face region in subject space.
pub struct FaceRegion {
    /// Voxels that may change: warped face AND NOT dilated brain (in volume).
    pub face: Vec<bool>,
    /// Warped brain mask, undilated (for checks); false outside `bbox`.
    pub brain: Vec<bool>,
    /// Warped template intensities; 0 outside `bbox`.
    pub template: Vec<f32>,
    /// Voxel box [lo, hi) holding the face and its surroundings.
    pub bbox: ([usize; 3], [usize; 3]),
    /// Subject voxel (i, j, k) -> template world (LPS mm).
    pub vox_to_tworld: Mat4,
}

impl FaceRegion {
    pub fn compute(vol: &Volume, t: &Template, subject_to_template: &Mat4) -> Result<Self> {
        let [nx, ny, _] = vol.dims;
        // subject voxel -> template voxel, one matrix
        let m = mat_mul(
            &invert(&t.intensity.affine),
            &mat_mul(subject_to_template, &vol.affine),
        );
        let plane = nx * ny;
        let mut face = vec![false; vol.len()];
        face.par_chunks_mut(plane).enumerate().for_each(|(k, sl)| {
            for j in 0..ny {
                for i in 0..nx {
                    let p = apply(&m, [i as f64, j as f64, k as f64]);
                    sl[i + nx * j] = t.face.sample(p, 0.0) >= 0.5;
                }
            }
        });
        let n_face = face.iter().filter(|&&b| b).count();
        if n_face == 0 {
            bail!("no face coverage: the registered face lies outside the volume");
        }
        let sp = spacing(&vol.affine);
        let tsp = spacing(&t.intensity.affine);
        let det = {
            let a = subject_to_template;
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
                - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
                + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        }
        .abs();
        let t_face =
            t.face.data.iter().filter(|&&v| v >= 0.5).count() as f64 * tsp[0] * tsp[1] * tsp[2];
        let s_face = n_face as f64 * sp[0] * sp[1] * sp[2] * det;
        if s_face < MIN_FACE_COVERAGE * t_face {
            bail!(
                "no face coverage: only {:.0}% of the template face lies inside the volume",
                100.0 * s_face / t_face
            );
        }
        // Box around the face, wide enough that every brain voxel within the
        // margin of a face voxel is inside it.
        let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
        for (p, _) in face.iter().enumerate().filter(|(_, &b)| b) {
            let c = [p % nx, (p / nx) % ny, p / plane];
            for a in 0..3 {
                lo[a] = lo[a].min(c[a]);
                hi[a] = hi[a].max(c[a] + 1);
            }
        }
        let pad = mask::radii_mm(sp, 2.0 * BRAIN_MARGIN_MM);
        for a in 0..3 {
            lo[a] = lo[a].saturating_sub(pad[a]);
            hi[a] = (hi[a] + pad[a]).min(vol.dims[a]);
        }
        let bd = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
        let mut bbrain = vec![false; bd[0] * bd[1] * bd[2]];
        let mut btpl = vec![0f32; bbrain.len()];
        bbrain
            .par_chunks_mut(bd[0] * bd[1])
            .zip(btpl.par_chunks_mut(bd[0] * bd[1]))
            .enumerate()
            .for_each(|(kk, (bs, ts))| {
                for jj in 0..bd[1] {
                    for ii in 0..bd[0] {
                        let p = apply(
                            &m,
                            [
                                (ii + lo[0]) as f64,
                                (jj + lo[1]) as f64,
                                (kk + lo[2]) as f64,
                            ],
                        );
                        // any partial brain counts: protection errs on the safe side
                        bs[ii + bd[0] * jj] = t.brain.sample(p, 0.0) > 0.01;
                        ts[ii + bd[0] * jj] = t.intensity.sample(p, 0.0);
                    }
                }
            });
        let dil = mask::dilate(&bbrain, bd, mask::radii_mm(sp, BRAIN_MARGIN_MM));
        let mut brain = vec![false; vol.len()];
        let mut template = vec![0f32; vol.len()];
        for kk in 0..bd[2] {
            for jj in 0..bd[1] {
                for ii in 0..bd[0] {
                    let b = ii + bd[0] * (jj + bd[1] * kk);
                    let g = vol.idx(ii + lo[0], jj + lo[1], kk + lo[2]);
                    brain[g] = bbrain[b];
                    template[g] = btpl[b];
                    if dil[b] {
                        face[g] = false;
                    }
                }
            }
        }
        Ok(Self {
            face,
            brain,
            template,
            bbox: (lo, hi),
            vox_to_tworld: mat_mul(subject_to_template, &vol.affine),
        })
    }
}
