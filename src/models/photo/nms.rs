//! Non-maximum suppression over detection boxes.

use super::boxes::BBox;

/// How the overlap of two boxes is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// Intersection over union, continuous coordinates (torchvision's `nms`,
    /// used after P-Net and R-Net).
    Union,
    /// Intersection over the smaller box, inclusive pixel coordinates (`+1`):
    /// the final O-Net pass, which also drops a small box inside a larger one.
    Min,
}

/// Indices of the boxes kept, highest score first. A box is dropped when it
/// overlaps an already kept one by more than `threshold`.
pub fn nms(boxes: &[BBox], threshold: f32, overlap: Overlap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| boxes[b].score.total_cmp(&boxes[a].score));
    let one = if overlap == Overlap::Min { 1.0 } else { 0.0 };
    let area = |b: &BBox| (b.x2 - b.x1 + one) * (b.y2 - b.y1 + one);
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let a = &boxes[i];
        let area_a = area(a);
        for &j in &order[pos + 1..] {
            if suppressed[j] {
                continue;
            }
            let b = &boxes[j];
            let iw = (a.x2.min(b.x2) - a.x1.max(b.x1) + one).max(0.0);
            let ih = (a.y2.min(b.y2) - a.y1.max(b.y1) + one).max(0.0);
            let inter = iw * ih;
            let o = match overlap {
                Overlap::Union => inter / (area_a + area(b) - inter),
                Overlap::Min => inter / area_a.min(area(b)),
            };
            if o > threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> BBox {
        BBox {
            x1,
            y1,
            x2,
            y2,
            score,
        }
    }

    #[test]
    fn keeps_best_of_overlapping_and_separate_boxes() {
        let boxes = [
            b(0., 0., 10., 10., 0.8),
            b(1., 1., 11., 11., 0.9),
            b(50., 50., 60., 60., 0.7),
        ];
        assert_eq!(nms(&boxes, 0.5, Overlap::Union), vec![1, 2]);
    }

    #[test]
    fn min_mode_drops_nested_box() {
        let boxes = [b(0., 0., 100., 100., 0.9), b(10., 10., 30., 30., 0.95)];
        // IoU is small, but the small box lies inside the big one.
        assert_eq!(nms(&boxes, 0.7, Overlap::Union).len(), 2);
        assert_eq!(nms(&boxes, 0.7, Overlap::Min), vec![1]);
    }
}
