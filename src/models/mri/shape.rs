//! A deliberate, bounded change of the template face's shape for reface.
//!
//! The template is fitted affinely to the whole head, so its face lands close
//! to the subject's own face shape. To give the refaced series a genuinely
//! different face, the template face is reshaped before it is sampled:
//! anisotropic scaling about a facial anchor (the posterior-superior midline
//! corner of the template face region) by [`Shape::scale`] = (width L–R,
//! projection A–P, length S–I), each within [`SCALE_RANGE`]:
//!
//! `d(p) = cap((S⁻¹ − I)(p − a), MAX_SHIFT_MM)`, sampled at `p + w(x)·d(p)`
//!
//! where `p` is the template-world point of subject voxel `x` and `w` a ramp
//! that is 0 where the face region borders the subject's tissue and 1 at
//! [`RAMP_MM`] inside (borders through air do not count), so the reshaped
//! face joins the subject's unchanged forehead, cheeks and neck without a
//! step. The shift never exceeds `MAX_SHIFT_MM`, and the warp is a bijection:
//! `d` is Lipschitz with constant `max |1/s − 1|` (≤ 0.13; the cap is a
//! projection onto a ball) and `w` with about `√3 / RAMP_MM` per mm, so the
//! displacement `w·d` has Lipschitz constant ≤ `√3·MAX_SHIFT/RAMP + 0.13`
//! ≈ 0.91 < 1 (no folding). The region that may change is not touched: the brain
//! stays out of it by construction.
//!
//! Which shape: all [`CANDIDATES`] are tried and the one whose frontal skin
//! surface differs most from the subject's (mean over face columns) is kept,
//! so the output face is the most different of a few plausible faces.

use super::mask;
use super::volume::{apply, spacing, Mat4};
use super::Volume;

/// Allowed scale per axis (anthropometric range of face width, nose
/// projection and face length relative to the average face).
pub const SCALE_RANGE: (f64, f64) = (0.9, 1.15);
/// Largest shift of any template point (mm).
pub const MAX_SHIFT_MM: f64 = 9.0;
/// Depth inside the region's tissue border at which the reshaping is full.
pub const RAMP_MM: f64 = 20.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Scale along (L–R width, A–P projection, S–I length).
    pub scale: [f64; 3],
}

impl Shape {
    pub const IDENTITY: Shape = Shape {
        scale: [1.0, 1.0, 1.0],
    };
}

/// The shapes reface chooses from: narrower/wider, flatter/more projecting,
/// shorter/longer faces (corners of a box inside [`SCALE_RANGE`]).
pub const CANDIDATES: [Shape; 8] = {
    const W: [f64; 2] = [0.92, 1.1];
    const P: [f64; 2] = [0.9, 1.15];
    const L: [f64; 2] = [0.9, 1.12];
    let mut out = [Shape::IDENTITY; 8];
    let mut n = 0;
    while n < 8 {
        out[n] = Shape {
            scale: [W[n & 1], P[(n >> 1) & 1], L[(n >> 2) & 1]],
        };
        n += 1;
    }
    out
};

/// Capped template displacement (mm) at template-world point `p`.
pub fn displacement(shape: &Shape, anchor: [f64; 3], p: [f64; 3]) -> [f64; 3] {
    let mut d = [0.0; 3];
    for a in 0..3 {
        d[a] = (1.0 / shape.scale[a] - 1.0) * (p[a] - anchor[a]);
    }
    let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
    if n > MAX_SHIFT_MM {
        d = d.map(|c| c * MAX_SHIFT_MM / n);
    }
    d
}

/// The ramp `w` over the voxel box `[lo, hi)`: 0 outside the face region
/// and next to the subject's tissue outside it (voxels > `thr` not in
/// `face`), rising to 1 about [`RAMP_MM`] away from that tissue. Borders of
/// the region through air do not hold the shape back. Made of two box
/// filters: `w = 1 − blur_r(dilate_{r+1}(tissue outside))` with
/// `r = ⌈RAMP_MM / 2⌉` mm in voxels, so a voxel 6-adjacent to that tissue
/// gets exactly 0, and along each axis `w` changes by at most `1/(2r+1)` per
/// voxel (zero padding: tissue beyond the box, at least 20 mm from the face
/// region, is ignored, so the bound holds at the box's edges too).
pub fn ramp(vol: &Volume, face: &[bool], bbox: ([usize; 3], [usize; 3]), thr: f32) -> Vec<f32> {
    let (lo, hi) = bbox;
    let bd = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
    let mut b = vec![false; bd[0] * bd[1] * bd[2]];
    for kk in 0..bd[2] {
        for jj in 0..bd[1] {
            for ii in 0..bd[0] {
                let g = vol.idx(ii + lo[0], jj + lo[1], kk + lo[2]);
                b[ii + bd[0] * (jj + bd[1] * kk)] = !face[g] && vol.data[g] > thr;
            }
        }
    }
    let r = ramp_radii(spacing(&vol.affine));
    let d = mask::dilate(&b, bd, r.map(|x| x + 1));
    let df: Vec<f32> = d.iter().map(|&x| x as u8 as f32).collect();
    let bl = mask::box_mean_zero_pad(&df, bd, r);
    let mut w = vec![0f32; vol.len()];
    for kk in 0..bd[2] {
        for jj in 0..bd[1] {
            for ii in 0..bd[0] {
                let g = vol.idx(ii + lo[0], jj + lo[1], kk + lo[2]);
                if face[g] {
                    w[g] = (1.0 - bl[ii + bd[0] * (jj + bd[1] * kk)]).clamp(0.0, 1.0);
                }
            }
        }
    }
    w
}

/// Box radii (voxels) of the ramp's filters.
pub fn ramp_radii(spacing: [f64; 3]) -> [usize; 3] {
    mask::radii_mm(spacing, RAMP_MM / 2.0)
}

/// Template intensities for the face voxels of `vol` under `shape`: subject
/// voxel → template world (`vox_to_tworld`), shifted by `w·d`, sampled in
/// `t` (0 outside the template). Voxels outside `face` get 0.
pub fn sample_shaped(
    vol: &Volume,
    face: &[bool],
    w: &[f32],
    t: &Volume,
    vox_to_tworld: &Mat4,
    anchor: [f64; 3],
    shape: &Shape,
) -> Vec<f32> {
    use rayon::prelude::*;
    let tinv = super::volume::invert(&t.affine);
    let [nx, ny, _] = vol.dims;
    let mut out = vec![0f32; vol.len()];
    out.par_chunks_mut(nx * ny).enumerate().for_each(|(k, sl)| {
        for j in 0..ny {
            for i in 0..nx {
                let g = i + nx * (j + ny * k);
                if !face[g] {
                    continue;
                }
                let p = apply(vox_to_tworld, [i as f64, j as f64, k as f64]);
                let d = displacement(shape, anchor, p);
                let wg = w[g] as f64;
                let q = [p[0] + wg * d[0], p[1] + wg * d[1], p[2] + wg * d[2]];
                sl[i + nx * j] = t.sample(apply(&tinv, q), 0.0);
            }
        }
    });
    out
}

/// Mean |frontal skin depth difference| (mm) between `a` and `b` over the
/// columns of the box whose skin (in `a`) lies in the face region. Columns
/// run along the voxel axis closest to A–P, from the anterior end; a column
/// that has skin in `a` but none in `b` counts its remaining length.
pub fn front_depth_diff(
    vol: &Volume,
    a: &[f32],
    b: &[f32],
    face: &[bool],
    bbox: ([usize; 3], [usize; 3]),
    thr: f32,
) -> f64 {
    let (lo, hi) = bbox;
    let ax = (0..3)
        .max_by(|&p, &q| vol.affine[1][p].abs().total_cmp(&vol.affine[1][q].abs()))
        .unwrap_or(1);
    let fwd = vol.affine[1][ax] > 0.0; // increasing index goes posterior (+y in LPS)
    let sp = spacing(&vol.affine)[ax];
    let (u, v) = match ax {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let n = hi[ax] - lo[ax];
    let (mut s, mut cnt) = (0.0f64, 0usize);
    for cu in lo[u]..hi[u] {
        for cv in lo[v]..hi[v] {
            let at = |t: usize| {
                let mut c = [0usize; 3];
                c[ax] = if fwd { lo[ax] + t } else { hi[ax] - 1 - t };
                c[u] = cu;
                c[v] = cv;
                vol.idx(c[0], c[1], c[2])
            };
            let hit = |d: &[f32]| (0..n).find(|&t| d[at(t)] > thr);
            let Some(ta) = hit(a) else { continue };
            if !face[at(ta)] {
                continue;
            }
            let tb = hit(b).unwrap_or(n);
            s += (ta as f64 - tb as f64).abs() * sp;
            cnt += 1;
        }
    }
    if cnt > 0 {
        s / cnt as f64
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(s: &mut u64) -> f64 {
        *s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn candidates_lie_in_the_anthropometric_range() {
        for c in CANDIDATES {
            for s in c.scale {
                assert!((SCALE_RANGE.0..=SCALE_RANGE.1).contains(&s), "{c:?}");
                assert!((s - 1.0).abs() >= 0.075, "{c:?} barely changes the face");
            }
        }
        // all distinct
        for (i, a) in CANDIDATES.iter().enumerate() {
            for b in &CANDIDATES[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn displacement_is_capped_lipschitz_and_zero_at_the_anchor() {
        let anchor = [1.0, -60.0, -10.0];
        let mut seed = 7u64;
        let lip = CANDIDATES
            .iter()
            .flat_map(|c| c.scale)
            .map(|s| (1.0 / s - 1.0).abs())
            .fold(0.0, f64::max);
        assert!(lip <= 0.135, "{lip}");
        for c in CANDIDATES {
            assert_eq!(displacement(&c, anchor, anchor), [0.0; 3]);
            for _ in 0..2000 {
                let p = [0, 1, 2].map(|a| anchor[a] + 300.0 * (lcg(&mut seed) - 0.5));
                let q = [0, 1, 2].map(|a| p[a] + 4.0 * (lcg(&mut seed) - 0.5));
                let (dp, dq) = (displacement(&c, anchor, p), displacement(&c, anchor, q));
                let n = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                assert!(n(dp) <= MAX_SHIFT_MM + 1e-9);
                let dd = [dp[0] - dq[0], dp[1] - dq[1], dp[2] - dq[2]];
                let pq = [p[0] - q[0], p[1] - q[1], p[2] - q[2]];
                assert!(n(dd) <= lip * n(pq) + 1e-9, "{c:?} {p:?} {q:?}");
            }
        }
        // the whole warp cannot fold: Lipschitz of w·d stays below 1
        assert!(3f64.sqrt() * MAX_SHIFT_MM / RAMP_MM + lip < 1.0);
    }

    /// A ball "head" with a box "nose" in front; face region = the front
    /// slab outside a protected core. The ramp is 0 at the region's tissue
    /// border, changes slowly, and air borders do not hold it back.
    #[test]
    fn ramp_is_zero_at_tissue_borders_and_slow() {
        let n = 64;
        let dims = [n, n, n];
        let affine = [
            [2.0, 0.0, 0.0, -64.0],
            [0.0, 2.0, 0.0, -64.0],
            [0.0, 0.0, 2.0, -64.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let mut data = vec![0f32; n * n * n];
        let mut face = vec![false; n * n * n];
        let vol0 = Volume {
            dims,
            data: data.clone(),
            affine,
        };
        for k in 0..n {
            for j in 0..n {
                for i in 0..n {
                    let p = vol0.world(i as f64, j as f64, k as f64);
                    let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
                    let g = vol0.idx(i, j, k);
                    if r < 50.0 {
                        data[g] = 100.0;
                    }
                    // face region: anterior slab (y < -10), not too high
                    face[g] = p[1] < -10.0 && p[2] < 30.0;
                }
            }
        }
        let vol = Volume { dims, data, affine };
        let bbox = ([0, 0, 0], dims);
        let w = ramp(&vol, &face, bbox, 50.0);
        let r = ramp_radii([2.0; 3]);
        let step = 1.0 / (2 * r[0] + 1) as f32;
        assert!(step as f64 <= 2.0 / RAMP_MM + 1e-9);
        for k in 0..n {
            for j in 0..n {
                for i in 0..n {
                    let g = vol.idx(i, j, k);
                    if !face[g] {
                        assert_eq!(w[g], 0.0);
                        continue;
                    }
                    // next to a tissue voxel outside the region: w ~ 0
                    let nb = [(1, 0, 0), (0, 1, 0), (0, 0, 1)];
                    for (di, dj, dk) in nb {
                        let (a, b, c) = (i + di, j + dj, k + dk);
                        if a < n && b < n && c < n {
                            let h = vol.idx(a, b, c);
                            if !face[h] && vol.data[h] > 50.0 {
                                assert_eq!(w[g], 0.0, "w at a tissue border");
                            }
                            if face[h] {
                                assert!((w[g] - w[h]).abs() <= step + 1e-5);
                            }
                        }
                    }
                }
            }
        }
        // deep in front of the face (air border at the volume edge): full
        let g = vol.idx(32, 2, 5);
        assert!(face[g] && w[g] >= 0.99, "{}", w[g]);
    }
}
