//! Burned-in text detection for the text route (see `models/text/MODEL.md`).
//!
//! - `det.rs`: the PP-OCRv4 mobile DBNet detector network.
//! - `boxes.rs`: DB post-processing to axis-aligned pixel boxes.
//! - `rec.rs`, `svtr.rs`, `ctc.rs`, `reader.rs`: the PP-OCRv4 recogniser
//!   (SVTR-LCNet, CTC) and [`TextReader`], which reads a detected line.
//! - `lifted.rs`: the detector's stride-4 end computed without its
//!   upsampled maps (a third fewer multiplications).
//! - `lcnet.rs`, `se.rs`, `weights.rs`, `fmap.rs`: what both networks share
//!   (the PPLCNetV3 backbone, squeeze-excite, the converted weights, the
//!   channel-major feature map).
//! - This file: [`TextDetector`], which resizes and normalises an RGB image
//!   as PP-OCR does, runs the network and returns [`TextBox`]es in input
//!   pixel coordinates.
//!
//! Weights: `models/text/ppocr_{det,rec}.safetensors` and
//! `ppocr_rec_keys.txt`, written by
//! `scripts/fetch-text-weights.sh` from the `rapidocr-onnxruntime` 1.4.4 wheel.

pub mod boxes;
pub mod ctc;
pub mod det;
pub mod fmap;
mod lcnet;
mod lifted;
pub mod reader;
pub mod rec;
mod se;
mod svtr;
mod weights;

use std::path::Path;

use anyhow::{ensure, Result};
use candle_core::Device;

pub use boxes::{DbParams, TextBox};
pub use ctc::Reading;
pub use det::DbNet;
pub use fmap::Fmap;
pub use reader::TextReader;

/// File name of the converted detector weights inside the model folder.
pub const DET_WEIGHTS: &str = "ppocr_det.safetensors";

/// How an image is brought to the network and how boxes are extracted.
#[derive(Clone, Copy, Debug)]
pub struct DetectorConfig {
    /// Resize factor applied before the network (values > 1 upscale small
    /// text; PP-OCR's detector sees text best at roughly 15–40 px height).
    pub scale: f32,
    /// Upper bound on the longer side after scaling, in pixels.
    pub max_side: usize,
    pub post: DbParams,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            scale: 1.0,
            max_side: 960,
            post: DbParams::default(),
        }
    }
}

/// PP-OCRv4 text detector: RGB pixels in, text boxes out.
pub struct TextDetector {
    net: DbNet,
    pub config: DetectorConfig,
}

impl TextDetector {
    /// Loads `dir/ppocr_det.safetensors` with the default configuration.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, DetectorConfig::default())
    }

    pub fn load_with(dir: &Path, device: &Device, config: DetectorConfig) -> Result<Self> {
        Ok(Self {
            net: DbNet::load(&dir.join(DET_WEIGHTS), device)?,
            config,
        })
    }

    /// Text boxes in an interleaved 8-bit RGB image of `width × height`.
    pub fn detect(&self, rgb: &[u8], width: usize, height: usize) -> Result<Vec<TextBox>> {
        self.detect_within(rgb, width, height, self.config.max_side)
    }

    /// [`Self::detect`] with the network input's longer side capped at
    /// `max_side` instead of the configured one (a cheaper look at a large
    /// image).
    pub fn detect_within(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        max_side: usize,
    ) -> Result<Vec<TextBox>> {
        let (prob, pw, ph) = self.map_within(rgb, width, height, max_side)?;
        Ok(boxes::boxes_from_prob(
            &prob,
            pw,
            ph,
            &self.config.post,
            width,
            height,
        ))
    }

    /// The network's text probability map (row-major, `pw × ph`, the resized
    /// input's size) for an RGB image.
    pub fn probability_map(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<(Vec<f32>, usize, usize)> {
        self.map_within(rgb, width, height, self.config.max_side)
    }

    fn map_within(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        max_side: usize,
    ) -> Result<(Vec<f32>, usize, usize)> {
        ensure!(width > 0 && height > 0, "empty image");
        ensure!(
            rgb.len() == width * height * 3,
            "RGB buffer is {} bytes, expected {}",
            rgb.len(),
            width * height * 3
        );
        let (pw, ph) = network_size(width, height, self.config.scale, max_side);
        let input = preprocess(rgb, width, height, pw, ph);
        let prob = self.net.forward(&input)?;
        Ok((prob.data, pw, ph))
    }

    pub fn net(&self) -> &DbNet {
        &self.net
    }
}

/// Network input size: sides scaled by `scale`, the longer one capped at
/// `max_side`, each rounded to the nearest multiple of 32 (at least 32), as
/// PP-OCR's `DetResizeForTest` does.
pub fn network_size(width: usize, height: usize, scale: f32, max_side: usize) -> (usize, usize) {
    let long = width.max(height) as f32;
    let mut ratio = scale.max(1e-3);
    if long * ratio > max_side as f32 {
        ratio = max_side as f32 / long;
    }
    let round32 = |v: usize| (((v as f32 / 32.0).round() as usize) * 32).max(32);
    (
        round32((width as f32 * ratio) as usize),
        round32((height as f32 * ratio) as usize),
    )
}

/// Bilinear resize (pixel-centre aligned, as OpenCV's `INTER_LINEAR`) of an
/// RGB image to `ow × oh`, converted to the network's input: BGR channel
/// order (PaddleOCR models are trained on OpenCV-decoded images),
/// `(v / 255 − 0.5) / 0.5`.
pub fn preprocess(rgb: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Fmap {
    let axis = |o: usize, i: usize| -> Vec<(usize, usize, f32)> {
        let s = i as f32 / o as f32;
        (0..o)
            .map(|d| {
                let src = ((d as f32 + 0.5) * s - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(i - 1);
                let i1 = (i0 + 1).min(i - 1);
                (i0, i1, src - i0 as f32)
            })
            .collect()
    };
    let xs = axis(ow, w);
    let ys = axis(oh, h);
    let plane = ow * oh;
    let mut data = vec![0.0f32; 3 * plane];
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let px = |x: usize, y: usize| rgb[(y * w + x) * 3 + c] as f32;
                let top = px(x0, y0) * (1.0 - fx) + px(x1, y0) * fx;
                let bot = px(x0, y1) * (1.0 - fx) + px(x1, y1) * fx;
                let v = top * (1.0 - fy) + bot * fy;
                // RGB → BGR
                data[(2 - c) * plane + oy * ow + ox] = (v / 255.0 - 0.5) / 0.5;
            }
        }
    }
    Fmap::new(3, oh, ow, data)
}
