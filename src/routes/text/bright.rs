//! Where the extra detector looks need to search. The second look
//! (highlights spread out, then inverted) is for light text over *bright*
//! ground: speckle, colour Doppler, bone. Over dark ground the same text is
//! high-contrast light-on-dark, which the first look finds; after the
//! mapping a dark region is a flat light field with nothing for the
//! detector. The colour look (the least of the three channels, mapped the
//! same way) is for white text over *saturated colour*: over Doppler's reds
//! and yellows white differs from the ground in one channel only, while its
//! least channel is high and theirs is near zero. So each look searches only
//! the parts of the image with its kind of ground, and skips the rest (on
//! ultrasound, the black margins and the darker speckle; on grey images the
//! colour look has nothing to do).

use super::frames::Rect;
use crate::models::components::Components;

/// The kind of ground an extra look is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ground {
    /// A sample at or above [`BRIGHT`] in any channel.
    Bright,
    /// Channels at least [`SATURATED`] apart.
    Colour,
}

impl Ground {
    fn holds(self, px: &[u8]) -> bool {
        let (lo, hi) = (px[0].min(px[1]).min(px[2]), px[0].max(px[1]).max(px[2]));
        match self {
            Ground::Bright => hi >= BRIGHT,
            Ground::Colour => hi - lo >= SATURATED,
        }
    }
}

/// Side of the square cells the image is judged in, px.
const CELL: usize = 32;
/// A sample at or above this (in any channel) is bright.
const BRIGHT: u8 = 128;
/// Channels this far apart are a saturated colour (Doppler, colour maps),
/// not grey with JPEG or chroma noise.
const SATURATED: u8 = 64;
/// A cell with at least this share of such pixels has that ground.
/// Light text on a dark band covers well under this (strokes fill about a
/// fifth of a line's box), so a dark band with text is not searched again.
const SHARE: f32 = 0.25;
/// Cells a region reaches beyond its bright cells. The network's
/// squeeze-excite layers pool over its whole input, so a crop does not see
/// quite what the whole image shows; with one cell of context a light line
/// over MR tissue was boxed 32 px shorter than in the whole image (23 % of
/// its strokes stayed), with two it is boxed as in the whole image.
const GROW: usize = 2;
/// Regions covering more than this share of the image: search it whole
/// (one network run costs less than several overlapping ones).
const WHOLE: f32 = 0.7;

/// The rectangles of `rgb` (`w × h`) a look for `ground` searches: the
/// cells with that ground, grown by [`GROW`] cells on every side (a line that
/// runs out of a bright region keeps its context), as the bounding boxes of
/// their 4-connected groups (these may overlap; merge them). The whole
/// image when they would cover most of it; nothing when no cell is bright.
pub fn regions(rgb: &[u8], w: usize, h: usize, ground: Ground) -> Vec<Rect> {
    let (gw, gh) = (w.div_ceil(CELL), h.div_ceil(CELL));
    let mut count = vec![0u32; gw * gh];
    for (y, row) in rgb.chunks_exact(w * 3).enumerate() {
        for (x, px) in row.chunks_exact(3).enumerate() {
            if ground.holds(px) {
                count[(y / CELL) * gw + x / CELL] += 1;
            }
        }
    }
    let cell_area = |i: usize| {
        let (cx, cy) = (i % gw, i / gw);
        ((CELL.min(w - cx * CELL)) * (CELL.min(h - cy * CELL))) as f32
    };
    let bright: Vec<bool> = (0..gw * gh)
        .map(|i| count[i] as f32 >= SHARE * cell_area(i))
        .collect();
    // Grown by `GROW` cells every way.
    let mut grown = vec![false; gw * gh];
    for cy in 0..gh {
        for cx in 0..gw {
            let near = |dx: isize, dy: isize| {
                let (x, y) = (cx as isize + dx, cy as isize + dy);
                x >= 0
                    && y >= 0
                    && (x as usize) < gw
                    && (y as usize) < gh
                    && bright[y as usize * gw + x as usize]
            };
            let g = GROW as isize;
            grown[cy * gw + cx] = (-g..=g).any(|dy| (-g..=g).any(|dx| near(dx, dy)));
        }
    }
    let searched = grown.iter().filter(|&&g| g).count();
    if searched == 0 {
        return Vec::new();
    }
    if searched as f32 > WHOLE * (gw * gh) as f32 {
        return vec![Rect {
            x0: 0,
            y0: 0,
            x1: w,
            y1: h,
        }];
    }
    groups(&grown, gw, gh)
        .into_iter()
        .map(|(x0, y0, x1, y1)| {
            Rect {
                x0: x0 * CELL,
                y0: y0 * CELL,
                x1: x1 * CELL,
                y1: y1 * CELL,
            }
            .clip(w, h)
        })
        .collect()
}

/// Bounding boxes (cells, exclusive ends) of the 4-connected groups of set
/// cells, in scan order of their first cell.
fn groups(set: &[bool], gw: usize, gh: usize) -> Vec<(usize, usize, usize, usize)> {
    let c = Components::of(set, [gw, gh, 1]);
    let mut out = vec![(gw, gh, 0, 0); c.count as usize];
    for (i, &l) in c.label.iter().enumerate() {
        if l > 0 {
            let (x, y) = (i % gw, i / gw);
            let b = &mut out[l as usize - 1];
            *b = (b.0.min(x), b.1.min(y), b.2.max(x + 1), b.3.max(y + 1));
        }
    }
    out
}

/// How many times a region is widened for lines cut by its edge.
pub const MAX_WIDENINGS: usize = 3;
/// How far a region is widened at a time, px (four cells).
const WIDEN: usize = 4 * CELL;

/// `r` widened on each side where one of the boxes `found` in it touches
/// an edge that is not the image's (a line cut there): by [`WIDEN`]
/// sideways, one cell up or down. `None` when no box is cut.
pub fn widened(r: Rect, found: &[Rect], w: usize, h: usize) -> Option<Rect> {
    let mut out = r;
    for b in found {
        let [left, right, top, bottom] = cut_sides(r, b, w, h);
        if left {
            out.x0 = r.x0.saturating_sub(WIDEN);
        }
        if right {
            out.x1 = (r.x1 + WIDEN).min(w);
        }
        if top {
            out.y0 = r.y0.saturating_sub(CELL);
        }
        if bottom {
            out.y1 = (r.y1 + CELL).min(h);
        }
    }
    (out != r).then_some(out)
}

/// Which of `r`'s edges (left, right, top, bottom) that are not the
/// image's the box `b` touches.
fn cut_sides(r: Rect, b: &Rect, w: usize, h: usize) -> [bool; 4] {
    [
        r.x0 > 0 && b.x0 <= r.x0 + 1,
        r.x1 < w && b.x1 + 1 >= r.x1,
        r.y0 > 0 && b.y0 <= r.y0 + 1,
        r.y1 < h && b.y1 + 1 >= r.y1,
    ]
}

/// What is searched again after `r` was widened to `wider` for the boxes
/// `found` that its edges cut: the rows of those boxes, with two cells of
/// context above and below (as round a region, [`GROW`]), across the
/// widened width. The rest of the region was searched already; searching
/// it whole again cost a sixth of the second look's network time.
pub fn cut_band(r: Rect, wider: Rect, found: &[Rect], w: usize, h: usize) -> Rect {
    let cut = found
        .iter()
        .filter(|b| cut_sides(r, b, w, h).contains(&true));
    let (y0, y1) = cut.fold((usize::MAX, 0), |(y0, y1), b| (y0.min(b.y0), y1.max(b.y1)));
    Rect {
        x0: wider.x0,
        x1: wider.x1,
        y0: y0.saturating_sub(GROW * CELL).clamp(wider.y0, wider.y1),
        y1: (y1 + GROW * CELL).clamp(wider.y0, wider.y1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: usize, h: usize, bright: &[Rect]) -> Vec<u8> {
        let mut rgb = vec![20u8; w * h * 3];
        for r in bright {
            for y in r.y0..r.y1 {
                for x in r.x0..r.x1 {
                    rgb[(y * w + x) * 3 + 1] = 200;
                }
            }
        }
        rgb
    }

    #[test]
    fn a_dark_image_is_not_searched_again() {
        // Light "text" strokes: thin lines covering under a quarter of a cell.
        let strokes: Vec<Rect> = (0..6)
            .map(|i| Rect::at(40 + 10 * i, 40, 42 + 10 * i, 52))
            .collect();
        assert!(regions(&image(640, 480, &strokes), 640, 480, Ground::Bright).is_empty());
    }

    #[test]
    fn a_bright_patch_is_searched_with_two_cells_around_it() {
        let rgb = image(640, 480, &[Rect::at(300, 200, 380, 250)]);
        // Cells 9..=11 x 6..=7 are bright enough, grown by two cells.
        assert_eq!(
            regions(&rgb, 640, 480, Ground::Bright),
            vec![Rect::at(224, 128, 448, 320)]
        );
    }

    #[test]
    fn a_mostly_bright_image_is_searched_whole() {
        let rgb = image(400, 300, &[Rect::at(0, 0, 250, 300)]);
        assert_eq!(
            regions(&rgb, 400, 300, Ground::Bright),
            vec![Rect::at(0, 0, 400, 300)]
        );
    }

    #[test]
    fn separate_patches_give_separate_regions_clipped_to_the_image() {
        let rgb = image(
            640,
            480,
            &[Rect::at(0, 0, 40, 40), Rect::at(600, 440, 640, 480)],
        );
        assert_eq!(
            regions(&rgb, 640, 480, Ground::Bright),
            vec![Rect::at(0, 0, 128, 128), Rect::at(512, 352, 640, 480)]
        );
    }

    #[test]
    fn the_colour_look_sees_saturated_colour_not_bright_grey() {
        // `image` paints (20, 200, 20): saturated green.
        let mut rgb = image(640, 480, &[Rect::at(300, 200, 380, 250)]);
        assert_eq!(
            regions(&rgb, 640, 480, Ground::Colour),
            vec![Rect::at(224, 128, 448, 320)]
        );
        // The same patch in grey is bright but not colour.
        for px in rgb.chunks_exact_mut(3) {
            px.fill(px[1]);
        }
        assert!(regions(&rgb, 640, 480, Ground::Colour).is_empty());
        assert_eq!(regions(&rgb, 640, 480, Ground::Bright).len(), 1);
    }

    #[test]
    fn a_region_is_widened_where_a_line_runs_out_of_it() {
        let r = Rect::at(128, 256, 288, 352);
        // Inside: nothing to do.
        assert_eq!(widened(r, &[Rect::at(140, 300, 250, 313)], 512, 512), None);
        // Cut on the right: four cells further right.
        assert_eq!(
            widened(r, &[Rect::at(172, 300, 288, 313)], 512, 512),
            Some(Rect::at(128, 256, 416, 352))
        );
        // At the image's own edge there is nothing further.
        let edge = Rect::at(0, 0, 512, 64);
        assert_eq!(widened(edge, &[Rect::at(0, 10, 512, 30)], 512, 512), None);
        // Cut at the bottom and the left: one cell down, four cells left.
        assert_eq!(
            widened(r, &[Rect::at(129, 340, 200, 352)], 512, 512),
            Some(Rect::at(0, 256, 288, 384))
        );
    }

    #[test]
    fn only_the_rows_of_the_cut_lines_are_searched_again() {
        let r = Rect::at(128, 0, 288, 480);
        let found = [Rect::at(172, 200, 288, 213), Rect::at(140, 300, 250, 313)];
        let wider = widened(r, &found, 640, 480).unwrap();
        assert_eq!(wider, Rect::at(128, 0, 416, 480));
        // The cut line's rows, two cells up and down, the widened width;
        // the uncut line at 300 is not searched again.
        assert_eq!(
            cut_band(r, wider, &found, 640, 480),
            Rect::at(128, 136, 416, 277)
        );
    }
}
