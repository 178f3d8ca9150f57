//! `[chest]` in gateway.toml: the chest radiograph deformation route.

use super::paths::ModelKey;
use serde::Deserialize;
use std::path::PathBuf;

/// The chest route (`[chest]`): chest radiographs are deformed by a learned
/// field (PriCheXy-Net).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChestConfig {
    /// Off is an explicit opt-out: chest radiographs pass with pixels
    /// untouched, and the log and the status page say so.
    pub enabled: bool,
    /// Folder with `config.json` and `generator.safetensors`.
    pub weights: PathBuf,
    /// What happens while no usable weights are installed.
    pub missing_weights: MissingWeights,
    /// The displacement bound (normalised grid units): selects the model
    /// trained at this μ, `weights` itself or its `mu_<μ>/` subfolder
    /// (never a rescaled field). Absent: the model in `weights`, at its μ.
    #[serde(default)]
    pub mu: Option<f32>,
}

/// `[chest] missing_weights`: never "pass"; `enabled = false` is the opt-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingWeights {
    /// Run, and send chest radiographs to quarantine with the reason.
    Quarantine,
    /// Refuse to start.
    Stop,
}

impl ChestConfig {
    /// The model paths of `[chest]`, for resolution (see [`super::paths`]).
    pub(super) fn model_keys(&mut self) -> Vec<ModelKey<'_>> {
        vec![ModelKey {
            route: "chest",
            section: "chest",
            name: "weights",
            key: "[chest] weights",
            used: self.enabled,
            path: &mut self.weights,
            marker: Some("generator.safetensors"),
        }]
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if self.enabled && self.weights.as_os_str().is_empty() {
            return Err(
                "[chest] weights: expected the folder holding config.json and \
                        generator.safetensors, got an empty path (or set enabled = false)"
                    .into(),
            );
        }
        if let Some(mu) = self.mu {
            if !(mu > 0.0 && mu <= 0.5) {
                return Err(format!(
                    "[chest] mu: expected a bound in (0, 0.5] (0.01 moves a pixel by at most \
                     1 % of the half image), got {mu}"
                ));
            }
        }
        Ok(())
    }
}
