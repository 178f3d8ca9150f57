//! Keep regions: parts of a face a clinician needs (the eyes for
//! ophthalmology, the lips for perioral lesions, a lesion box from config) that
//! face replacement must leave bit-identical.
//!
//! Every kept pixel can itself carry identity (with the eye band kept, dlib
//! still matched; see `../shared/notes/photo-facts.md`), so the regions here
//! are deliberately tight and the configuration chooses which ones to keep.

use serde::{Deserialize, Serialize};

use super::detect::Face;

/// An axis-aligned rectangle of whole pixels, `x..x+width` × `y..y+height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl PixelRect {
    /// The pixels whose centres lie in `[x0, x1) × [y0, y1)`, clipped to a
    /// `w`×`h` image; `None` when nothing is left.
    pub fn from_bounds(x0: f32, y0: f32, x1: f32, y1: f32, w: u32, h: u32) -> Option<Self> {
        let cx0 = x0.round().clamp(0.0, w as f32) as u32;
        let cy0 = y0.round().clamp(0.0, h as f32) as u32;
        let cx1 = x1.round().clamp(0.0, w as f32) as u32;
        let cy1 = y1.round().clamp(0.0, h as f32) as u32;
        (cx1 > cx0 && cy1 > cy0).then_some(Self {
            x: cx0,
            y: cy0,
            width: cx1 - cx0,
            height: cy1 - cy0,
        })
    }

    /// Clip to a `w`×`h` image.
    pub fn clip(&self, w: u32, h: u32) -> Option<Self> {
        let x1 = self.x.saturating_add(self.width).min(w);
        let y1 = self.y.saturating_add(self.height).min(h);
        (x1 > self.x && y1 > self.y).then_some(Self {
            x: self.x,
            y: self.y,
            width: x1 - self.x,
            height: y1 - self.y,
        })
    }

    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x - self.x < self.width && y - self.y < self.height
    }

    /// Euclidean distance from pixel `(x, y)` to the nearest pixel of the
    /// rectangle; 0 inside.
    pub fn distance(&self, x: u32, y: u32) -> f32 {
        let gap = |p: u32, lo: u32, len: u32| {
            if p < lo {
                (lo - p) as f32
            } else if p >= lo + len {
                (p - (lo + len - 1)) as f32
            } else {
                0.0
            }
        };
        let dx = gap(x, self.x, self.width);
        let dy = gap(y, self.y, self.height);
        (dx * dx + dy * dy).sqrt()
    }
}

/// What to leave untouched in a replaced face.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepRegion {
    /// Both eyes with lids and brows, from the eye landmarks: ophthalmology.
    Periocular,
    /// Lips and mouth corners, from the mouth landmarks.
    Perioral,
    /// A fixed rectangle in image pixels: a lesion box from config, or from a
    /// DICOM graphic annotation.
    Box(PixelRect),
}

/// Distance between the eyes, floored at a quarter of the box width so a
/// profile view (eyes close together) still gets a usable region.
pub fn eye_distance(face: &Face) -> f32 {
    let [le, re, ..] = face.landmarks;
    let d = ((re.0 - le.0).powi(2) + (re.1 - le.1).powi(2)).sqrt();
    d.max(0.25 * (face.bbox[2] - face.bbox[0]))
}

impl KeepRegion {
    /// The rectangle this region covers for `face` in a `w`×`h` image.
    /// Box regions do not depend on the face.
    pub fn rect(&self, face: &Face, w: u32, h: u32) -> Option<PixelRect> {
        let d = eye_distance(face);
        let [le, re, _nose, ml, mr] = face.landmarks;
        match self {
            // Brows sit about 0.35 d above the eye centres, lower lids 0.2 d
            // below; the outer canthi about 0.3 d outside the eye centres.
            KeepRegion::Periocular => PixelRect::from_bounds(
                le.0.min(re.0) - 0.5 * d,
                le.1.min(re.1) - 0.45 * d,
                le.0.max(re.0) + 0.5 * d,
                le.1.max(re.1) + 0.3 * d,
                w,
                h,
            ),
            // Mouth corners lie on the lip line; the lips extend about 0.2 d
            // above and 0.3 d below it.
            KeepRegion::Perioral => PixelRect::from_bounds(
                ml.0.min(mr.0) - 0.15 * d,
                ml.1.min(mr.1) - 0.25 * d,
                ml.0.max(mr.0) + 0.15 * d,
                ml.1.max(mr.1) + 0.35 * d,
                w,
                h,
            ),
            KeepRegion::Box(r) => r.clip(w, h),
        }
    }
}

/// All keep rectangles of all faces: a region kept for one face must also
/// survive the replacement of an overlapping neighbour.
pub fn keep_rects(faces: &[Face], keep: &[KeepRegion], w: u32, h: u32) -> Vec<PixelRect> {
    let mut out = Vec::new();
    for k in keep {
        match k {
            KeepRegion::Box(r) => out.extend(r.clip(w, h)),
            _ => out.extend(faces.iter().filter_map(|f| k.rect(f, w, h))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn frontal_face() -> Face {
        Face {
            bbox: [100.0, 100.0, 200.0, 220.0],
            score: 0.99,
            landmarks: [
                (130.0, 145.0),
                (170.0, 145.0),
                (150.0, 170.0),
                (135.0, 195.0),
                (165.0, 195.0),
            ],
        }
    }

    #[test]
    fn periocular_covers_both_eyes_not_mouth() {
        let f = frontal_face();
        let r = KeepRegion::Periocular.rect(&f, 400, 400).unwrap();
        for (x, y) in &f.landmarks[..2] {
            assert!(r.contains(*x as u32, *y as u32));
        }
        assert!(!r.contains(135, 195));
        assert!(!r.contains(150, 170), "nose tip must not be kept");
    }

    #[test]
    fn perioral_covers_mouth_only() {
        let f = frontal_face();
        let r = KeepRegion::Perioral.rect(&f, 400, 400).unwrap();
        assert!(r.contains(135, 195) && r.contains(165, 195));
        assert!(!r.contains(130, 145));
    }

    #[test]
    fn box_is_clipped() {
        let b = KeepRegion::Box(PixelRect {
            x: 390,
            y: 0,
            width: 50,
            height: 5,
        });
        assert_eq!(
            b.rect(&frontal_face(), 400, 400),
            Some(PixelRect {
                x: 390,
                y: 0,
                width: 10,
                height: 5
            })
        );
    }

    #[test]
    fn distance_is_zero_inside() {
        let r = PixelRect {
            x: 10,
            y: 10,
            width: 5,
            height: 5,
        };
        assert_eq!(r.distance(12, 14), 0.0);
        assert_eq!(r.distance(17, 12), 3.0);
        assert_eq!(r.distance(17, 18), 5.0);
    }
}
