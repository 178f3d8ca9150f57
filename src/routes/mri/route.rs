//! The loaded head MR route: its settings and its model, or why the model
//! cannot run (then every head series goes to quarantine with that reason).
//! Single instances are never cleaned alone: the route claims them so that
//! none passes with its face, and cleans them through its series hook.

use super::model::{load_face_model, FaceModel};
use super::select::is_head_mr;
use crate::config::{Config, MriConfig, MriModel};
use crate::routes::{Cleaned, Outcome, PixelRoute, RouteStatus, SeriesHook};
use dicom_object::DefaultDicomObject;
use std::time::Duration;

/// The registry's loader: `[mri]` of `cfg`.
pub fn load(cfg: &Config) -> anyhow::Result<Box<dyn PixelRoute>> {
    Ok(Box::new(MriRoute::load(&cfg.mri)))
}

pub struct MriRoute {
    pub cfg: MriConfig,
    model: Result<Box<dyn FaceModel>, String>,
}

impl MriRoute {
    /// Load the configured model. A missing model is not an error here.
    pub fn load(cfg: &MriConfig) -> MriRoute {
        let model = if !cfg.enabled {
            Err("the MRI route is disabled ([mri] enabled = false)".to_string())
        } else if cfg.model == MriModel::Box {
            Ok(Box::new(super::box_model::BoxModel) as Box<dyn FaceModel>)
        } else {
            load_face_model(&cfg.weights).map_err(|e| format!("{e:#}"))
        };
        match &model {
            Ok(_) => {
                tracing::info!(
                    model = cfg.model.name(),
                    mode = cfg.mode.name(),
                    "MRI route: face model loaded"
                )
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

impl PixelRoute for MriRoute {
    fn name(&self) -> &'static str {
        "mri"
    }

    fn claims(&self, obj: &DefaultDicomObject) -> bool {
        is_head_mr(obj, obj.meta().media_storage_sop_class_uid())
    }

    /// The safety net: a head MR instance reaching the per-instance stage
    /// (not held with its series) is never passed alone with its face.
    fn process(&self, _obj: &mut DefaultDicomObject) -> Outcome {
        Outcome::Quarantine("head MR: only processed as a whole series by the MRI route".into())
    }

    fn status(&self) -> RouteStatus {
        RouteStatus {
            route: "mri",
            applies_to: "head MR series",
            model: "face remodeling",
            weights: self.cfg.weights.display().to_string(),
            weights_present: self.cfg.weights.join("template_2mm.nii.gz").is_file(),
            enabled: self.cfg.enabled,
            loaded: self.loaded(),
            meanwhile: match self.model() {
                Ok(_) => format!(
                    "head series assembled, face {} (113102); unprocessable series quarantined",
                    self.cfg.mode.name()
                ),
                Err(reason) => format!("head MR series quarantined: {reason}"),
            },
        }
    }

    fn series(&self) -> Option<&dyn SeriesHook> {
        Some(self)
    }
}

impl SeriesHook for MriRoute {
    fn holds(&self, obj: &DefaultDicomObject) -> bool {
        self.claims(obj)
    }

    fn quiet(&self) -> Duration {
        Duration::from_secs(self.cfg.quiet_secs)
    }

    fn process_series(
        &self,
        objs: Vec<DefaultDicomObject>,
    ) -> Result<(Vec<DefaultDicomObject>, Cleaned), String> {
        super::series::remodel(&self.cfg, self.model(), objs)
    }
}
