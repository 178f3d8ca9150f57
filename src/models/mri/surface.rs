//! Skin surface and frontal depth maps for the face-surface evaluation.
//!
//! Rays run from the front of the head backwards (LPS: anterior is −y, so
//! rays travel towards +y) on a 1 mm grid in the (x, z) plane. The depth is
//! the y of the first sample above the head/air threshold: a threshold
//! isosurface of the skin seen from the front.

use super::volume::{apply, invert};
use super::Volume;

pub struct DepthMap {
    pub w: usize,
    pub h: usize,
    /// Depth (mm from the front plane) per ray; NaN where the ray hits nothing.
    pub depth: Vec<f32>,
    /// Whether the ray's first hit (in the input) lies in the face region.
    pub face: Vec<bool>,
    /// World x and z of ray (0, 0), and the y of the front plane.
    pub origin: [f64; 3],
}

/// World bounding box of a volume (min, max corner).
pub fn bounds(v: &Volume) -> ([f64; 3], [f64; 3]) {
    let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
    for c in 0..8 {
        let p = [0, 1, 2].map(|a| {
            if c >> a & 1 == 1 {
                (v.dims[a] - 1) as f64
            } else {
                0.0
            }
        });
        let w = apply(&v.affine, p);
        for a in 0..3 {
            lo[a] = lo[a].min(w[a]);
            hi[a] = hi[a].max(w[a]);
        }
    }
    (lo, hi)
}

/// Render `data` (on `vol`'s grid) from the front. `face` (same grid) marks
/// the face region; a ray counts as a face ray if its hit lies within 2 mm of
/// the region in `face_ref`'s render (callers pass the input render's hits).
pub fn depth_map(vol: &Volume, data: &[f32], thr: f32, face: Option<&[bool]>) -> DepthMap {
    let (lo, hi) = bounds(vol);
    let inv = invert(&vol.affine);
    let w = (hi[0] - lo[0]).ceil() as usize + 1;
    let h = (hi[2] - lo[2]).ceil() as usize + 1;
    let tmp = Volume {
        dims: vol.dims,
        data: data.to_vec(),
        affine: vol.affine,
    };
    let fvol = face.map(|f| Volume {
        dims: vol.dims,
        data: f.iter().map(|&b| b as u8 as f32).collect(),
        affine: vol.affine,
    });
    let steps = ((hi[1] - lo[1]) / 0.5).ceil() as usize;
    let mut depth = vec![f32::NAN; w * h];
    let mut isface = vec![false; w * h];
    for r in 0..h {
        // image row 0 = top = superior (largest z)
        let z = hi[2] - r as f64;
        for c in 0..w {
            // image column 0 = patient's right (smallest x in LPS) as seen from the front
            let x = lo[0] + c as f64;
            for s in 0..=steps {
                let y = lo[1] + 0.5 * s as f64;
                let p = apply(&inv, [x, y, z]);
                if tmp.sample(p, 0.0) > thr {
                    depth[r * w + c] = (y - lo[1]) as f32;
                    if let Some(fv) = &fvol {
                        // within 2 mm behind the hit
                        isface[r * w + c] = (0..=4)
                            .any(|d| fv.sample(apply(&inv, [x, y + 0.5 * d as f64, z]), 0.0) > 0.5);
                    }
                    break;
                }
            }
        }
    }
    DepthMap {
        w,
        h,
        depth,
        face: isface,
        origin: [lo[0], lo[1], hi[2]],
    }
}

/// Mean |depth difference| (mm) over face rays of `a`; rays that miss in `b`
/// count as the full depth of the box (the face is gone). Returns (mean, rays).
pub fn mean_face_distance(a: &DepthMap, b: &DepthMap, full: f32) -> (f64, usize) {
    let (mut s, mut n) = (0.0f64, 0usize);
    for i in 0..a.depth.len() {
        if !a.face[i] || a.depth[i].is_nan() {
            continue;
        }
        let db = if b.depth[i].is_nan() {
            full
        } else {
            b.depth[i]
        };
        s += (a.depth[i] - db).abs() as f64;
        n += 1;
    }
    (if n > 0 { s / n as f64 } else { 0.0 }, n)
}
