//! Reface: the registered template face, mapped onto the subject's own
//! intensity scale and feathered into the surrounding head.
//!
//! Intensity matching is quantile mapping over the box around the face: both
//! the warped template and the subject are sampled over the same voxels, so
//! air maps to air and skin/fat/muscle to the subject's skin/fat/muscle
//! whatever the scanner's scale. The blend weight rises from 0 at the
//! region's border to 1 at `FEATHER_MM` inside it.

use super::mask;
use super::volume::{quantiles, spacing};
use super::warp::FaceRegion;
use super::Volume;

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

pub fn reface(vol: &Volume, w: &FaceRegion) -> Vec<f32> {
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
    let qsrc = quantiles(&t, &qs);
    let qdst = quantiles(&s, &qs);
    let weight = mask::feather(&w.face, vol.dims, spacing(&vol.affine), FEATHER_MM);
    vol.data
        .iter()
        .enumerate()
        .map(|(g, &v)| {
            if !w.face[g] {
                return v;
            }
            let a = weight[g];
            let m = quantile_map(w.template[g], &qsrc, &qdst);
            a * m + (1.0 - a) * v
        })
        .collect()
}
