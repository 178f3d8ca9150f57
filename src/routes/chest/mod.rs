//! The chest route: chest radiographs (CR/DX) are warped by a small learned
//! deformation field (PriCheXy-Net) that breaks re-identification of the
//! patient from the image while keeping it diagnostic.
//!
//! What can happen to a chest radiograph: the model ran -> pixels deformed at
//! native resolution and bit depth, written uncompressed, code 113102 added;
//! `[chest] enabled = false` -> pixels untouched (an explicit, logged and
//! displayed opt-out); no Pixel Data at all -> nothing to do; anything else that stops the route (no weights,
//! undecodable or unsupported pixels, a model error) -> `Err(reason)`, which
//! sends the object to quarantine. Never through untouched by accident.

pub mod deformer;
pub mod geometry;
pub mod mu;
pub mod pixels;
pub mod select;

pub use deformer::{load_deformer, Deformer};

use super::lazy::Lazy;
use super::{Cleaned, Outcome as RouteOutcome, PixelRoute, RouteStatus};
use crate::config::{ChestConfig, Config, MissingWeights, ModelLoading};
use crate::deid::markers::CLEAN_RECOGNIZABLE_VISUAL_FEATURES;
use anyhow::anyhow;
use dicom_object::DefaultDicomObject;
use std::path::PathBuf;

/// What the route did to one chest radiograph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The model ran: pixels replaced by their deformed version.
    Deformed,
    /// The route is switched off by configuration: pixels untouched.
    Disabled,
    /// No Pixel Data (e.g. a header-only object): nothing to deform.
    NoPixelData,
}

enum State {
    /// The model, loaded at start or on the first radiograph.
    Ready(Lazy<Box<dyn Deformer>>),
    Disabled,
    /// Why the route cannot run (also the quarantine reason).
    Unavailable(String),
}

/// The loaded route, or why it cannot run.
pub struct ChestRoute {
    state: State,
    /// The configured weights folder (for the status page).
    weights: PathBuf,
    /// What "pixels untouched" means under this configuration's filter.
    untouched: String,
}

/// The registry's loader: `[chest]` of `cfg`.
pub fn load(cfg: &Config) -> anyhow::Result<Box<dyn PixelRoute>> {
    let mut route = ChestRoute::load_when(&cfg.chest, cfg.model_loading)?;
    if cfg.filter.quarantine_burned_in_annotation {
        route.untouched = "pixels untouched; BurnedInAnnotation=YES quarantined".into();
    }
    Ok(Box::new(route))
}

impl ChestRoute {
    /// Loads the model from `[chest] weights`. Missing or unusable weights
    /// are an error only with `missing_weights = "stop"`; otherwise the route
    /// quarantines every chest radiograph with the reason.
    pub fn load(cfg: &ChestConfig) -> anyhow::Result<ChestRoute> {
        ChestRoute::load_when(cfg, ModelLoading::AtStart)
    }

    /// As [`load`](Self::load); with `OnFirstUse` only the presence of the
    /// weights is checked now and the model loads on the first radiograph
    /// (a failure then quarantines it with the same reason).
    pub fn load_when(cfg: &ChestConfig, when: ModelLoading) -> anyhow::Result<ChestRoute> {
        if !cfg.enabled {
            tracing::warn!(
                "chest route disabled ([chest] enabled = false): chest radiographs pass with \
                 pixels untouched"
            );
            return Ok(ChestRoute::new(State::Disabled, &cfg.weights));
        }
        // A μ with no model trained at it is a configuration error.
        let dir = &match cfg.mu {
            Some(m) => mu::model_for(&cfg.weights, m)?,
            None => cfg.weights.clone(),
        };
        if !dir.join("generator.safetensors").is_file() {
            let reason = format!(
                "chest route: no trained weights at {} (generator.safetensors missing); chest \
                 radiographs are quarantined until they are installed",
                dir.display()
            );
            if cfg.missing_weights == MissingWeights::Stop {
                return Err(refuse(&reason));
            }
            tracing::warn!(%reason, "chest route unavailable: chest radiographs go to quarantine");
            return Ok(ChestRoute::new(State::Unavailable(reason), dir));
        }
        let path = dir.clone();
        let model = Lazy::new(when, move || {
            let t = std::time::Instant::now();
            load_deformer(&path)
                .inspect(|model| {
                    tracing::info!(weights = %path.display(), size = model.input_size(), mu = model.mu(),
                        ms = t.elapsed().as_millis() as u64, "chest route: deformation model loaded");
                })
                .map_err(|e| {
                    let reason = format!(
                        "chest route: cannot load the model from {}: {e:#}",
                        path.display()
                    );
                    tracing::warn!(%reason, "chest route unavailable: chest radiographs go to quarantine");
                    reason
                })
        });
        match model.tried() {
            Some(false) if cfg.missing_weights == MissingWeights::Stop => {
                return Err(refuse(model.get().err().map_or("", |r| r)));
            }
            None => {
                tracing::info!(weights = %dir.display(), "chest route: the model loads on the first chest radiograph")
            }
            _ => {}
        }
        let state = State::Ready(model);
        Ok(ChestRoute::new(state, dir))
    }

    fn new(state: State, weights: &std::path::Path) -> ChestRoute {
        ChestRoute {
            state,
            weights: weights.to_path_buf(),
            untouched: "pixels untouched".into(),
        }
    }

    /// A route around a given model (tests, benchmarks).
    pub fn with_deformer(model: Box<dyn Deformer>) -> ChestRoute {
        ChestRoute::new(
            State::Ready(Lazy::ready(Ok(model))),
            std::path::Path::new(""),
        )
    }

    /// Whether `obj` is a chest radiograph (see [`select`] for the rule).
    pub fn applies(obj: &DefaultDicomObject) -> bool {
        select::is_chest_radiograph(obj)
    }

    /// Whether the model is loaded.
    pub fn loaded(&self) -> bool {
        // Not loaded yet (on first use) counts as ready: the weights are there.
        matches!(&self.state, State::Ready(m) if m.tried() != Some(false))
    }

    /// False only for the explicit `[chest] enabled = false`.
    pub fn enabled(&self) -> bool {
        !matches!(self.state, State::Disabled)
    }

    /// Deforms `obj` in place. `Err` is a quarantine reason.
    pub fn apply(&self, obj: &mut DefaultDicomObject) -> Result<Outcome, String> {
        if obj.get(dicom_dictionary_std::tags::PIXEL_DATA).is_none() {
            return Ok(Outcome::NoPixelData);
        }
        match &self.state {
            State::Ready(model) => match model.get() {
                Ok(model) => deform(obj, model.as_ref()).map(|_| Outcome::Deformed),
                Err(reason) => Err(reason.clone()),
            },
            State::Disabled => Ok(Outcome::Disabled),
            State::Unavailable(reason) => Err(reason.clone()),
        }
    }
}

impl PixelRoute for ChestRoute {
    fn name(&self) -> &'static str {
        "chest"
    }

    fn claims(&self, obj: &DefaultDicomObject) -> bool {
        ChestRoute::applies(obj)
    }

    fn process(&self, obj: &mut DefaultDicomObject) -> RouteOutcome {
        match self.apply(obj) {
            Ok(Outcome::Deformed) => RouteOutcome::Cleaned(Cleaned {
                codes: vec![CLEAN_RECOGNIZABLE_VISUAL_FEATURES],
                sealed: None,
                note: "chest route: deformation applied".into(),
                method_note: None,
                leaks: Vec::new(),
            }),
            Ok(Outcome::Disabled) => RouteOutcome::Untouched(
                "chest route disabled by configuration: pixels passed unchanged".into(),
            ),
            Ok(Outcome::NoPixelData) => {
                RouteOutcome::Untouched("chest route: no Pixel Data".into())
            }
            Err(reason) => RouteOutcome::Quarantine(reason),
        }
    }

    fn status(&self) -> RouteStatus {
        RouteStatus {
            route: "chest",
            applies_to: "CR/DX chest",
            model: "PriCheXy-Net deformation",
            weights: self.weights.display().to_string(),
            weights_present: self.weights.join("generator.safetensors").is_file(),
            enabled: self.enabled(),
            loaded: self.loaded(),
            meanwhile: if !self.enabled() {
                format!("disabled ([chest] enabled = false): {}", self.untouched)
            } else if self.loaded() {
                "deformed (113102); undecodable radiographs quarantined".into()
            } else {
                "chest radiographs quarantined (no usable weights)".into()
            },
        }
    }
}

/// The start-up error of `[chest] missing_weights = "stop"`.
fn refuse(reason: &str) -> anyhow::Error {
    anyhow!("{reason} ([chest] missing_weights = \"stop\" refuses to start without them)")
}

/// Decode, normalize and shrink for the model, get the field, bring it to
/// native size and warp the stored values; written back native.
pub fn deform(obj: &mut DefaultDicomObject, model: &dyn Deformer) -> Result<(), String> {
    let s = pixels::decode(obj)?;
    let (w, h, n) = (s.width, s.height, model.input_size());
    let mu = model.mu();
    if n < 2 || !(mu.is_finite() && mu >= 0.0) {
        return Err(format!(
            "chest route: the model reports input size {n} and bound {mu}; expected at least 2 \
             and a finite bound"
        ));
    }
    let small = geometry::resample_square(&s.normalized(), w, h, n);
    let [dx, dy] = model
        .displacement(&small)
        .map_err(|e| format!("chest route: the model failed: {e:#}"))?;
    let bounded = |d: Vec<f32>| -> Result<Vec<f32>, String> {
        if d.len() != n * n || d.iter().any(|v| !v.is_finite()) {
            return Err(format!(
                "chest route: the model returned {} values (expected {}) or non-finite ones",
                d.len(),
                n * n
            ));
        }
        // The model's tanh already bounds it; the clamp makes the bound a
        // property of the route, whatever model is plugged in.
        Ok(d.into_iter().map(|v| v.clamp(-mu, mu)).collect())
    };
    let (dx, dy) = (bounded(dx)?, bounded(dy)?);
    let (lo, hi) = s.range();
    let out: Vec<f32> = geometry::warp_upsampled(&s.values, &dx, &dy, n, w, h)
        .into_iter()
        .map(|v| v.round().clamp(lo, hi))
        .collect();
    pixels::write_native(obj, &s, &out);
    Ok(())
}
