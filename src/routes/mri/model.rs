//! The seam between the MRI route and a face model: the model's own
//! [`Volume`] in, its [`Remodeled`] out (new values and the mask of voxels
//! allowed to change). Stand-in models for tests implement the same trait.

use crate::models::mri::{FaceRemodeler, Mode, Remodeled, Volume};
use std::path::Path;

/// A face model as the route sees it. `Err` is a reason for quarantine.
pub trait FaceModel: Send + Sync {
    fn remodel(&self, vol: &Volume, mode: Mode) -> anyhow::Result<Remodeled>;
}

/// The trained face remodeler from `dir` (`models/mri/`).
pub fn load_face_model(dir: &Path) -> anyhow::Result<Box<dyn FaceModel>> {
    Ok(Box::new(FaceRemodeler::load(dir)?))
}

impl FaceModel for FaceRemodeler {
    fn remodel(&self, vol: &Volume, mode: Mode) -> anyhow::Result<Remodeled> {
        FaceRemodeler::remodel(self, vol, mode)
    }
}
