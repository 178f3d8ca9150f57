//! Text shown only in frames that were not searched. A long cine is
//! searched in `scan_frames` sampled frames and in its static layer (what
//! is the same in every frame); a label drawn in a few frames between the
//! samples is in neither (a name shown in one frame of twelve, over
//! Doppler: SEED=2's 0006 of the evaluation corpus). So every other frame
//! is checked, cheaply: its rows of clear glyphs on flat ground (a label, a
//! band) that differ from the nearest searched frames there are searched
//! with the detector, enlarged like a closer look.

use super::frames::{Frames, Rect};
use super::rects::merge;
use super::small;

/// At most this many places are searched per object (the first frames'
/// first, in reading order).
pub const MAX_LOOKS: usize = 16;

/// Rows of ink at most this many pixels high are checked (a line, not an
/// icon or a block).
const MAX_HEIGHT: usize = 40;

/// One place in one frame not searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub frame: usize,
    pub area: Rect,
    pub text_height: usize,
}

/// The places to search in the frames of `f` not in `searched` (sorted),
/// rendered over `range`: rows whose pixels differ from those of both
/// neighbouring searched frames. Rows inside the boxes found elsewhere are
/// checked too: over a cine's moving content those boxes are often the
/// detector's false alarms, left unfilled once read as nothing.
pub fn places(f: &Frames, range: Option<(i64, i64)>, searched: &[usize]) -> Vec<Place> {
    let mut out: Vec<Place> = Vec::new();
    for i in (0..f.frames).filter(|i| searched.binary_search(i).is_err()) {
        if out.len() >= MAX_LOOKS {
            break;
        }
        let rgb = f.render(f.frame(i), range);
        let before = searched.iter().rev().find(|&&s| s < i).copied();
        let after = searched.iter().find(|&&s| s > i).copied();
        let rows: Vec<Rect> = small::clear_rows(&rgb, f.width, f.height, |b| {
            let (bw, bh) = (b.x1 - b.x0, b.y1 - b.y0);
            (3..=MAX_HEIGHT).contains(&bh) && bw >= 2 * bh
        })
        .into_iter()
        .filter(|b| {
            [before, after]
                .into_iter()
                .flatten()
                .all(|s| differs(f, i, s, b))
        })
        .collect();
        let grown: Vec<(Rect, usize)> = rows
            .iter()
            .map(|b| (small::around(b, 2, f.width, f.height), b.y1 - b.y0))
            .collect();
        for area in merge(grown.iter().map(|g| g.0).collect()) {
            // The same place in a later frame: searched once.
            if out.iter().any(|p| p.area.contains(&area)) {
                continue;
            }
            let text_height = grown
                .iter()
                .filter(|g| area.contains(&g.0))
                .map(|g| g.1)
                .min()
                .unwrap_or(MAX_HEIGHT);
            out.push(Place {
                frame: i,
                area,
                text_height,
            });
        }
    }
    out.truncate(MAX_LOOKS);
    out
}

/// Whether frames `a` and `b` of `f` differ anywhere in `r`.
fn differs(f: &Frames, a: usize, b: usize, r: &Rect) -> bool {
    let px = f.pixel_len();
    let (fa, fb) = (f.frame(a), f.frame(b));
    (r.y0..r.y1).any(|y| {
        let span = (y * f.width + r.x0) * px..(y * f.width + r.x1) * px;
        fa[span.clone()] != fb[span]
    })
}
