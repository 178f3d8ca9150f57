//! Box arithmetic between the stages: turning P-Net's output map into
//! boxes, applying the regressions, squaring boxes, and cutting the crops the
//! next network looks at.

use super::image::{area_resize_normalized, RgbImage, Window};
use crate::models::ops::nhwc::Nhwc;

/// A box in image pixels with its face score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub score: f32,
}

/// A box plus the network's regression offsets, in units of box size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub bbox: BBox,
    pub reg: [f32; 4],
}

/// P-Net looks at 12×12 windows with an effective stride of 2.
const STRIDE: f32 = 2.0;
const CELL: f32 = 12.0;

/// Boxes for every cell of one pyramid level whose face probability reaches
/// `threshold`. `reg` holds P-Net's 4 regression offsets per cell, `prob` the
/// cells' probabilities (both row by row), `scale` the level's scale (boxes
/// come back in image pixels).
pub fn proposals(
    reg: &[f32],
    prob: &[f32],
    w: usize,
    h: usize,
    scale: f64,
    threshold: f32,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let p = prob[i];
            if p < threshold {
                continue;
            }
            let (fx, fy) = (x as f32, y as f32);
            let s = scale as f32;
            out.push(Candidate {
                bbox: BBox {
                    x1: ((STRIDE * fx + 1.0) / s).floor(),
                    y1: ((STRIDE * fy + 1.0) / s).floor(),
                    x2: ((STRIDE * fx + CELL) / s).floor(),
                    y2: ((STRIDE * fy + CELL) / s).floor(),
                    score: p,
                },
                reg: [reg[4 * i], reg[4 * i + 1], reg[4 * i + 2], reg[4 * i + 3]],
            });
        }
    }
    out
}

/// P-Net's regression: offsets scale with the box's continuous width/height.
pub fn regress_proposal(c: &Candidate) -> BBox {
    let b = c.bbox;
    let (w, h) = (b.x2 - b.x1, b.y2 - b.y1);
    BBox {
        x1: b.x1 + c.reg[0] * w,
        y1: b.y1 + c.reg[1] * h,
        x2: b.x2 + c.reg[2] * w,
        y2: b.y2 + c.reg[3] * h,
        score: b.score,
    }
}

/// R-Net/O-Net regression: offsets scale with the inclusive pixel size.
pub fn regress(b: &BBox, reg: [f32; 4]) -> BBox {
    let (w, h) = (b.x2 - b.x1 + 1.0, b.y2 - b.y1 + 1.0);
    BBox {
        x1: b.x1 + reg[0] * w,
        y1: b.y1 + reg[1] * h,
        x2: b.x2 + reg[2] * w,
        y2: b.y2 + reg[3] * h,
        score: b.score,
    }
}

/// Grow the shorter side so the box is square about the same centre: the
/// networks were trained on square crops.
pub fn square(b: &BBox) -> BBox {
    let (w, h) = (b.x2 - b.x1, b.y2 - b.y1);
    let l = w.max(h);
    let x1 = b.x1 + w * 0.5 - l * 0.5;
    let y1 = b.y1 + h * 0.5 - l * 0.5;
    BBox {
        x1,
        y1,
        x2: x1 + l,
        y2: y1 + l,
        score: b.score,
    }
}

/// The part of the image a box covers, as facenet-pytorch cuts it: the box
/// truncated to integers (1-based, inclusive) and clipped to the image, with
/// no zero padding. `None` when nothing of the box lies in the image.
pub fn crop_window(b: &BBox, width: u32, height: u32) -> Option<Window> {
    let x = (b.x1.trunc() as i64).max(1);
    let y = (b.y1.trunc() as i64).max(1);
    let ex = (b.x2.trunc() as i64).min(width as i64);
    let ey = (b.y2.trunc() as i64).min(height as i64);
    if ex > x - 1 && ey > y - 1 {
        Some(Window {
            x0: (x - 1) as usize,
            y0: (y - 1) as usize,
            x1: ex as usize,
            y1: ey as usize,
        })
    } else {
        None
    }
}

/// Cut and area-resample the crops of `boxes` to `size`×`size`, normalised,
/// one after the other (N×size×size×3). Returns the batch and the indices of
/// the boxes that had a crop.
pub fn crops(img: &RgbImage, boxes: &[BBox], size: usize) -> (Nhwc, Vec<usize>) {
    let per = 3 * size * size;
    let mut data = Vec::with_capacity(boxes.len() * per);
    let mut used = Vec::with_capacity(boxes.len());
    for (i, b) in boxes.iter().enumerate() {
        if let Some(win) = crop_window(b, img.width, img.height) {
            let start = data.len();
            data.resize(start + per, 0.0);
            area_resize_normalized(img, win, size, size, &mut data[start..]);
            used.push(i);
        }
    }
    (Nhwc::new(used.len(), size, size, 3, data), used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_geometry_at_scale_one() {
        // One cell at (x=3, y=1) above threshold.
        let (w, h) = (5, 2);
        let mut prob = vec![0.0; w * h];
        prob[w + 3] = 0.9;
        let reg = vec![0.0; 4 * w * h];
        let c = proposals(&reg, &prob, w, h, 1.0, 0.6);
        assert_eq!(c.len(), 1);
        let b = c[0].bbox;
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (7.0, 3.0, 18.0, 14.0));
    }

    #[test]
    fn square_keeps_centre() {
        let b = square(&BBox {
            x1: 10.,
            y1: 0.,
            x2: 20.,
            y2: 40.,
            score: 1.,
        });
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (-5.0, 0.0, 35.0, 40.0));
    }

    #[test]
    fn crop_window_clips_to_image() {
        let w = crop_window(
            &BBox {
                x1: -5.5,
                y1: 3.7,
                x2: 120.2,
                y2: 50.0,
                score: 1.,
            },
            100,
            80,
        )
        .unwrap();
        assert_eq!(
            w,
            Window {
                x0: 0,
                y0: 2,
                x1: 100,
                y1: 50
            }
        );
        assert!(crop_window(
            &BBox {
                x1: 150.,
                y1: 3.,
                x2: 170.,
                y2: 20.,
                score: 1.
            },
            100,
            80
        )
        .is_none());
    }
}
