//! The pixel routes and whether their models are usable, for the status page.
//!
//! Each entry says what happens to its instances right now: processed by
//! the model, quarantined because the model cannot run, or (an explicit
//! opt-out, or a route without a model) passed with pixels untouched. The
//! page must never suggest that pixels are being de-identified when they are
//! not.

use crate::runtime::Runtime;
use serde::Serialize;

#[derive(Serialize)]
pub struct ModelRoute {
    pub route: &'static str,
    pub applies_to: &'static str,
    pub model: &'static str,
    /// The configured weights path.
    pub weights: String,
    pub weights_present: bool,
    /// False only where the configuration switched the route off.
    pub enabled: bool,
    pub loaded: bool,
    pub meanwhile: String,
}

pub fn routes(rt: &Runtime) -> Vec<ModelRoute> {
    let cfg = &rt.config;
    let untouched = if cfg.filter.quarantine_burned_in_annotation {
        "pixels untouched; BurnedInAnnotation=YES quarantined".to_string()
    } else {
        "pixels untouched".to_string()
    };
    let chest = &rt.routes.chest;
    let photo = &rt.routes.photo;
    let mri = &rt.mri;
    vec![
        ModelRoute {
            route: "chest",
            applies_to: "CR/DX chest",
            model: "PriCheXy-Net deformation",
            weights: cfg.chest.weights.display().to_string(),
            weights_present: cfg.chest.weights.join("generator.safetensors").is_file(),
            enabled: chest.enabled(),
            loaded: chest.loaded(),
            meanwhile: if !chest.enabled() {
                format!("disabled ([chest] enabled = false): {untouched}")
            } else if chest.loaded() {
                "deformed (113102); undecodable radiographs quarantined".into()
            } else {
                "chest radiographs quarantined (no usable weights)".into()
            },
        },
        ModelRoute {
            route: "mri",
            applies_to: "head MR series",
            model: "face remodeling",
            weights: cfg.mri.weights.display().to_string(),
            weights_present: cfg.mri.weights.join("template_2mm.nii.gz").is_file(),
            enabled: cfg.mri.enabled,
            loaded: mri.loaded(),
            meanwhile: match mri.model() {
                Ok(_) => format!(
                    "head series assembled, face {} (113102); unprocessable series quarantined",
                    cfg.mri.mode
                ),
                Err(reason) => format!("head MR series quarantined: {reason}"),
            },
        },
        ModelRoute {
            route: "photo",
            applies_to: "XC/OP/VL/SC photos",
            model: if photo.generates() {
                "MTCNN + MedSem generator (generate mode)"
            } else {
                "MTCNN + face replacement"
            },
            weights: cfg.photo.weights.display().to_string(),
            weights_present: cfg.photo.weights.exists(),
            enabled: cfg.photo.enabled,
            loaded: photo.loaded(),
            meanwhile: if let Some(reason) = photo.generate_refusal() {
                format!("photographs quarantined: {reason}")
            } else if photo.loaded() {
                "faces replaced; undecodable photographs quarantined".into()
            } else {
                "photographs quarantined".into()
            },
        },
    ]
}
