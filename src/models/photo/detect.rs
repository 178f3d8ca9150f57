//! The three-stage MTCNN cascade: P-Net proposes boxes over an image
//! pyramid, R-Net rejects most of them on 24×24 crops, O-Net scores the rest on
//! 48×48 crops and places the five landmarks.

use anyhow::Result;
use rayon::prelude::*;

use super::boxes::{crops, proposals, regress, regress_proposal, square, BBox, Candidate};
use super::image::{area_resize_normalized, RgbImage, Window};
use super::mtcnn::Mtcnn;
use super::nms::{nms, Overlap};
use super::pyramid::{level_size, scales};
use crate::models::ops::nhwc::Nhwc;

/// Detector settings; the defaults are those the weights were published with.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectConfig {
    /// Smallest face searched for, in pixels of the input image.
    pub min_face_size: f32,
    /// Ratio between successive pyramid levels.
    pub factor: f64,
    /// Score thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
    /// Longest side the pyramid's first level may have. Larger photos raise
    /// the minimum face size proportionally instead of running P-Net over
    /// tens of megapixels; `None` keeps `min_face_size` whatever the size.
    pub max_pyramid_side: Option<u32>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            min_face_size: 20.0,
            factor: 0.709,
            thresholds: [0.6, 0.7, 0.7],
            max_pyramid_side: Some(1024),
        }
    }
}

/// One detected face in input-image pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    /// `[x1, y1, x2, y2]`; may extend past the image border.
    pub bbox: [f32; 4],
    /// O-Net's face probability.
    pub score: f32,
    /// Left eye, right eye, nose tip, left and right mouth corner, as they
    /// appear in the image (left = smaller x).
    pub landmarks: [(f32, f32); 5],
}

impl Mtcnn {
    /// Detect faces with the default settings.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Face>> {
        self.detect_with(img, &DetectConfig::default())
    }

    /// Detect faces, highest score first.
    pub fn detect_with(&self, img: &RgbImage, cfg: &DetectConfig) -> Result<Vec<Face>> {
        let boxes = self.stage_proposals(img, cfg)?;
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let boxes = self.stage_refine(img, &boxes, cfg.thresholds[1])?;
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        self.stage_output(img, &boxes, cfg.thresholds[2])
    }

    /// P-Net over the pyramid; NMS per level, then across levels.
    fn stage_proposals(&self, img: &RgbImage, cfg: &DetectConfig) -> Result<Vec<BBox>> {
        let mut min_face = cfg.min_face_size;
        if let Some(max_side) = cfg.max_pyramid_side {
            let longest = img.width.max(img.height) as f32;
            let first = longest * 12.0 / min_face;
            if first > max_side as f32 {
                min_face = longest * 12.0 / max_side as f32;
            }
        }
        let full = Window {
            x0: 0,
            y0: 0,
            x1: img.width as usize,
            y1: img.height as usize,
        };
        let level = |scale: f64| -> Result<Vec<Candidate>> {
            let (w, h) = level_size(img.width, img.height, scale);
            let mut data = vec![0f32; 3 * w * h];
            area_resize_normalized(img, full, w, h, &mut data);
            let out = self.run_pnet(Nhwc::new(1, h, w, 3, data))?;
            let level = proposals(&out.reg, &out.prob, out.w, out.h, scale, cfg.thresholds[0]);
            let level_boxes: Vec<BBox> = level.iter().map(|c| c.bbox).collect();
            Ok(nms(&level_boxes, 0.5, Overlap::Union)
                .into_iter()
                .map(|i| level[i])
                .collect())
        };
        let scales = scales(img.width, img.height, min_face, cfg.factor);
        // On the CPU the levels run as parallel tasks: the small ones are
        // too little work to keep two cores busy inside each layer, so they
        // fill the gaps of the large ones. Each level is computed the same
        // way on whichever thread runs it, and the results are joined in
        // level order, so the output does not depend on scheduling.
        let levels: Vec<Vec<Candidate>> = if self.device.is_cpu() {
            scales
                .par_iter()
                .map(|&s| level(s))
                .collect::<Result<_>>()?
        } else {
            scales.iter().map(|&s| level(s)).collect::<Result<_>>()?
        };
        let all: Vec<Candidate> = levels.into_iter().flatten().collect();
        let all_boxes: Vec<BBox> = all.iter().map(|c| c.bbox).collect();
        Ok(nms(&all_boxes, 0.7, Overlap::Union)
            .into_iter()
            .map(|i| square(&regress_proposal(&all[i])))
            .collect())
    }

    /// R-Net on 24×24 crops, all proposals in one batch.
    fn stage_refine(&self, img: &RgbImage, boxes: &[BBox], threshold: f32) -> Result<Vec<BBox>> {
        let (batch, used) = crops(img, boxes, 24);
        if used.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.run_rnet(batch)?;
        let mut passed = Vec::new();
        for (k, &i) in used.iter().enumerate() {
            if out.prob[k] > threshold {
                let mut b = boxes[i];
                b.score = out.prob[k];
                passed.push((b, reg4(&out.reg, k)));
            }
        }
        let only: Vec<BBox> = passed.iter().map(|p| p.0).collect();
        Ok(nms(&only, 0.7, Overlap::Union)
            .into_iter()
            .map(|i| square(&regress(&passed[i].0, passed[i].1)))
            .collect())
    }

    /// O-Net on 48×48 crops: final score, box and landmarks.
    fn stage_output(&self, img: &RgbImage, boxes: &[BBox], threshold: f32) -> Result<Vec<Face>> {
        let (batch, used) = crops(img, boxes, 48);
        if used.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.run_onet(batch)?;
        let (prob, marks) = (&out.prob, &out.landmarks);
        let mut faces = Vec::new();
        let mut final_boxes = Vec::new();
        for (k, &i) in used.iter().enumerate() {
            if prob[k] <= threshold {
                continue;
            }
            let mut b = boxes[i];
            b.score = prob[k];
            // Landmarks are relative to the box O-Net saw, before regression.
            let (w, h) = (b.x2 - b.x1 + 1.0, b.y2 - b.y1 + 1.0);
            let mut landmarks = [(0f32, 0f32); 5];
            for (j, l) in landmarks.iter_mut().enumerate() {
                *l = (
                    w * marks[k * 10 + j] + b.x1 - 1.0,
                    h * marks[k * 10 + 5 + j] + b.y1 - 1.0,
                );
            }
            let b = regress(&b, reg4(&out.reg, k));
            final_boxes.push(b);
            faces.push(Face {
                bbox: [b.x1, b.y1, b.x2, b.y2],
                score: b.score,
                landmarks,
            });
        }
        Ok(nms(&final_boxes, 0.7, Overlap::Min)
            .into_iter()
            .map(|i| faces[i].clone())
            .collect())
    }
}

fn reg4(reg: &[f32], k: usize) -> [f32; 4] {
    [reg[4 * k], reg[4 * k + 1], reg[4 * k + 2], reg[4 * k + 3]]
}
