//! The pixel routes and whether their models are usable, for the status page.
//!
//! Only the photo route has a model in this build. The others report
//! `loaded: false` and what happens to their instances instead: they pass
//! with pixels untouched unless a [filter] rule quarantines them. The page
//! must never suggest that pixels are being de-identified when they are not.

use crate::runtime::Runtime;
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

pub fn routes(rt: &Runtime) -> Vec<ModelRoute> {
    let cfg = &rt.config;
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
            if rt.photo.generates() {
                "MTCNN + MedSem generator (generate mode)"
            } else {
                "MTCNN + face replacement"
            },
            "models/photo/mtcnn.safetensors",
        ),
    ]
    .into_iter()
    .map(|(route, applies_to, model, weights)| {
        let loaded = route == "photo" && rt.photo.loaded();
        ModelRoute {
            route,
            applies_to,
            model,
            weights,
            // The photo route's weights path is configurable.
            weights_present: if route == "photo" {
                cfg.photo.weights.exists()
            } else {
                Path::new(weights).exists()
            },
            loaded,
            meanwhile: if route == "photo" {
                if let Some(reason) = rt.photo.generate_refusal() {
                    format!("photographs quarantined: {reason}")
                } else if loaded {
                    "faces replaced; undecodable photographs quarantined".into()
                } else {
                    "photographs quarantined".into()
                }
            } else {
                meanwhile.clone()
            },
        }
    })
    .collect()
}
