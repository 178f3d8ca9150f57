//! What the chest route needs from a model: a bounded displacement field for
//! a small square image. The route owns decoding, resampling and the warp;
//! the model only answers this question, so it can be swapped or faked.

use crate::models::chest::ChestDeformer;
use std::path::Path;

/// A learned (or test) deformation: PriCheXy-Net's generator in production.
pub trait Deformer: Send + Sync {
    /// Side of the square input grid (e.g. 256).
    fn input_size(&self) -> usize;
    /// Bound on |displacement| in normalized units ([-1, 1] spans the image).
    fn mu(&self) -> f32;
    /// `img`: `input_size`² row-major values in [0, 1], MONOCHROME2 sense
    /// (bright = dense). Returns `(dx, dy)`, each `input_size`² row-major, in
    /// normalized units with corners aligned: output pixel p samples the
    /// input at p + d.
    fn displacement(&self, img: &[f32]) -> anyhow::Result<[Vec<f32>; 2]>;
}

/// Loads the chest model from `dir` (`config.json`, `generator.safetensors`).
pub fn load_deformer(dir: &Path) -> anyhow::Result<Box<dyn Deformer>> {
    Ok(Box::new(ChestDeformer::load(dir)?))
}

impl Deformer for ChestDeformer {
    fn input_size(&self) -> usize {
        ChestDeformer::input_size(self)
    }
    fn mu(&self) -> f32 {
        ChestDeformer::mu(self)
    }
    fn displacement(&self, img: &[f32]) -> anyhow::Result<[Vec<f32>; 2]> {
        ChestDeformer::displacement(self, img)
    }
}
