//! The average head template with its face and brain masks, as committed in
//! `models/mri/` (2 mm copies made by `examples/mri_make_template.rs` from the
//! pydeface template, MIT; see models/mri/MODEL.md).

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
    /// see [`super::shape::anchor`]).
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
        t.anchor = super::shape::anchor(&t);
        Ok(t)
    }
}
