//! The seam between the pipeline and the face model: a volume in, new
//! values and the mask of voxels allowed to change out.

use std::path::Path;

/// A head volume in stored values. Same fields as `crate::models::mri::Volume`
/// (kept separate so the pipeline can be tested with stand-in models).
#[derive(Debug, Clone)]
pub struct Volume {
    /// (i = columns, j = rows, k = slices), i fastest in `data`.
    pub dims: [usize; 3],
    pub data: Vec<f32>,
    /// Voxel (i, j, k, 1) to DICOM patient coordinates (LPS, mm).
    pub affine: [[f64; 4]; 4],
}

impl Volume {
    /// Patient coordinates (mm) of voxel (i, j, k).
    pub fn patient(&self, i: usize, j: usize, k: usize) -> [f64; 3] {
        let a = &self.affine;
        let v = [i as f64, j as f64, k as f64];
        std::array::from_fn(|r| a[r][0] * v[0] + a[r][1] * v[1] + a[r][2] * v[2] + a[r][3])
    }
}

/// A face model as the route sees it. `remodel` returns the new values (same
/// length as `vol.data`), the voxels that may change, and a short note for
/// the log and DeidentificationMethod. `Err` is a reason for quarantine.
pub trait FaceModel: Send + Sync {
    fn remodel(&self, vol: &Volume, mode: &str) -> anyhow::Result<(Vec<f32>, Vec<bool>, String)>;
}

/// The trained face remodeler from `dir` (`models/mri/`).
pub fn load_face_model(dir: &Path) -> anyhow::Result<Box<dyn FaceModel>> {
    Ok(Box::new(crate::models::mri::FaceRemodeler::load(dir)?))
}

impl FaceModel for crate::models::mri::FaceRemodeler {
    fn remodel(&self, vol: &Volume, mode: &str) -> anyhow::Result<(Vec<f32>, Vec<bool>, String)> {
        let mode: crate::models::mri::Mode = mode
            .parse()
            .map_err(|e: anyhow::Error| e.context(format!("[mri] mode {mode:?}")))?;
        let v = crate::models::mri::Volume {
            dims: vol.dims,
            data: vol.data.clone(),
            affine: vol.affine,
        };
        let r = crate::models::mri::FaceRemodeler::remodel(self, &v, mode)?;
        Ok((r.data, r.face, r.note))
    }
}
