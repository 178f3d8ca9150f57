//! One complete head MR series through the face model: volume, model,
//! privacy guard, write-back into each instance. Deterministic: instances
//! are ordered by geometry, not arrival, so a series redone after a crash
//! gives identical pixels.

use super::model::FaceModel;
use super::volume;
use crate::config::MriConfig;
use crate::deid::markers::CLEAN_RECOGNIZABLE_VISUAL_FEATURES;
use crate::models::mri::{Mode, Volume};
use crate::routes::Cleaned;
use dicom_object::DefaultDicomObject;

/// Volume, model, write-back. `Err` is the series' quarantine reason.
pub fn remodel(
    cfg: &MriConfig,
    model: Result<&dyn FaceModel, String>,
    mut objs: Vec<DefaultDicomObject>,
) -> Result<(Vec<DefaultDicomObject>, Cleaned), String> {
    let assembled = volume::assemble(&objs, cfg.min_slices)?;
    let model = model?;
    let r = model
        .remodel(&assembled.volume, cfg.mode)
        .map_err(|e| format!("face model: {e:#}"))?;
    generate_guard(cfg, &assembled.volume, &r.data, &r.face)?;
    let changed = r.face.iter().filter(|f| **f).count();
    let pixels = volume::apply(assembled, &r.data, &r.face)?;
    for (o, px) in objs.iter_mut().zip(pixels) {
        super::pixels::write_back(o, px);
    }
    tracing::info!(instances = objs.len(), face_voxels = changed, note = %r.note, "head MR series remodeled");
    let cleaned = Cleaned {
        codes: vec![CLEAN_RECOGNIZABLE_VISUAL_FEATURES],
        sealed: None,
        method_note: Some(format!("MR face {}: {}", cfg.mode.name(), r.note)),
        note: r.note,
        leaks: Vec::new(),
    };
    Ok((objs, cleaned))
}

/// Generate mode's privacy guard (`[mri] generate_min_surface_mm`): `Err`
/// (the quarantine reason) when the generated face surface is too close to
/// the subject's; the measured mean distance (mm) when checked.
fn generate_guard(
    cfg: &MriConfig,
    vol: &Volume,
    new: &[f32],
    face: &[bool],
) -> Result<Option<f64>, String> {
    if cfg.mode != Mode::Generate || cfg.generate_min_surface_mm <= 0.0 {
        return Ok(None);
    }
    if new.len() != vol.data.len() || face.len() != vol.data.len() {
        return Err("the face model returned a result of the wrong size".into());
    }
    let c = crate::models::mri::guard::check_generated(vol, new, face, cfg.generate_min_surface_mm)
        .map_err(|e| format!("{e:#}"))?;
    tracing::info!(
        face_surface_mm = c.mean_mm,
        face_rays = c.rays,
        "generate mode: face surface check passed"
    );
    Ok(Some(c.mean_mm))
}
