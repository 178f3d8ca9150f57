//! Reface: the registered template face, mapped onto the subject's own
//! intensity scale and feathered into the surrounding head.
//!
//! Intensity matching is quantile mapping over the box around the face: both
//! the warped template and the subject are sampled over the same voxels, so
//! air maps to air and skin/fat/muscle to the subject's skin/fat/muscle
//! whatever the scanner's scale. The blend weight rises from 0 at the
//! region's border to 1 at `FEATHER_MM` inside it.
//!
//! The template face is reshaped first (see [`super::shape`]): each of the
//! candidate shapes is filled in and the one whose frontal skin surface
//! differs most from the subject's is returned.

use super::mask;
use super::shape::{self, Shape};
use super::template::Template;
use super::volume::{quantiles, spacing};
use super::warp::FaceRegion;
use super::Volume;
use rayon::prelude::*;

pub const FEATHER_MM: f64 = 3.0;

/// Piecewise-linear map from `src` quantiles to `dst` quantiles.
pub fn quantile_map(x: f32, src: &[f32], dst: &[f32]) -> f32 {
    let n = src.len();
    if x <= src[0] {
        return dst[0];
    }
    if x >= src[n - 1] {
        return dst[n - 1];
    }
    let i = src.partition_point(|&s| s <= x).clamp(1, n - 1);
    let (a, b) = (src[i - 1], src[i]);
    let f = if b > a { (x - a) / (b - a) } else { 0.5 };
    dst[i - 1] + f * (dst[i] - dst[i - 1])
}

/// Reface with the candidate shape whose skin surface differs most from
/// the subject's (ties: the first candidate).
pub fn reface(vol: &Volume, w: &FaceRegion, t: &Template) -> Vec<f32> {
    reface_best(vol, w, t, &shape::CANDIDATES).0
}

/// [`reface`] over `shapes`: the output, the chosen shape and its mean
/// frontal surface difference (mm, column estimate).
pub fn reface_best(
    vol: &Volume,
    w: &FaceRegion,
    t: &Template,
    shapes: &[Shape],
) -> (Vec<f32>, Shape, f64) {
    let m = Matcher::new(vol, w);
    let ramp = shape::ramp(vol, &w.face, w.bbox, m.thr);
    let candidate = |s: &Shape| -> Vec<f32> {
        let tpl = if *s == Shape::IDENTITY {
            None
        } else {
            Some(shape::sample_shaped(
                vol,
                &w.face,
                &ramp,
                &t.intensity,
                &w.vox_to_tworld,
                t.anchor,
                s,
            ))
        };
        m.fill(vol, w, tpl.as_deref().unwrap_or(&w.template))
    };
    // The candidates are scored in parallel, keeping only their scores (a
    // whole output volume each would be 8 volumes in memory at once); the
    // winner is filled in again. The choice is made in candidate order, so
    // it does not depend on which thread finished first.
    let scores: Vec<f64> = shapes
        .par_iter()
        .map(|s| {
            let out = candidate(s);
            shape::front_depth_diff(vol, &vol.data, &out, &w.face, w.bbox, m.thr)
        })
        .collect();
    let mut best: Option<(usize, f64)> = None;
    for (i, &d) in scores.iter().enumerate() {
        if best.is_none_or(|b| d > b.1) {
            best = Some((i, d));
        }
    }
    match best {
        Some((i, d)) => (candidate(&shapes[i]), shapes[i], d),
        None => (m.fill(vol, w, &w.template), Shape::IDENTITY, 0.0),
    }
}

/// Quantile map from the (unshaped) warped template to the subject over the
/// box around the face, the feather weights and the head/air threshold.
struct Matcher {
    qsrc: Vec<f32>,
    qdst: Vec<f32>,
    weight: Vec<f32>,
    thr: f32,
}

impl Matcher {
    fn new(vol: &Volume, w: &FaceRegion) -> Self {
        let (lo, hi) = w.bbox;
        let (mut s, mut t) = (Vec::new(), Vec::new());
        for k in lo[2]..hi[2] {
            for j in lo[1]..hi[1] {
                for i in lo[0]..hi[0] {
                    let g = vol.idx(i, j, k);
                    s.push(vol.data[g]);
                    t.push(w.template[g]);
                }
            }
        }
        let qs: Vec<f64> = (0..=200).map(|q| q as f64 / 200.0).collect();
        // Two sorts and the feather's distance passes: independent, so run
        // side by side.
        let ((qsrc, qdst), weight) = rayon::join(
            || rayon::join(|| quantiles(&t, &qs), || quantiles(&s, &qs)),
            || mask::feather(&w.face, vol.dims, spacing(&vol.affine), FEATHER_MM),
        );
        Self {
            qsrc,
            qdst,
            weight,
            thr: mask::air_threshold(&s),
        }
    }

    /// The subject with its face region replaced by `tpl` (template
    /// intensities on the subject grid), mapped and feathered.
    fn fill(&self, vol: &Volume, w: &FaceRegion, tpl: &[f32]) -> Vec<f32> {
        vol.data
            .iter()
            .enumerate()
            .map(|(g, &v)| {
                if !w.face[g] {
                    return v;
                }
                let a = self.weight[g];
                let m = quantile_map(tpl[g], &self.qsrc, &self.qdst);
                a * m + (1.0 - a) * v
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::mri::template;

    /// Synthetic head: a 70 mm ball with a box nose in front (anterior is
    /// −y); the template is the head itself (identity registration); the
    /// face region is the front slab below the "brow", minus a core.
    fn synthetic() -> (Volume, FaceRegion, Template) {
        let n = 80;
        let dims = [n, n, n];
        let affine = [
            [2.0, 0.0, 0.0, -80.0],
            [0.0, 2.0, 0.0, -80.0],
            [0.0, 0.0, 2.0, -80.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let mut vol = Volume {
            dims,
            data: vec![0.0; n * n * n],
            affine,
        };
        let mut face = vec![false; vol.len()];
        for k in 0..n {
            for j in 0..n {
                for i in 0..n {
                    let p = vol.world(i as f64, j as f64, k as f64);
                    let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
                    let nose =
                        p[0].abs() < 8.0 && p[1] > -75.0 && p[1] < -60.0 && p[2].abs() < 15.0;
                    let g = vol.idx(i, j, k);
                    if r < 70.0 || nose {
                        // smooth-ish tissue value with a little texture
                        vol.data[g] = 300.0 + (i * 7 + j * 3 + k) as f32 % 17.0;
                    }
                    face[g] = p[1] < -30.0 && p[2] < 25.0 && r > 40.0;
                }
            }
        }
        let mask = |m: &[bool]| Volume {
            dims,
            data: m.iter().map(|&b| b as u8 as f32).collect(),
            affine,
        };
        let mut t = Template {
            intensity: vol.clone(),
            face: mask(&face),
            brain: mask(&vec![false; vol.len()]),
            anchor: [0.0; 3],
        };
        t.anchor = template::anchor(&t);
        let w = FaceRegion {
            face,
            brain: vec![false; vol.len()],
            template: vol.data.clone(),
            bbox: ([0; 3], dims),
            vox_to_tworld: affine,
        };
        (vol, w, t)
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // one index into four parallel arrays
    fn reshaped_face_differs_and_only_the_region_changes() {
        let (vol, w, t) = synthetic();
        // the anchor sits at the back-top of the region, on the midline
        assert!(t.anchor[0].abs() < 1.0, "{:?}", t.anchor);
        assert!(t.anchor[1] > -34.0 && t.anchor[2] > 22.0, "{:?}", t.anchor);
        // identity shape on its own template: the face comes back unchanged
        let (same, _, d0) = reface_best(&vol, &w, &t, &[Shape::IDENTITY]);
        assert!(d0 < 0.01, "{d0}");
        for (a, b) in same.iter().zip(&vol.data) {
            assert!((a - b).abs() < 1e-3);
        }
        let (out, s, d) = reface_best(&vol, &w, &t, &shape::CANDIDATES);
        assert!(shape::CANDIDATES.contains(&s));
        assert!(d >= 3.0, "surface moved only {d:.2} mm with {s:?}");
        let mut changed = 0;
        for g in 0..vol.len() {
            if !w.face[g] {
                assert_eq!(out[g].to_bits(), vol.data[g].to_bits(), "voxel {g}");
            } else if (out[g] - vol.data[g]).abs() > 1.0 {
                changed += 1;
            }
            assert!(out[g].is_finite() && out[g] >= 0.0 && out[g] <= 317.0);
        }
        assert!(changed > 500, "{changed}");
        // the ramp holds the border: next to the subject's tissue outside the
        // region, the output equals the input
        let ramp = shape::ramp(&vol, &w.face, w.bbox, 150.0);
        let tpl = shape::sample_shaped(
            &vol,
            &w.face,
            &ramp,
            &t.intensity,
            &w.vox_to_tworld,
            t.anchor,
            &s,
        );
        for g in 0..vol.len() {
            if w.face[g] && ramp[g] == 0.0 {
                assert_eq!(tpl[g], w.template[g], "voxel {g} moved at w = 0");
            }
        }
    }
}
