//! `[mri]` in gateway.toml: the head MR face route.

use super::paths::ModelKey;
use crate::models::mri::Mode;
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;

/// `[mri] model`: which face model remodels the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MriModel {
    /// The trained face remodeler from `weights`.
    Remodeler,
    /// A stand-in that overwrites an anterior-inferior box (tests only).
    Box,
}

impl MriModel {
    pub fn name(&self) -> &'static str {
        match self {
            MriModel::Remodeler => "remodeler",
            MriModel::Box => "box",
        }
    }
}

/// `[mri] mode` through the model's own parser, so the config and the
/// model accept exactly the same names.
fn mode_from_str<'de, D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|e: anyhow::Error| {
        serde::de::Error::custom(format!(
            "expected \"reface\", \"deface\" or \"generate\", got {s:?} ({e})"
        ))
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MriConfig {
    /// Off: head MR series go to quarantine (never through untouched).
    pub enabled: bool,
    /// "reface" (template face), "deface" (removal) or "generate" (GAN).
    #[serde(deserialize_with = "mode_from_str")]
    pub mode: Mode,
    /// "remodeler" (the trained face model from `weights`) or "box" (a
    /// stand-in that overwrites an anterior-inferior box; for tests).
    pub model: MriModel,
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
            mode: Mode::Reface,
            model: MriModel::Remodeler,
            weights: PathBuf::from("models/mri"),
            quiet_secs: 30,
            min_slices: 16,
            generate_min_surface_mm: 4.0,
        }
    }
}

impl MriConfig {
    /// The model paths of `[mri]`, for resolution (see [`super::paths`]).
    pub(super) fn model_keys(&mut self) -> Vec<ModelKey<'_>> {
        vec![ModelKey {
            route: "mri",
            section: "mri",
            name: "weights",
            key: "[mri] weights",
            used: self.enabled && self.model == MriModel::Remodeler,
            path: &mut self.weights,
            marker: Some("template_2mm.nii.gz"),
        }]
    }

    pub fn validate(&self) -> Result<(), String> {
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
