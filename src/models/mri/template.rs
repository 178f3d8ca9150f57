//! The average head template with its face and brain masks, as committed in
//! `models/mri/` (2 mm copies made by `examples/mri_make_template.rs` from the
//! pydeface template, MIT; see models/mri/MODEL.md), and its facial
//! [`anchor`]: a property of the template that reface's shape change
//! ([`super::shape`]) is given as a point, so that module needs no template.

use super::mask;
use super::nifti::read_nifti;
use super::Volume;
use anyhow::{bail, Context, Result};
use std::path::Path;

pub const INTENSITY_FILE: &str = "template_2mm.nii.gz";
pub const FACE_FILE: &str = "facemask_2mm.nii.gz";
pub const BRAIN_FILE: &str = "brainmask_2mm.nii.gz";

pub struct Template {
    pub intensity: Volume,
    /// 1 inside the face region to remodel, 0 elsewhere.
    pub face: Volume,
    /// 1 inside the brain (undilated), 0 elsewhere.
    pub brain: Volume,
    /// Facial anchor of the reface shape change (template world, LPS mm;
    /// see [`anchor`]).
    pub anchor: [f64; 3],
}

impl Template {
    pub fn load(dir: &Path) -> Result<Self> {
        let rd = |f: &str| {
            read_nifti(&dir.join(f)).with_context(|| {
                format!(
                    "MRI face template missing in {} (see models/mri/MODEL.md)",
                    dir.display()
                )
            })
        };
        let mut t = Self {
            intensity: rd(INTENSITY_FILE)?,
            face: rd(FACE_FILE)?,
            brain: rd(BRAIN_FILE)?,
            anchor: [0.0; 3],
        };
        if t.face.dims != t.intensity.dims || t.brain.dims != t.intensity.dims {
            bail!("template, face mask and brain mask differ in size");
        }
        t.anchor = anchor(&t);
        Ok(t)
    }
}

/// Facial anchor in template world (LPS mm): the midline (tissue-weighted
/// mean x of the face region), the posterior (largest y) and superior
/// (largest z) extent of the template face region.
pub fn anchor(t: &Template) -> [f64; 3] {
    let thr = mask::air_threshold(&t.intensity.data);
    let v = &t.face;
    let (mut a, mut sx, mut wx) = ([0.0, f64::NEG_INFINITY, f64::NEG_INFINITY], 0.0, 0.0);
    for k in 0..v.dims[2] {
        for j in 0..v.dims[1] {
            for i in 0..v.dims[0] {
                let g = v.idx(i, j, k);
                if v.data[g] < 0.5 {
                    continue;
                }
                let p = v.world(i as f64, j as f64, k as f64);
                a[1] = a[1].max(p[1]);
                a[2] = a[2].max(p[2]);
                if t.intensity.data[g] > thr {
                    sx += p[0];
                    wx += 1.0;
                }
            }
        }
    }
    a[0] = if wx > 0.0 { sx / wx } else { 0.0 };
    if !a[1].is_finite() {
        a[1] = 0.0;
        a[2] = 0.0;
    }
    a
}
