//! Where the text is: the detector run on a sampled set of frames and on
//! the per-pixel maximum and minimum over all frames (a static overlay in
//! any frame shows in one of them), the boxes grown by a margin, merged
//! where they touch, in image pixels.

use super::frames::{Frames, Rect};
use crate::models::text::TextDetector;

/// The frames searched one by one: `n` evenly spaced, first and last
/// included (all of them when there are no more than `n`).
pub fn sampled(frames: usize, n: usize) -> Vec<usize> {
    if frames <= n {
        return (0..frames).collect();
    }
    let mut v: Vec<usize> = (0..n)
        .map(|i| (i * (frames - 1) + (n - 1) / 2) / (n - 1))
        .collect();
    v.dedup();
    v
}

/// The text boxes of `f`, grown by `margin` and merged.
pub fn find(
    f: &Frames,
    det: &TextDetector,
    scan_frames: usize,
    margin: usize,
) -> anyhow::Result<Vec<Rect>> {
    let range = grey_range(f);
    let mut images: Vec<Vec<u8>> = sampled(f.frames, scan_frames)
        .into_iter()
        .map(|i| f.render(f.frame(i), range))
        .collect();
    if f.frames > 1 {
        let (hi, lo) = projections(f, range);
        images.push(hi);
        images.push(lo);
    }
    let mut rects = Vec::new();
    for rgb in &images {
        for b in det.detect(rgb, f.width, f.height)? {
            rects.push(
                Rect {
                    x0: b.x0 as usize,
                    y0: b.y0 as usize,
                    x1: b.x1 as usize,
                    y1: b.y1 as usize,
                }
                .grow(margin)
                .clip(f.width, f.height),
            );
        }
    }
    Ok(merge(rects))
}

/// The grey range over all frames, computed once (render() with `None`
/// would redo it per frame).
fn grey_range(f: &Frames) -> Option<(i64, i64)> {
    matches!(f.colour, super::frames::Colour::Grey { .. }).then(|| f.grey_range())
}

/// Per-pixel, per-channel maximum and minimum of the rendered frames.
fn projections(f: &Frames, range: Option<(i64, i64)>) -> (Vec<u8>, Vec<u8>) {
    let n = f.width * f.height * 3;
    let (mut hi, mut lo) = (vec![0u8; n], vec![255u8; n]);
    for i in 0..f.frames {
        let rgb = f.render(f.frame(i), range);
        for ((h, l), v) in hi.iter_mut().zip(lo.iter_mut()).zip(rgb) {
            *h = (*h).max(v);
            *l = (*l).min(v);
        }
    }
    (hi, lo)
}

/// Overlapping rectangles joined until none overlap; sorted, so the same
/// boxes in any order give the same result.
pub fn merge(mut rects: Vec<Rect>) -> Vec<Rect> {
    rects.retain(|r| r.area() > 0);
    loop {
        let mut joined = false;
        let mut out: Vec<Rect> = Vec::with_capacity(rects.len());
        for r in rects {
            match out.iter_mut().find(|o| o.overlaps(&r)) {
                Some(o) => {
                    *o = o.union(&r);
                    joined = true;
                }
                None => out.push(r),
            }
        }
        rects = out;
        if !joined {
            break;
        }
    }
    rects.sort_by_key(|r| (r.y0, r.x0, r.y1, r.x1));
    rects
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x0: usize, y0: usize, x1: usize, y1: usize) -> Rect {
        Rect { x0, y0, x1, y1 }
    }

    #[test]
    fn sampling_keeps_first_and_last() {
        assert_eq!(sampled(3, 16), vec![0, 1, 2]);
        let s = sampled(100, 5);
        assert_eq!(s.len(), 5);
        assert_eq!((s[0], s[4]), (0, 99));
    }

    #[test]
    fn touching_boxes_merge_in_any_order() {
        let a = vec![
            r(0, 0, 10, 10),
            r(20, 0, 30, 10),
            r(5, 5, 25, 8),
            r(50, 50, 60, 60),
        ];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(merge(a.clone()), vec![r(0, 0, 30, 10), r(50, 50, 60, 60)]);
        assert_eq!(merge(a), merge(b));
    }
}
