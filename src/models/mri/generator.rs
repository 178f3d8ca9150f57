//! Generate mode (placeholder until the network lands).
use super::Volume;
use anyhow::{bail, Result};
use candle_core::Device;
use std::path::Path;

pub struct Generator;

impl Generator {
    pub fn load(dir: &Path, _dev: &Device) -> Result<Self> {
        bail!("no weights in {}", dir.display())
    }
    pub fn generate(&self, _vol: &Volume, _face: &[bool]) -> Result<Vec<f32>> {
        bail!("not implemented")
    }
}
