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
        Ok(())
    }
}
