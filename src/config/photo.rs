//! `[photo]` in gateway.toml: the photograph face route.

use super::paths::ModelKey;
use serde::Deserialize;
use std::path::PathBuf;

/// The photo route (`[photo]`): faces in photographs are replaced.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoConfig {
    /// Off: photographs go to quarantine (never through untouched).
    pub enabled: bool,
    /// MTCNN weights written by scripts/fetch-weights.sh.
    pub weights: PathBuf,
    /// Regions left bit-identical: "periocular", "perioral".
    pub keep: Vec<crate::models::photo::KeepRegion>,
    /// Keep, bit-identical, the bounding box of every closed graphic
    /// (circle, ellipse, closed polyline) of the photograph's own Graphic
    /// Annotation Sequence (0070,0001): a lesion a clinician outlined.
    #[serde(default = "yes")]
    pub keep_annotations: bool,
    /// Only graphics on these Graphic Layers (0070,0002) count; empty: all.
    #[serde(default)]
    pub keep_annotation_layers: Vec<String>,
    /// Smallest face searched for, in pixels.
    pub min_face_size: f32,
    /// How faces are replaced: synthetic fill, or the learned generator.
    #[serde(default)]
    pub mode: PhotoMode,
    /// Generate mode's `config.json` and weights (`deidgate train photo`).
    #[serde(default = "default_generator")]
    pub generator: PathBuf,
}

/// `[photo] mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhotoMode {
    /// Synthetic face-like fill (`models/photo/replace.rs`).
    #[default]
    Replace,
    /// The learned MedSem decoder; without trained weights it refuses and
    /// photographs go to quarantine.
    Generate,
}

impl PhotoConfig {
    /// The model paths of `[photo]`, for resolution (see [`super::paths`]):
    /// the detector, and generate mode's decoder.
    pub(super) fn model_keys(&mut self) -> Vec<ModelKey<'_>> {
        let generates = self.enabled && self.mode == PhotoMode::Generate;
        vec![
            ModelKey {
                route: "photo",
                section: "photo",
                name: "weights",
                key: "[photo] weights",
                used: self.enabled,
                path: &mut self.weights,
                marker: None,
            },
            ModelKey {
                route: "photo",
                section: "photo",
                name: "generator",
                key: "[photo] generator",
                used: generates,
                path: &mut self.generator,
                marker: Some("config.json"),
            },
        ]
    }
}

fn yes() -> bool {
    true
}

fn default_generator() -> PathBuf {
    crate::models::photo::medsem::DEFAULT_DIR.into()
}
