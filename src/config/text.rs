//! `[text]` in gateway.toml: the burned-in text route.

use super::paths::ModelKey;
use serde::Deserialize;
use std::path::PathBuf;

/// The text route: text burned into the pixels is found and filled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextConfig {
    /// Off: objects the route would claim pass with pixels untouched, and
    /// the log and the status page say so (with BurnedInAnnotation=YES
    /// they are quarantined by `[filter]` as before).
    pub enabled: bool,
    /// Folder with the detector weights (`scripts/fetch-weights.sh`).
    pub weights: PathBuf,
    /// Modalities whose every image is searched for text, whatever
    /// BurnedInAnnotation says (the flag is often wrong or missing).
    pub modalities: Vec<String>,
    /// SOP classes whose every image is searched, whatever the modality.
    pub sop_classes: Vec<String>,
    /// Pixels added around every detected box before it is filled (at
    /// least; boxes also grow by their height sideways, a glyph or two,
    /// and a quarter of it up and down).
    pub margin: u32,
    /// The longest side the detector works at; larger images are shrunk to
    /// it. Radiographs' labels are 10–20 px high at native size, so the
    /// default keeps a 2k × 2k radiograph at its own resolution.
    pub max_side: usize,
    /// Images whose longer side is at most this many pixels are enlarged
    /// before detection, towards 960 px and at most `enlarge` times (small
    /// text on small images: a 320 × 240 cine's labels are 7 px high).
    pub enlarge_below: usize,
    pub enlarge: usize,
    /// Detector probability above which a pixel counts as text, and the
    /// mean probability a box needs (PP-OCR uses 0.3 and 0.6; lower finds
    /// fainter text and blanks more).
    pub pixel_threshold: f32,
    pub box_threshold: f32,
    /// A detected box taller than this share of the image (and at least
    /// 48 px) that is not at least twice as wide as tall is not a line of
    /// text: the detector sees text in the ribs of radiographs.
    pub max_line_height: f32,
    /// Frames searched in a multi-frame object: evenly spaced, first and
    /// last included; with more frames than this, the static layer of all
    /// frames (pixels equal in every frame) is searched too, and the other
    /// frames are checked for labels the searched ones lack
    /// (`routes::text::transient`).
    pub scan_frames: usize,
    /// Search the parts of every image with bright ground a second time,
    /// inverted with the highlights darkened first, and the parts with
    /// saturated colour by their least channel: white text over bright
    /// ultrasound speckle, colour Doppler or bone is often invisible to the
    /// detector as it is and plain after this (on the evaluation corpus
    /// these looks find 10 of the 17 lines the first pass misses).
    pub second_pass: bool,
    /// The second pass shrinks larger images to this longest side (the
    /// detector's own resize): on a 2k radiograph it costs a quarter of the
    /// first pass instead of as much again, and light labels there are large.
    pub second_pass_max_side: usize,
    /// Look again, closer, at each line on lit ground and at each box too
    /// big to be a line: cropped with room around it, the shading taken out
    /// (each pixel less the mean around it), enlarged (`routes::text::zoom`);
    /// lines on lit ground are then widened over the strokes that continue
    /// them (`routes::text::strokes`). Faint
    /// grey text over a radiograph is often boxed only where it stands out,
    /// or merged with the texture around it. Single images and short cines
    /// only (longer cines have their static layer).
    pub zoom: bool,
    /// Look again, enlarged, at rows of glyphs too small for the detector at
    /// the scale it searched the image (under about 10 px; a 7 px name in
    /// the band of an 800 × 600 ultrasound) where they stand on flat ground
    /// (`routes::text::small`); in single grey images also the three most
    /// distinct rows of faint glyphs on lit ground (a grey label a few levels
    /// darker than a radiograph's lung).
    pub small_text: bool,
    /// More frames than this: quarantine (the cost would stall a worker;
    /// more than 1 GiB of decoded pixels is refused whatever the count).
    pub max_frames: usize,
    /// Ultrasound: also blank everything outside the Sequence of Ultrasound
    /// Regions (text inside the regions is still searched and filled).
    pub blank_outside_us_regions: bool,
    /// Routes after which the text route runs too, on their output pixels:
    /// a deformed chest radiograph keeps its printed label, a photograph
    /// whose face was replaced keeps the name badge. After "mri" it runs
    /// only on instances of `sop_classes` or that say BurnedInAnnotation
    /// YES: acquired MR slices carry annotations as overlays, not pixels.
    pub after: Vec<String>,
    /// Read every line found (the PP-OCRv4 recogniser, same folder) and
    /// compare it with the object's own identifiers: a match is counted
    /// (`deidgate_text_phi_lines_total`, the audit log) as a sign that the
    /// source burns PHI in. Needed by `keep`.
    pub read: bool,
    /// Lines to keep, not fill: regular expressions that must match a whole
    /// line as read (case-insensitive), e.g. `"\\d+(\\.\\d+)? ?cm"` for a depth
    /// scale. Empty (the default): every line is filled; clinical text can
    /// be re-added on the research side. A line that also matches one of
    /// the object's identifiers is filled whatever this says.
    pub keep: Vec<String>,
    /// A line is kept only when the recogniser is at least this sure of
    /// its reading (mean character probability); below, it is filled.
    pub keep_min_confidence: f32,
    /// In a cine, leave a detected box unfilled when none of its pixels
    /// stays fixed over the frames and the recogniser reads at most one
    /// letter or digit in it: a detector false alarm over moving content such as
    /// colour Doppler (burned-in text keeps its place while the image moves).
    /// Needs `read`. Off: every box is filled.
    pub skip_unread_moving: bool,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            enabled: true,
            weights: PathBuf::from("models/text"),
            modalities: [
                "US", "IVUS", "SC", "OT", "XA", "RF", "ES", "DOC", "CR", "DX", "MG",
            ]
            .map(String::from)
            .to_vec(),
            sop_classes: vec![
                // Secondary capture (single and multi-frame), whatever the
                // modality: screen captures, dose reports, scanned documents.
                "1.2.840.10008.5.1.4.1.1.7".into(),
                "1.2.840.10008.5.1.4.1.1.7.1".into(),
                "1.2.840.10008.5.1.4.1.1.7.2".into(),
                "1.2.840.10008.5.1.4.1.1.7.3".into(),
                "1.2.840.10008.5.1.4.1.1.7.4".into(),
            ],
            margin: 3,
            max_side: 2048,
            enlarge_below: 512,
            enlarge: 3,
            pixel_threshold: 0.3,
            box_threshold: 0.5,
            max_line_height: 0.06,
            scan_frames: 8,
            second_pass: true,
            second_pass_max_side: 1024,
            zoom: true,
            small_text: true,
            max_frames: 1000,
            blank_outside_us_regions: false,
            after: ["chest", "photo", "mri"].map(String::from).to_vec(),
            read: true,
            keep: Vec::new(),
            keep_min_confidence: 0.9,
            skip_unread_moving: true,
        }
    }
}

impl TextConfig {
    /// The model paths of `[text]`, for resolution (see [`super::paths`]).
    pub(super) fn model_keys(&mut self) -> Vec<ModelKey<'_>> {
        vec![ModelKey {
            route: "text",
            section: "text",
            name: "weights",
            key: "[text] weights",
            used: self.enabled,
            path: &mut self.weights,
            marker: Some(crate::models::text::DET_WEIGHTS),
        }]
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if self.enabled && self.weights.as_os_str().is_empty() {
            return Err("[text] weights: expected the detector's folder, got an empty path".into());
        }
        if !(256..=8192).contains(&self.max_side) {
            return Err("[text] max_side: expected 256 to 8192 pixels".into());
        }
        if !(1..=4).contains(&self.enlarge) {
            return Err("[text] enlarge: expected 1 to 4".into());
        }
        for (k, v) in [
            ("pixel_threshold", self.pixel_threshold),
            ("box_threshold", self.box_threshold),
            ("max_line_height", self.max_line_height),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(format!(
                    "[text] {k}: expected a probability between 0 and 1, got {v}"
                ));
            }
        }
        if self.scan_frames < 2 {
            return Err("[text] scan_frames: expected at least 2 (first and last frame)".into());
        }
        if let Some(r) = self
            .after
            .iter()
            .find(|r| !["chest", "photo", "mri"].contains(&r.as_str()))
        {
            return Err(format!(
                "[text] after: expected names among \"chest\", \"photo\", \"mri\", got {r:?}"
            ));
        }
        if self.max_frames == 0 {
            return Err("[text] max_frames: expected at least 1".into());
        }
        if !(self.keep_min_confidence > 0.0 && self.keep_min_confidence <= 1.0) {
            return Err("[text] keep_min_confidence: expected more than 0, at most 1".into());
        }
        if !self.keep.is_empty() && !self.read {
            return Err(
                "[text] keep needs read = true: a line is kept only once it is read".into(),
            );
        }
        super::text_keep::KeepList::new(&self.keep).map_err(|e| format!("[text] keep: {e}"))?;
        Ok(())
    }
}
