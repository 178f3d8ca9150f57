//! `models/chest/config.json`: what the gateway needs to run the generator
//! (μ, input size, width) plus provenance the model card refers to.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChestConfig {
    /// Bound on each displacement component, normalized grid units.
    pub mu: f32,
    /// Side of the square model input (multiple of 16).
    pub input_size: usize,
    /// First U-Net level's channel count (32 in the paper).
    pub base_width: usize,
    /// Gaussian smoothing of the displacement.
    #[serde(default = "default_kernel")]
    pub smooth_kernel: usize,
    #[serde(default = "default_sigma")]
    pub smooth_sigma: f64,
    /// Data sets the weights were trained on (names, not paths with PHI).
    #[serde(default)]
    pub trained_on: Vec<String>,
    /// Free-form provenance: seed, epochs, command.
    #[serde(default)]
    pub notes: String,
}

fn default_kernel() -> usize {
    9
}
fn default_sigma() -> f64 {
    2.0
}

impl ChestConfig {
    pub fn new(mu: f32, input_size: usize, base_width: usize) -> Self {
        Self {
            mu,
            input_size,
            base_width,
            smooth_kernel: default_kernel(),
            smooth_sigma: default_sigma(),
            trained_on: vec![],
            notes: String::new(),
        }
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let c: Self = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
        c.validate()?;
        Ok(c)
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")?;
        Ok(())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.input_size >= 16 && self.input_size.is_multiple_of(16),
            "chest config: input_size {} must be a positive multiple of 16",
            self.input_size
        );
        anyhow::ensure!(
            self.mu > 0.0 && self.mu <= 0.1,
            "chest config: mu {} outside (0, 0.1]",
            self.mu
        );
        anyhow::ensure!(self.base_width > 0, "chest config: base_width must be > 0");
        anyhow::ensure!(
            self.smooth_kernel == 9 && self.smooth_sigma == 2.0,
            "chest config: only the 9×9 σ=2 smoothing is implemented"
        );
        Ok(())
    }
}
