//! The pixel routes and whether their models are usable, for the status page.
//!
//! No pixel model ships in this build yet, so every route reports
//! `loaded: false` and what happens to its instances instead: they pass
//! with pixels untouched unless a [filter] rule quarantines them. The page
//! must never suggest that pixels are being de-identified when they are not.

use crate::config::Config;
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
pub struct ModelRoute {
    pub route: &'static str,
    pub applies_to: &'static str,
    pub model: &'static str,
    pub weights: &'static str,
    pub weights_present: bool,
    pub loaded: bool,
    pub meanwhile: String,
}

pub fn routes(cfg: &Config) -> Vec<ModelRoute> {
    let meanwhile = if cfg.filter.quarantine_burned_in_annotation {
        "pixels untouched; BurnedInAnnotation=YES quarantined".to_string()
    } else {
        "pixels untouched".to_string()
    };
    [
        (
            "chest",
            "CR/DX chest",
            "PriCheXy-Net deformation",
            "models/chest/generator.safetensors",
        ),
        (
            "mri",
            "head MR series",
            "face remodeling",
            "models/mri/template",
        ),
        (
            "photo",
            "XC/OP/VL/SC photos",
            "MTCNN + face replacement",
            "models/photo/mtcnn.safetensors",
        ),
    ]
    .into_iter()
    .map(|(route, applies_to, model, weights)| ModelRoute {
        route,
        applies_to,
        model,
        weights,
        weights_present: Path::new(weights).exists(),
        loaded: false,
        meanwhile: meanwhile.clone(),
    })
    .collect()
}
