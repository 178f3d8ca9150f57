//! The photo route: photographs of patients lose their faces before they
//! leave, and the replaced pixels are kept sealed in the key store.
//!
//! Which objects: the VL/ophthalmic photographic SOP classes, XC/OP/ES
//! modalities, and secondary captures (SC/OT) with colour content. What can
//! happen to them: faces found -> replaced (code 113102 added, pixels written
//! back uncompressed RGB); no face -> passed unchanged with a note in the log;
//! anything that stops the route (no weights, undecodable or unsupported
//! pixels, a detector error) -> `Err(reason)`, which sends the object to
//! quarantine. A photograph never passes untouched because something failed.
//!
//! `[photo] mode = "generate"` paints faces with the learned MedSem decoder
//! instead of the synthetic fill; without its trained weights the route
//! refuses (quarantine, with the reason) rather than fall back silently.

pub mod annotation;
pub mod pixels;
pub mod sealed;
pub mod select;

pub use annotation::annotation_graphics;
pub use sealed::{decode_regions, encode_regions, restore_photo};

use super::{Cleaned, Outcome, PixelRoute, RouteStatus};
use crate::config::{Config, PhotoConfig, PhotoMode};
use crate::deid::markers::CLEAN_RECOGNIZABLE_VISUAL_FEATURES;
use crate::models::photo::medsem::{generate_faces, MedSem};
use crate::models::photo::{
    annotation_keep, replace_faces, DetectConfig, Mtcnn, ReplaceConfig, ReplacedRegion,
};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use pixels::{decode_rgb, write_rgb};
use sha2::{Digest, Sha256};

/// What the route did to one photograph.
pub struct Applied {
    pub faces: usize,
    /// Keep boxes taken from the instance's graphic annotations.
    pub annotation_boxes: usize,
    /// Original pixels of the replaced rectangles (empty when no face).
    pub regions: Vec<ReplacedRegion>,
}

/// The registry's loader: `[photo]` of `cfg`.
pub fn load(cfg: &Config) -> anyhow::Result<Box<dyn PixelRoute>> {
    Ok(Box::new(PhotoRoute::load(&cfg.photo)))
}

/// The loaded route, or why it cannot run.
pub struct PhotoRoute {
    model: Result<Mtcnn, String>,
    /// Generate mode's decoder, or why generate mode refuses; `None` in
    /// replace mode.
    generator: Option<Result<MedSem, String>>,
    cfg: PhotoConfig,
}

impl PhotoRoute {
    /// Loads the detector on the CPU. A missing model is not an error here:
    /// the route then quarantines every photograph with the reason.
    pub fn load(cfg: &PhotoConfig) -> PhotoRoute {
        let model = if !cfg.enabled {
            Err("the photo route is disabled ([photo] enabled = false)".to_string())
        } else {
            Mtcnn::load(&cfg.weights, &candle_core::Device::Cpu).map_err(|e| format!("{e:#}"))
        };
        match &model {
            Ok(_) => tracing::info!(weights = %cfg.weights.display(), "photo route: MTCNN loaded"),
            Err(e) => {
                tracing::warn!(reason = %e, "photo route unavailable: photographs go to quarantine")
            }
        }
        let generator = (cfg.enabled && cfg.mode == PhotoMode::Generate).then(|| {
            let dir = &cfg.generator;
            let loaded = MedSem::load(dir, &candle_core::Device::Cpu).map_err(|e| {
                format!(
                    "photo generate mode has no trained weights ({}): {e:#}",
                    dir.display()
                )
            });
            match &loaded {
                Ok(g) => tracing::info!(
                    generator = %dir.display(),
                    size = g.cfg.size,
                    "photo route: generate mode, MedSem decoder loaded"
                ),
                Err(e) => tracing::error!(
                    reason = %e,
                    "photo route: generate mode refuses to run; photographs go to quarantine \
                     (train with `deidgate train photo`, or set [photo] mode = \"replace\")"
                ),
            }
            loaded
        });
        PhotoRoute {
            model,
            generator,
            cfg: cfg.clone(),
        }
    }

    /// Whether the route can de-identify: detector loaded and, in generate
    /// mode, the decoder too.
    pub fn loaded(&self) -> bool {
        self.model.is_ok() && self.generate_refusal().is_none()
    }

    /// Why generate mode refuses to run; `None` in replace mode or when its
    /// weights are loaded.
    pub fn generate_refusal(&self) -> Option<&str> {
        match &self.generator {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether faces are painted by the learned generator.
    pub fn generates(&self) -> bool {
        self.cfg.mode == PhotoMode::Generate
    }

    /// Whether `obj` is a photograph for this route (see [`select`]).
    pub fn applies(obj: &DefaultDicomObject) -> bool {
        select::is_photograph(obj)
    }

    /// Replaces the faces of `obj` in place. `Err` is a quarantine reason.
    pub fn apply(&self, obj: &mut DefaultDicomObject) -> Result<Applied, String> {
        if let Some(reason) = self.generate_refusal() {
            return Err(reason.to_string());
        }
        let model = self
            .model
            .as_ref()
            .map_err(|e| format!("photo route: {e}"))?;
        let mut img = decode_rgb(obj)?;
        // Read from the object as received: the metadata de-identification
        // that runs after this route removes the Graphic Annotation Sequence.
        let annotated = if self.cfg.keep_annotations {
            annotation_keep(
                &annotation_graphics(obj, &self.cfg.keep_annotation_layers),
                img.width,
                img.height,
            )
        } else {
            Vec::new()
        };
        let detect = DetectConfig {
            min_face_size: self.cfg.min_face_size,
            ..DetectConfig::default()
        };
        let faces = model
            .detect_with(&img, &detect)
            .map_err(|e| format!("photo route: face detector failed: {e:#}"))?;
        if faces.is_empty() {
            return Ok(Applied {
                faces: 0,
                annotation_boxes: annotated.len(),
                regions: Vec::new(),
            });
        }
        let annotation_boxes = annotated.len();
        let mut keep = self.cfg.keep.clone();
        keep.extend(annotated);
        let rcfg = ReplaceConfig {
            keep,
            seed: seed_of(obj),
            ..ReplaceConfig::default()
        };
        let rep = match &self.generator {
            Some(Ok(g)) => generate_faces(&mut img, &faces, &rcfg, g)
                .map_err(|e| format!("photo route: the face generator failed: {e:#}"))?,
            _ => replace_faces(&mut img, &faces, &rcfg),
        };
        write_rgb(obj, img);
        Ok(Applied {
            faces: faces.len(),
            annotation_boxes,
            regions: rep.regions,
        })
    }
}

impl PixelRoute for PhotoRoute {
    fn name(&self) -> &'static str {
        "photo"
    }

    fn claims(&self, obj: &DefaultDicomObject) -> bool {
        PhotoRoute::applies(obj)
    }

    fn process(&self, obj: &mut DefaultDicomObject) -> Outcome {
        let applied = match self.apply(obj) {
            Ok(a) => a,
            Err(reason) => return Outcome::Quarantine(reason),
        };
        if applied.faces == 0 {
            return Outcome::Untouched(
                "photo route: no face found; pixels passed unchanged".into(),
            );
        }
        let dim = |t| crate::dicom::text(obj, t).parse().unwrap_or(0);
        let (cols, rows) = (dim(tags::COLUMNS), dim(tags::ROWS));
        Outcome::Cleaned(Cleaned {
            codes: vec![CLEAN_RECOGNIZABLE_VISUAL_FEATURES],
            sealed: Some(encode_regions(cols, rows, &applied.regions)),
            note: format!(
                "photo route: faces replaced (faces={}, annotation_boxes={})",
                applied.faces, applied.annotation_boxes
            ),
            method_note: None,
            leaks: Vec::new(),
        })
    }

    fn status(&self) -> RouteStatus {
        RouteStatus {
            route: "photo",
            applies_to: "XC/OP/VL/SC photos",
            model: if self.generates() {
                "MTCNN + MedSem generator (generate mode)"
            } else {
                "MTCNN + face replacement"
            },
            weights: self.cfg.weights.display().to_string(),
            weights_present: self.cfg.weights.exists(),
            enabled: self.cfg.enabled,
            loaded: self.loaded(),
            meanwhile: if let Some(reason) = self.generate_refusal() {
                format!("photographs quarantined: {reason}")
            } else if self.loaded() {
                "faces replaced; undecodable photographs quarantined".into()
            } else {
                "photographs quarantined".into()
            },
        }
    }
}

/// The replacement noise is seeded from the instance so a replay gives the
/// same bytes (the output is then identical, as elsewhere in the pipeline).
fn seed_of(obj: &DefaultDicomObject) -> u64 {
    let uid = crate::dicom::text(obj, tags::SOP_INSTANCE_UID);
    let d = Sha256::digest(uid.as_bytes());
    u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate_cfg(generator: &std::path::Path) -> PhotoConfig {
        let mut cfg = crate::config::Config::load(None).unwrap().photo;
        cfg.mode = PhotoMode::Generate;
        cfg.generator = generator.to_path_buf();
        cfg
    }

    #[test]
    fn generate_mode_without_weights_refuses_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let route = PhotoRoute::load(&generate_cfg(&dir.path().join("medsem")));
        assert!(!route.loaded());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/derived/vl_photo_face_rgb.dcm");
        let mut obj = dicom_object::open_file(path).unwrap();
        assert!(PhotoRoute::applies(&obj));
        let before = obj
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
            .to_vec();
        let err = route
            .apply(&mut obj)
            .err()
            .expect("generate mode must refuse");
        assert!(
            err.starts_with("photo generate mode has no trained weights ("),
            "{err}"
        );
        assert!(err.contains("medsem"), "{err}");
        assert_eq!(route.generate_refusal(), Some(err.as_str()));
        let after = obj
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
            .to_vec();
        assert_eq!(before, after, "refusing must not touch the pixels");
    }

    #[test]
    fn generate_mode_loads_trained_weights() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::models::photo::medsem::MedSemConfig {
            size: 32,
            id_dim: 8,
            sem_channels: 4,
            width: 32,
            ..Default::default()
        };
        MedSem::new(cfg, &candle_core::Device::Cpu)
            .unwrap()
            .save(dir.path())
            .unwrap();
        let route = PhotoRoute::load(&generate_cfg(dir.path()));
        assert_eq!(route.generate_refusal(), None);
        assert!(route.generates());
    }
}
