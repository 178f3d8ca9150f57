//! `models/photo/medsem/config.json`: the network's sizes, written by
//! `deidgate train photo` and read back by the generate mode, so weights are
//! never loaded into a network of another shape.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// Sizes of the three networks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MedSemConfig {
    /// Side of the square face crop, in pixels; a multiple of 16.
    pub size: usize,
    /// Length of the identity code.
    pub id_dim: usize,
    /// Channels of the semantic map (at `size / 8`). Few channels keep the
    /// bottleneck narrow, so less identity can ride through it.
    pub sem_channels: usize,
    /// Widest channel count of the decoder (halved at every upsampling).
    pub width: usize,
    /// What training wrote about itself (data counts, loss curve); free form
    /// and not read by the model.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub training: serde_json::Value,
}

impl Default for MedSemConfig {
    fn default() -> Self {
        Self {
            size: 96,
            id_dim: 128,
            sem_channels: 32,
            width: 128,
            training: serde_json::Value::Null,
        }
    }
}

impl MedSemConfig {
    /// A config for `size`-pixel crops with the default widths.
    pub fn with_size(size: usize) -> Self {
        Self {
            size,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.size >= 32 && self.size.is_multiple_of(16),
            "crop size {}: expected a multiple of 16, at least 32",
            self.size
        );
        ensure!(
            self.id_dim > 0 && self.sem_channels > 0 && self.width >= 32,
            "id_dim, sem_channels must be positive and width at least 32"
        );
        Ok(())
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: Self = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a MedSem config", path.display()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
impl MedSemConfig {
    /// A small model (32 px crops, 8-d identity, width 32) for unit tests.
    pub(crate) fn tiny() -> Self {
        Self {
            size: 32,
            id_dim: 8,
            sem_channels: 4,
            width: 32,
            ..Self::default()
        }
    }
}
