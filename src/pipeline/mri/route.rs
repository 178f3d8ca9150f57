//! The loaded head MR route: its settings and its model, or why the model
//! cannot run (then every head series goes to quarantine with that reason).

use super::config::MriConfig;
use super::model::{load_face_model, FaceModel};

pub struct MriRoute {
    pub cfg: MriConfig,
    model: Result<Box<dyn FaceModel>, String>,
}

impl MriRoute {
    /// Load the configured model. A missing model is not an error here.
    pub fn load(cfg: &MriConfig) -> MriRoute {
        let model = if !cfg.enabled {
            Err("the MRI route is disabled ([mri] enabled = false)".to_string())
        } else if cfg.model == "box" {
            Ok(Box::new(super::box_model::BoxModel) as Box<dyn FaceModel>)
        } else {
            load_face_model(&cfg.weights).map_err(|e| format!("{e:#}"))
        };
        match &model {
            Ok(_) => {
                tracing::info!(model = %cfg.model, mode = %cfg.mode, "MRI route: face model loaded")
            }
            Err(e) => {
                tracing::warn!(reason = %e, "MRI route unavailable: head MR series go to quarantine")
            }
        }
        MriRoute {
            cfg: cfg.clone(),
            model,
        }
    }

    /// A route with a given model (tests, or a model loaded elsewhere).
    pub fn with_model(cfg: &MriConfig, model: Box<dyn FaceModel>) -> MriRoute {
        MriRoute {
            cfg: cfg.clone(),
            model: Ok(model),
        }
    }

    pub fn loaded(&self) -> bool {
        self.model.is_ok()
    }

    /// The model, or the quarantine reason.
    pub fn model(&self) -> Result<&dyn FaceModel, String> {
        self.model
            .as_ref()
            .map(|m| m.as_ref())
            .map_err(|e| format!("MRI route: {e}"))
    }
}
