//! `[mri]` in gateway.toml: the head MR face route.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MriConfig {
    /// Off: head MR series go to quarantine (never through untouched).
    pub enabled: bool,
    /// "reface" (template face), "deface" (removal) or "generate" (GAN).
    pub mode: String,
    /// "remodeler" (the trained face model from `weights`) or "box" (a
    /// stand-in that overwrites an anterior-inferior box; for tests).
    pub model: String,
    /// Weights and model card of the remodeler.
    pub weights: PathBuf,
    /// A series without the expected count is processed after this many
    /// seconds without a new instance.
    pub quiet_secs: u64,
    /// Fewer slices than this cannot hold a face model's input: quarantine.
    pub min_slices: usize,
    /// Generate mode: refuse (quarantine) a series whose generated frontal
    /// face surface lies less than this far (mean over face rays, mm) from
    /// the subject's own; a generator can reproduce the subject's face.
    /// 0 turns the check off.
    pub generate_min_surface_mm: f64,
}

impl Default for MriConfig {
    fn default() -> Self {
        MriConfig {
            enabled: true,
            mode: "reface".into(),
            model: "remodeler".into(),
            weights: PathBuf::from("models/mri"),
            quiet_secs: 30,
            min_slices: 16,
            generate_min_surface_mm: 4.0,
        }
    }
}

impl MriConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !["reface", "deface", "generate"].contains(&self.mode.as_str()) {
            return Err(format!(
                "[mri] mode: expected \"reface\", \"deface\" or \"generate\", got {:?}",
                self.mode
            ));
        }
        if !["remodeler", "box"].contains(&self.model.as_str()) {
            return Err(format!(
                "[mri] model: expected \"remodeler\" or \"box\", got {:?}",
                self.model
            ));
        }
        if self.quiet_secs == 0 {
            return Err("[mri] quiet_secs: expected at least 1 second".into());
        }
        if self.min_slices < 2 {
            return Err("[mri] min_slices: expected at least 2".into());
        }
        if !(self.generate_min_surface_mm.is_finite() && self.generate_min_surface_mm >= 0.0) {
            return Err(format!(
                "[mri] generate_min_surface_mm: expected 0 or a positive number of mm, got {}",
                self.generate_min_surface_mm
            ));
        }
        Ok(())
    }
}
