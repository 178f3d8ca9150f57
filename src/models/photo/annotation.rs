//! Keep regions from DICOM graphic annotations (PS3.3 C.10.5, Graphic
//! Annotation Module): a clinician who outlined a lesion on the photograph
//! told us which pixels matter, so the outline's bounding box is kept
//! bit-identical like a configured box.
//!
//! Only closed graphics mark an area: CIRCLE, ELLIPSE, and a POLYLINE or
//! INTERPOLATED curve whose last point equals its first. POINTs and open
//! polylines (arrows, measurement lines) point at something without bounding
//! it, so they keep nothing.
//!
//! Coordinates follow C.10.5.1.2: PIXEL units are sub-pixel image positions
//! whose origin 0.0\0.0 is the top left corner of the top left pixel (the
//! bottom right corner of the bottom right pixel is Columns\Rows); DISPLAY
//! units are fractions of the displayed area, 0.0 to 1.0, which for an image
//! shown without a presentation state is the whole image. Graphic Data lists
//! column\row pairs.

use super::keep::{KeepRegion, PixelRect};

/// Pixels added on every side of an annotation's bounding box. The outline
/// is drawn on the border of the lesion, so its own stroke and the rounding
/// to whole pixels must not cut the lesion's edge; an INTERPOLATED curve may
/// also bulge slightly past its control points. Two pixels cover both
/// without keeping noticeably more of the face.
pub const ANNOTATION_MARGIN_PX: f32 = 2.0;

/// Graphic Annotation Units (0070,0005).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphicUnits {
    Pixel,
    Display,
}

/// Graphic Type (0070,0023).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphicType {
    Point,
    Polyline,
    Interpolated,
    Circle,
    Ellipse,
}

impl GraphicType {
    /// From the DICOM code string; `None` for types this does not read.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "POINT" => Self::Point,
            "POLYLINE" => Self::Polyline,
            "INTERPOLATED" => Self::Interpolated,
            "CIRCLE" => Self::Circle,
            "ELLIPSE" => Self::Ellipse,
            _ => return None,
        })
    }
}

impl GraphicUnits {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "PIXEL" => Self::Pixel,
            "DISPLAY" => Self::Display,
            _ => return None,
        })
    }
}

/// One item of the Graphic Object Sequence (0070,0009).
#[derive(Clone, Debug, PartialEq)]
pub struct Graphic {
    pub units: GraphicUnits,
    pub kind: GraphicType,
    /// Graphic Data (0070,0022) as (column, row) pairs.
    pub points: Vec<(f32, f32)>,
}

impl Graphic {
    /// The area the graphic encloses in image coordinates (continuous,
    /// `[x0, x1) × [y0, y1)`), or `None` for a graphic that encloses none or
    /// is malformed.
    pub fn bounds(&self, width: u32, height: u32) -> Option<[f32; 4]> {
        let (sx, sy) = match self.units {
            GraphicUnits::Pixel => (1.0, 1.0),
            GraphicUnits::Display => (width as f32, height as f32),
        };
        let p: Vec<(f32, f32)> = self.points.iter().map(|&(x, y)| (x * sx, y * sy)).collect();
        if p.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
            return None;
        }
        let hull = |pts: &[(f32, f32)]| {
            let mut b = [
                f32::INFINITY,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
            ];
            for &(x, y) in pts {
                b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
            }
            b
        };
        match self.kind {
            GraphicType::Point => None,
            GraphicType::Polyline | GraphicType::Interpolated => {
                // Closed when the last point is the first (C.10.5.1.2).
                let closed = p.len() >= 4 && p.first() == p.last();
                closed.then(|| hull(&p))
            }
            GraphicType::Circle => {
                // Centre, then a point on the perimeter.
                let [(cx, cy), (px, py)] = p[..] else {
                    return None;
                };
                let r = ((px - cx).powi(2) + (py - cy).powi(2)).sqrt();
                Some([cx - r, cy - r, cx + r, cy + r])
            }
            GraphicType::Ellipse => {
                // The two end points of the major axis, then of the minor
                // axis; the axes may be rotated.
                let [a0, a1, b0, b1] = p[..] else {
                    return None;
                };
                let c = ((a0.0 + a1.0) * 0.5, (a0.1 + a1.1) * 0.5);
                let (ax, ay) = ((a1.0 - a0.0) * 0.5, (a1.1 - a0.1) * 0.5);
                let (bx, by) = ((b1.0 - b0.0) * 0.5, (b1.1 - b0.1) * 0.5);
                let (hx, hy) = ((ax * ax + bx * bx).sqrt(), (ay * ay + by * by).sqrt());
                Some([c.0 - hx, c.1 - hy, c.0 + hx, c.1 + hy])
            }
        }
    }

    /// The whole pixels the graphic touches, grown by
    /// [`ANNOTATION_MARGIN_PX`] and clipped to a `width`×`height` image.
    pub fn keep_rect(&self, width: u32, height: u32) -> Option<PixelRect> {
        let [x0, y0, x1, y1] = self.bounds(width, height)?;
        let m = ANNOTATION_MARGIN_PX;
        let (x0, y0) = ((x0 - m).floor().max(0.0), (y0 - m).floor().max(0.0));
        let (x1, y1) = (
            (x1 + m).ceil().min(width as f32),
            (y1 + m).ceil().min(height as f32),
        );
        (x1 > x0 && y1 > y0).then_some(PixelRect {
            x: x0 as u32,
            y: y0 as u32,
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
        })
    }
}

/// Keep regions for the closed graphics among `graphics`.
pub fn annotation_keep(graphics: &[Graphic], width: u32, height: u32) -> Vec<KeepRegion> {
    graphics
        .iter()
        .filter_map(|g| g.keep_rect(width, height))
        .map(KeepRegion::Box)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(units: GraphicUnits, kind: GraphicType, points: &[(f32, f32)]) -> Graphic {
        Graphic {
            units,
            kind,
            points: points.to_vec(),
        }
    }

    #[test]
    fn closed_polyline_keeps_its_box_plus_margin() {
        let square = [(10.0, 20.0), (30.0, 20.0), (30.0, 40.5), (10.0, 20.0)];
        let r = g(GraphicUnits::Pixel, GraphicType::Polyline, &square)
            .keep_rect(100, 100)
            .unwrap();
        // 10..30 × 20..40.5 grown by 2 px: pixels 8..32 × 18..43.
        assert_eq!(
            r,
            PixelRect {
                x: 8,
                y: 18,
                width: 24,
                height: 25
            }
        );
    }

    #[test]
    fn open_graphics_and_points_keep_nothing() {
        let line = [(10.0, 20.0), (30.0, 20.0), (30.0, 40.0)];
        assert!(g(GraphicUnits::Pixel, GraphicType::Polyline, &line)
            .keep_rect(100, 100)
            .is_none());
        assert!(g(GraphicUnits::Pixel, GraphicType::Point, &[(5.0, 5.0)])
            .keep_rect(100, 100)
            .is_none());
        // Malformed circles and ellipses are ignored, not guessed at.
        assert!(g(GraphicUnits::Pixel, GraphicType::Circle, &line)
            .keep_rect(100, 100)
            .is_none());
    }

    #[test]
    fn circle_and_rotated_ellipse() {
        let c = g(
            GraphicUnits::Pixel,
            GraphicType::Circle,
            &[(50.0, 50.0), (53.0, 54.0)],
        );
        assert_eq!(c.bounds(100, 100), Some([45.0, 45.0, 55.0, 55.0]));
        // Major axis along the diagonal, length 2·√2·10, minor axis 0: the
        // box is the diagonal's.
        let e = g(
            GraphicUnits::Pixel,
            GraphicType::Ellipse,
            &[(40.0, 40.0), (60.0, 60.0), (50.0, 50.0), (50.0, 50.0)],
        );
        let b = e.bounds(100, 100).unwrap();
        for (v, want) in b.iter().zip([40.0, 40.0, 60.0, 60.0]) {
            assert!((v - want).abs() < 1e-4, "{b:?}");
        }
    }

    #[test]
    fn display_units_are_fractions_of_the_image_and_clipped() {
        let r = g(
            GraphicUnits::Display,
            GraphicType::Interpolated,
            &[(0.5, 0.0), (1.0, 0.0), (1.0, 0.5), (0.5, 0.5), (0.5, 0.0)],
        )
        .keep_rect(200, 100)
        .unwrap();
        assert_eq!(
            r,
            PixelRect {
                x: 98,
                y: 0,
                width: 102,
                height: 52
            }
        );
        assert_eq!(
            annotation_keep(
                &[g(GraphicUnits::Display, GraphicType::Point, &[(0.1, 0.1)])],
                10,
                10
            ),
            vec![]
        );
    }
}
