//! The text route: text burned into the pixels (ultrasound overlays,
//! screen captures, labels on radiographs, scanned documents) is found by a
//! text detector and filled, in every frame, before anything leaves.
//!
//! Which objects: see [`select`]. What can happen to them: text found ->
//! its boxes (grown by `[text] margin`) filled with the darkest value in
//! every frame, written back native, originals sealed in the key store,
//! BurnedInAnnotation NO and code 113101; no text found -> pixels as they
//! came, BurnedInAnnotation NO and 113101 (they were searched); anything
//! that stops the route (no detector, undecodable or unsupported pixels,
//! too many frames, a detector error) -> quarantine with the reason. Unsure
//! never means pass-through.

pub mod bright;
pub mod frames;
pub mod motion;
pub mod policy;
pub mod rects;
pub mod sealed;
pub mod search;
pub mod select;
pub mod small;
pub mod strokes;
pub mod transient;
pub mod us_regions;
pub mod zoom;

use super::{Cleaned, Outcome, PixelRoute, RouteStatus};
use crate::config::text_keep::KeepList;
use crate::config::{Config, TextConfig};
use crate::deid::markers::CLEAN_PIXEL_DATA;
use crate::deid::phi::{Identifiers, Kind, Matcher};
use crate::deid::Profile;
use crate::models::text::{TextDetector, TextReader};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

/// The registry's loader: `[text]` of `cfg`.
pub fn load(cfg: &Config) -> anyhow::Result<Box<dyn PixelRoute>> {
    let profile = Profile::from_config(cfg).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Box::new(TextRoute::load(&cfg.text, profile)))
}

/// The loaded route, or why it cannot run.
pub struct TextRoute {
    cfg: TextConfig,
    detector: Result<TextDetector, String>,
    /// `None`: `[text] read = false`, or the recogniser's weights are
    /// missing (then every line is filled and none is compared).
    reader: Option<TextReader>,
    keep: KeepList,
    /// Which identifiers an object's lines are compared with (the same
    /// profile the output guard uses).
    profile: Profile,
}

/// What the route did to one object.
pub struct Redacted {
    /// Boxes filled (joined where that adds little; they may overlap), per
    /// frame.
    pub boxes: Vec<frames::Rect>,
    pub frames: usize,
    /// Share of the image the boxes cover, in percent.
    pub share: f64,
    /// The original bytes under the boxes; `None` when nothing was filled.
    pub sealed: Option<Vec<u8>>,
    /// Distinct lines read, and left in place under `[text] keep`.
    pub read: usize,
    pub kept: usize,
    /// A cine's boxes over moving content read as nothing, left unfilled.
    pub unread_moving: usize,
    /// The kind of identifier each leaking line held.
    pub leaks: Vec<Kind>,
}

impl TextRoute {
    /// Loads the detector on the CPU. Missing weights are not an error
    /// here: the route then quarantines every object it claims.
    pub fn load(cfg: &TextConfig, profile: Profile) -> TextRoute {
        let detector = if !cfg.enabled {
            Err("the text route is disabled ([text] enabled = false)".to_string())
        } else {
            TextDetector::load(&cfg.weights, &candle_core::Device::Cpu)
                .map(|mut d| {
                    d.config.post.thresh = cfg.pixel_threshold;
                    d.config.post.box_thresh = cfg.box_threshold;
                    d.config.max_side = cfg.max_side;
                    d
                })
                .map_err(|e| {
                    format!(
                        "text route: no usable text detector at {} ({e:#}); run \
                     scripts/fetch-weights.sh",
                        cfg.weights.display()
                    )
                })
        };
        match &detector {
            Ok(_) => {
                tracing::info!(weights = %cfg.weights.display(), "text route: detector loaded")
            }
            Err(e) if cfg.enabled => {
                tracing::error!(reason = %e, "text route unavailable: the images it claims go to quarantine")
            }
            Err(_) => tracing::warn!(
                "text route disabled ([text] enabled = false): images pass with their burned-in \
                 text; BurnedInAnnotation=YES ones are quarantined"
            ),
        }
        let reader = if cfg.enabled && cfg.read {
            match TextReader::load(&cfg.weights) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(
                        "text route: no text recogniser at {} ({e:#}); every line found is \
                         filled, none is read or compared with the patient's identifiers; run \
                         scripts/fetch-weights.sh",
                        cfg.weights.display()
                    );
                    None
                }
            }
        } else {
            None
        };
        let keep = KeepList::new(&cfg.keep).unwrap_or_default();
        TextRoute {
            cfg: cfg.clone(),
            detector,
            reader,
            keep,
            profile,
        }
    }

    /// Finds and fills the text of `obj` in place. `Err` is a quarantine
    /// reason.
    pub fn redact(&self, obj: &mut DefaultDicomObject) -> Result<Redacted, String> {
        let det = self.detector.as_ref().map_err(|e| e.clone())?;
        let mut f = frames::decode(obj, self.cfg.max_frames)?;
        let found = search::find(&f, det, &self.cfg)
            .map_err(|e| format!("text route: the text detector failed: {e:#}"))?;
        let matcher = self
            .reader
            .as_ref()
            .map(|_| Matcher::new(Identifiers::collect(obj, &self.profile)));
        let moving = |r: frames::Rect| motion::moving(&f, r, found.grey_range);
        let policy = policy::Policy {
            reader: self.reader.as_ref(),
            keep: &self.keep,
            min_confidence: self.cfg.keep_min_confidence,
            matcher: matcher.as_ref(),
            moving: self.cfg.skip_unread_moving.then_some(&moving),
        };
        let decision = policy
            .decide(&found, f.width)
            .map_err(|e| format!("text route: the text recogniser failed: {e:#}"))?;
        let mut boxes = rects::join_fills(decision.fill);
        if self.cfg.blank_outside_us_regions {
            if let Some(inside) = us_regions::regions(obj) {
                boxes.extend(us_regions::outside(&inside, f.width, f.height));
                boxes = rects::join_fills(boxes);
            }
        }
        let frames = f.frames;
        let area = rects::covered(&boxes, f.width, f.height);
        let share = area as f64 / (f.width * f.height) as f64 * 100.0;
        let (read, kept, leaks) = (decision.read, decision.kept, decision.leaks);
        let unread_moving = decision.unread_moving;
        if boxes.is_empty() {
            return Ok(Redacted {
                boxes,
                frames,
                share,
                sealed: None,
                read,
                kept,
                unread_moving,
                leaks,
            });
        }
        let sealed = sealed::encode(&f, &boxes);
        let dark = f.dark_pixel();
        for i in 0..frames {
            for b in &boxes {
                f.fill(i, *b, &dark);
            }
        }
        frames::write_back(obj, f);
        Ok(Redacted {
            boxes,
            frames,
            share,
            sealed: Some(sealed),
            read,
            kept,
            unread_moving,
            leaks,
        })
    }
}

/// "; identifiers burned in: the patient's name, …" (kinds, never values).
fn leak_note(leaks: &[Kind]) -> String {
    if leaks.is_empty() {
        return String::new();
    }
    let mut kinds: Vec<&str> = leaks.iter().map(|k| k.describe()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    format!("; identifiers burned in: {}", kinds.join(", "))
}

impl PixelRoute for TextRoute {
    fn name(&self) -> &'static str {
        "text"
    }

    fn claims(&self, obj: &DefaultDicomObject) -> bool {
        select::claims(obj, &self.cfg)
    }

    fn follows(&self, route: &str, obj: &DefaultDicomObject) -> bool {
        select::follows(route, obj, &self.cfg)
    }

    fn process(&self, obj: &mut DefaultDicomObject) -> Outcome {
        if !self.cfg.enabled {
            if select::says_burned_in(obj) {
                return Outcome::Quarantine(
                    "BurnedInAnnotation=YES and the text route is disabled ([text] enabled = \
                     false)"
                        .into(),
                );
            }
            return Outcome::Untouched("text route disabled: pixels not searched for text".into());
        }
        let r = match self.redact(obj) {
            Ok(r) => r,
            Err(reason) => return Outcome::Quarantine(reason),
        };
        if !r.leaks.is_empty() {
            let m = &crate::metrics::METRICS.text_phi_lines;
            m.fetch_add(r.leaks.len() as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                lines = r.leaks.len(),
                "text route: the source burned the patient's identifiers into the pixels{} \
                 (filled)",
                leak_note(&r.leaks)
            );
        }
        // The output tells the truth: its pixels were searched and cleaned.
        obj.put(DataElement::new(
            tags::BURNED_IN_ANNOTATION,
            VR::CS,
            PrimitiveValue::from("NO"),
        ));
        Outcome::Cleaned(Cleaned {
            codes: vec![CLEAN_PIXEL_DATA],
            sealed: r.sealed,
            note: format!(
                "text route: {} text boxes filled in {} frames ({:.1} % of the image); {} lines \
                 read, {} kept, {} unread boxes over moving content left{}",
                r.boxes.len(),
                r.frames,
                r.share,
                r.read,
                r.kept,
                r.unread_moving,
                leak_note(&r.leaks)
            ),
            method_note: None,
            leaks: r.leaks.iter().map(|k| k.describe()).collect(),
        })
    }

    fn status(&self) -> RouteStatus {
        RouteStatus {
            route: "text",
            applies_to: "US/SC/OT/XA/RF/ES/DOC, non-chest CR/DX/MG, BurnedInAnnotation=YES",
            model: if self.reader.is_some() {
                "PP-OCRv4 text detector (DBNet) + recogniser (SVTR, CTC) + fill"
            } else {
                "PP-OCRv4 text detector (DBNet) + fill (no recogniser: nothing read)"
            },
            weights: self.cfg.weights.display().to_string(),
            weights_present: self
                .cfg
                .weights
                .join(crate::models::text::DET_WEIGHTS)
                .is_file(),
            enabled: self.cfg.enabled,
            loaded: self.detector.is_ok(),
            meanwhile: if !self.cfg.enabled {
                "disabled ([text] enabled = false): pixels not searched; BurnedInAnnotation=YES \
                 quarantined"
                    .into()
            } else if self.detector.is_ok() {
                let after = if self.cfg.after.is_empty() {
                    String::new()
                } else {
                    format!(", also after {}", self.cfg.after.join("/"))
                };
                format!(
                    "text found and filled in every frame (113101){after}; undecodable images \
                     quarantined"
                )
            } else {
                "images quarantined (no text detector)".into()
            },
        }
    }
}
