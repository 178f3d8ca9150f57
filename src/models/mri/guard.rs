//! Privacy guard for generate mode. A generator trained by reconstruction
//! learns to predict a face from the rest of the head, so with weights
//! trained on a site's own subjects it can put back (close to) the subject's
//! own face. After generating, the frontal skin surface of the output is
//! compared with the input's over the face rays (`surface.rs`: rays from the
//! front on a 1 mm grid, skin = first sample above half the Otsu
//! threshold, face rays = input hits within 2 mm of the face region); a
//! series whose mean |depth difference| is below the configured minimum is
//! refused, as is one without any face ray to compare.

use super::mask::air_threshold;
use super::surface::{bounds, depth_map, mean_face_distance};
use super::Volume;
use anyhow::{bail, Result};

/// How far the output's face surface lies from the input's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurfaceChange {
    /// Mean |depth(input) − depth(output)| over face rays, mm (a ray that
    /// no longer hits counts the full box depth).
    pub mean_mm: f64,
    /// Face rays compared.
    pub rays: usize,
}

/// Measure the face surface change between `vol` and `out` (same grid).
pub fn surface_change(vol: &Volume, out: &[f32], face: &[bool]) -> SurfaceChange {
    let thr = air_threshold(&vol.data);
    let before = depth_map(vol, &vol.data, thr, Some(face));
    let after = depth_map(vol, out, thr, None);
    let (lo, hi) = bounds(vol);
    let (mean_mm, rays) = mean_face_distance(&before, &after, (hi[1] - lo[1]) as f32);
    SurfaceChange { mean_mm, rays }
}

/// `Err` (the series' refusal, no PHI) when the face surface moved less
/// than `min_mm` on average, or when there is no face surface to compare.
pub fn check_generated(
    vol: &Volume,
    out: &[f32],
    face: &[bool],
    min_mm: f64,
) -> Result<SurfaceChange> {
    let c = surface_change(vol, out, face);
    if c.rays == 0 {
        bail!("generate mode: no face surface to compare (0 face rays); refused");
    }
    if c.mean_mm.is_nan() || c.mean_mm < min_mm {
        bail!(
            "generate mode: the generated face surface lies only {:.2} mm from the subject's \
             (mean over {} face rays; minimum {min_mm} mm): it may reproduce the subject's face; refused",
            c.mean_mm,
            c.rays
        );
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2 mm head: a ball of radius 50 mm in a 128 mm box, the front cap
    /// (more than 25 mm anterior of the centre; LPS anterior is −y) marked
    /// as the face.
    fn head() -> (Volume, Vec<bool>) {
        let n = 64usize;
        let mut data = vec![0f32; n * n * n];
        let mut face = vec![false; n * n * n];
        for k in 0..n {
            for j in 0..n {
                for i in 0..n {
                    let p = [i, j, k].map(|v| v as f64 * 2.0 - 64.0);
                    if p[0] * p[0] + p[1] * p[1] + p[2] * p[2] < 2500.0 {
                        let g = i + n * (j + n * k);
                        data[g] = 100.0;
                        face[g] = p[1] < -25.0;
                    }
                }
            }
        }
        let vol = Volume {
            dims: [n, n, n],
            data,
            affine: [
                [2.0, 0.0, 0.0, 0.0],
                [0.0, 2.0, 0.0, 0.0],
                [0.0, 0.0, 2.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
        };
        (vol, face)
    }

    /// The face with its front `s` voxels (2 mm each) per column removed.
    fn pushed_back(vol: &Volume, face: &[bool], s: usize) -> Vec<f32> {
        let n = vol.dims[0];
        let mut out = vol.data.clone();
        for k in 0..n {
            for i in 0..n {
                if let Some(j0) = (0..n).find(|&j| vol.data[vol.idx(i, j, k)] > 0.0) {
                    for j in j0..(j0 + s).min(n) {
                        let g = vol.idx(i, j, k);
                        if face[g] {
                            out[g] = 0.0;
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn mri_guard_refuses_the_subjects_own_face() {
        let (vol, face) = head();
        // A generator that gives the input back (perfect reconstruction).
        let err = check_generated(&vol, &vol.data, &face, 4.0).unwrap_err();
        assert!(format!("{err}").contains("only 0.00 mm"), "{err}");
        // A face 2 mm off is still the subject's face for this guard.
        let near = surface_change(&vol, &pushed_back(&vol, &face, 1), &face);
        assert!((1.5..2.5).contains(&near.mean_mm), "{near:?}");
        assert!(check_generated(&vol, &pushed_back(&vol, &face, 1), &face, 4.0).is_err());
        // 8 mm (at most the cap's thickness) is accepted, and so is no face.
        let far = check_generated(&vol, &pushed_back(&vol, &face, 4), &face, 4.0).unwrap();
        assert!(far.mean_mm > 4.0 && far.rays > 1000, "{far:?}");
        let gone: Vec<f32> = (0..vol.len())
            .map(|g| if face[g] { 0.0 } else { vol.data[g] })
            .collect();
        assert!(check_generated(&vol, &gone, &face, 4.0).unwrap().mean_mm > 10.0);
        // Nothing to compare: no face region.
        let none = vec![false; vol.len()];
        let err = check_generated(&vol, &vol.data, &none, 4.0).unwrap_err();
        assert!(format!("{err}").contains("0 face rays"), "{err}");
    }
}
