//! Sets of boxes: joined where they overlap (for searching) or where that
//! adds little (for filling), and the pixels they cover together.

use super::frames::Rect;

/// Overlapping rectangles joined until none overlap; sorted, so the same
/// boxes in any order give the same result.
pub fn merge(rects: Vec<Rect>) -> Vec<Rect> {
    join_where(rects, |a, b| a.overlaps(b))
}

/// The boxes to fill: overlapping boxes are joined only where their
/// bounding box adds at most a tenth to the pixels they cover together,
/// and otherwise both stay (overlapping). Joining every overlap would let a
/// column of labels and a band of text that touch at a corner become one
/// rectangle over the image between them. The same boxes in any order give
/// the same result.
pub fn join_fills(rects: Vec<Rect>) -> Vec<Rect> {
    join_where(rects, |a, b| a.overlaps(b) && joins_tightly(a, b))
}

/// Rectangles replaced by their bounding box while `joins` says so for a
/// pair; sorted first and last.
pub fn join_where(mut rects: Vec<Rect>, joins: impl Fn(&Rect, &Rect) -> bool) -> Vec<Rect> {
    let key = |r: &Rect| (r.y0, r.x0, r.y1, r.x1);
    rects.retain(|r| r.area() > 0);
    rects.sort_by_key(key);
    rects.dedup();
    loop {
        let mut joined = false;
        let mut out: Vec<Rect> = Vec::with_capacity(rects.len());
        for r in rects {
            match out.iter_mut().find(|o| joins(o, &r)) {
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
    rects.sort_by_key(key);
    rects
}

/// Whether the bounding box of `a` and `b` is at most 10 % larger than
/// what they cover together.
fn joins_tightly(a: &Rect, b: &Rect) -> bool {
    let both = a.area() + b.area() - a.intersection(b).map_or(0, |i| i.area());
    a.union(b).area() * 10 <= both * 11
}

/// Pixels of a `w × h` image that `rects` cover (overlaps once).
pub fn covered(rects: &[Rect], w: usize, h: usize) -> usize {
    let mut mask = vec![false; w * h];
    for r in rects {
        let r = r.clip(w, h);
        for y in r.y0..r.y1 {
            mask[y * w + r.x0..y * w + r.x1].fill(true);
        }
    }
    mask.iter().filter(|&&m| m).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_that_touch_at_a_corner_stay_apart_and_lines_found_twice_join() {
        // A band of text and a column of labels meeting at a corner: one
        // rectangle over both would cover the image between them.
        let band = Rect::at(40, 10, 400, 30);
        let column = Rect::at(0, 25, 46, 135);
        let fills = join_fills(vec![band, column]);
        assert_eq!(fills, vec![band, column]);
        assert_eq!(covered(&fills, 500, 200), 360 * 20 + 46 * 110 - 6 * 5);
        // The same line found in two frames a pixel apart: one box.
        let again = Rect::at(41, 11, 401, 31);
        assert_eq!(
            join_fills(vec![again, band]),
            vec![Rect::at(40, 10, 401, 31)]
        );
        // Inside another: gone. Any order: the same result.
        let inner = Rect::at(100, 12, 120, 28);
        assert_eq!(join_fills(vec![inner, band, column]), vec![band, column]);
        assert_eq!(join_fills(vec![column, inner, band]), vec![band, column]);
    }

    #[test]
    fn touching_boxes_merge_in_any_order() {
        let a = vec![
            Rect::at(0, 0, 10, 10),
            Rect::at(20, 0, 30, 10),
            Rect::at(5, 5, 25, 8),
            Rect::at(50, 50, 60, 60),
        ];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(
            merge(a.clone()),
            vec![Rect::at(0, 0, 30, 10), Rect::at(50, 50, 60, 60)]
        );
        assert_eq!(merge(a), merge(b));
    }
}
