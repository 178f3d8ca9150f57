//! A closer look where the detector is least sure of its boxes: lines on
//! lit ground (radiograph content, a photo, ultrasound tissue), where it
//! often boxes only the part of a faint line that stands out, and boxes too
//! big to be a line, where a line and the texture around it became one blob
//! that `is_line` rejects (a grey ID line over a cat's abdomen, inside a
//! 507 × 312 px box).
//! Each place is cropped with room around it, the anatomy's shading taken
//! out (each pixel less the mean around it), enlarged towards 32 px boxes
//! and searched again. Cines skip this: their static layer already shows
//! fixed text apart from the moving content.

use super::frames::Rect;
use super::rects::merge;
use crate::models::text::reader::crop_rgb;

/// At most this many places are looked at per image (the first in reading
/// order), bounding the cost on a radiograph whose ribs give many boxes.
pub const MAX_LOOKS: usize = 12;

/// The detector's input for one place is at most this long (a big joined
/// place is searched shrunk, never at more than about two frames' cost).
pub const MAX_SIDE: usize = 1280;

/// The share of a line's surroundings that must be lit for a closer look:
/// text on black ground (ultrasound and screen bands) is boxed whole.
const LIT_SHARE: f32 = 0.5;

/// A rendered level (0–255 luminance) at or above which ground counts as lit.
const LIT_LEVEL: u32 = 40;

/// The box height the enlargement aims at. A place's text height is its
/// detector box's, which the box's unclipping makes about 1.6 times the
/// letters': 32 puts 18–20 px letters at about twice their size. At 24, a
/// 29 px box (18 px digits) was searched as it was, and "17." of
/// "17.02.1950", cut off by a rib, was not found in the view (0035 of the
/// corpus); twice as large, the whole line is one box.
const TARGET_TEXT: usize = 32;

/// The places to look at again, in image pixels: each line on lit ground
/// widened by six heights each side and one up and down (a line boxed from
/// its middle runs on past either end), and each implausible box with a
/// small margin; overlapping places joined.
pub fn places(rgb: &[u8], w: usize, h: usize, lines: &[Rect], implausible: &[Rect]) -> Vec<Place> {
    let mut out: Vec<Place> = Vec::new();
    for r in lines {
        let lh = (r.y1 - r.y0).max(1);
        if !on_lit_ground(rgb, w, h, r) {
            continue;
        }
        let area = Rect {
            x0: r.x0.saturating_sub(6 * lh),
            y0: r.y0.saturating_sub(lh),
            x1: r.x1 + 6 * lh,
            y1: r.y1 + lh,
        }
        .clip(w, h);
        out.push(Place {
            area,
            text_height: lh,
        });
    }
    for r in implausible {
        // The line inside is of unknown height: assume a small one.
        out.push(Place {
            area: r.grow(8).clip(w, h),
            text_height: 12,
        });
    }
    // Overlapping places joined, each keeping the smallest text height of
    // those it holds; in reading order, so any order of boxes gives the same.
    merge(out.iter().map(|p| p.area).collect())
        .into_iter()
        .take(MAX_LOOKS)
        .map(|area| Place {
            area,
            text_height: out
                .iter()
                .filter(|p| area.contains(&p.area))
                .map(|p| p.text_height)
                .min()
                .unwrap_or(12),
        })
        .collect()
}

/// One place to look at and the height of the text expected there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub area: Rect,
    pub text_height: usize,
}

/// Whether at least half of the band around `r` (half its height out on
/// every side) is lit.
pub fn on_lit_ground(rgb: &[u8], w: usize, h: usize, r: &Rect) -> bool {
    let pad = ((r.y1 - r.y0) / 2).max(2);
    let outer = r.grow(pad).clip(w, h);
    let (mut lit, mut all) = (0u32, 0u32);
    for y in outer.y0..outer.y1 {
        for x in outer.x0..outer.x1 {
            if y >= r.y0 && y < r.y1 && x >= r.x0 && x < r.x1 {
                continue;
            }
            let p = &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
            all += 1;
            if luminance(p) >= LIT_LEVEL {
                lit += 1;
            }
        }
    }
    all > 0 && lit as f32 >= LIT_SHARE * all as f32
}

/// Rec. 601 luminance of an RGB pixel.
pub fn luminance(p: &[u8]) -> u32 {
    (299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32) / 1000
}

/// What the detector is shown of `place` in `rgb` (`w` wide): the crop as
/// its [`detail`], the crop's width and height, and how many times to
/// enlarge it (towards [`TARGET_TEXT`], 1–3 times).
pub fn view(rgb: &[u8], w: usize, place: &Place) -> (Vec<u8>, usize, usize, usize) {
    let a = place.area;
    let (cw, ch) = (a.x1 - a.x0, a.y1 - a.y0);
    let crop = crop_rgb(rgb, w, (a.x0, a.y0, a.x1, a.y1));
    let grey = detail(&crop, cw, ch, place.text_height.clamp(4, 24));
    let s = TARGET_TEXT.div_ceil(place.text_height.max(1)).clamp(1, 3);
    (grey, cw, ch, s)
}

/// The crop as grey RGB: each pixel's luminance less the mean of the
/// square around it (`radius` out: about a text height), scaled so that the
/// 99th percentile of the differences spans half the range, around mid-grey.
/// Anatomy's slow shading goes; strokes, faint or not, stand out on an even
/// ground. A crop with no detail (differences under two levels) stays flat.
pub fn detail(rgb: &[u8], w: usize, h: usize, radius: usize) -> Vec<u8> {
    let diff = shading_removed(rgb, w, h, radius);
    let mut mags: Vec<f32> = diff.iter().map(|d| d.abs()).collect();
    let k = (mags.len() * 99 / 100).min(mags.len().saturating_sub(1));
    let p99 = *mags.select_nth_unstable_by(k, f32::total_cmp).1;
    let gain = if p99 < 2.0 { 0.0 } else { 127.0 / p99 };
    diff.iter()
        .flat_map(|d| {
            let g = (128.0 + d * gain).round().clamp(0.0, 255.0) as u8;
            [g, g, g]
        })
        .collect()
}

/// Each pixel's luminance less the mean of the square `radius` around it.
fn shading_removed(rgb: &[u8], w: usize, h: usize, radius: usize) -> Vec<f32> {
    let lum: Vec<f32> = rgb.chunks_exact(3).map(|p| luminance(p) as f32).collect();
    let mean = box_mean(&lum, w, h, radius);
    lum.iter().zip(&mean).map(|(v, m)| v - m).collect()
}

/// The mean over the `(2r+1)²` square around each pixel (clipped at the
/// edges), from a summed-area table.
pub fn box_mean(v: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    let mut sat = vec![0f64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0f64;
        for x in 0..w {
            row += v[y * w + x] as f64;
            sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row;
        }
    }
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let s = sat[y1 * (w + 1) + x1] - sat[y0 * (w + 1) + x1] - sat[y1 * (w + 1) + x0]
                + sat[y0 * (w + 1) + x0];
            out.push((s / ((y1 - y0) * (x1 - x0)) as f64) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: usize, h: usize, level: u8) -> Vec<u8> {
        vec![level; w * h * 3]
    }

    #[test]
    fn a_line_on_black_ground_is_not_looked_at_again() {
        let rgb = image(200, 100, 0);
        let line = Rect::at(50, 40, 120, 52);
        assert!(places(&rgb, 200, 100, &[line], &[]).is_empty());
        let lit = image(200, 100, 120);
        let p = places(&lit, 200, 100, &[line], &[]);
        assert_eq!(p.len(), 1);
        // Six heights sideways, one up and down, clipped to the image.
        assert_eq!(p[0].area, Rect::at(0, 28, 192, 64));
        assert_eq!(p[0].text_height, 12);
    }

    #[test]
    fn overlapping_places_are_joined_whatever_their_order() {
        let lit = image(400, 200, 120);
        let a = Rect::at(50, 40, 120, 52);
        let b = Rect::at(150, 44, 220, 60);
        let one = places(&lit, 400, 200, &[a, b], &[]);
        let other = places(&lit, 400, 200, &[b, a], &[]);
        assert_eq!(one, other);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].text_height, 12);
    }

    #[test]
    fn a_box_of_mid_sized_text_is_looked_at_twice_as_large() {
        let lit = image(400, 200, 120);
        let scale = |text_height: usize| {
            let place = Place {
                area: Rect::at(10, 10, 300, 100),
                text_height,
            };
            view(&lit, 400, &place).3
        };
        // A 29 px box round 18 px digits: twice (it was searched as it was).
        assert_eq!(scale(29), 2);
        assert_eq!(scale(12), 3);
        assert_eq!(scale(40), 1);
    }

    #[test]
    fn detail_keeps_a_faint_stroke_and_drops_the_shading() {
        // A ramp from 60 to 160 across 40 columns with one column 6 levels
        // brighter than the ramp there.
        let (w, h) = (40, 9);
        let mut rgb = Vec::new();
        for _ in 0..h {
            for x in 0..w {
                let v = (60 + x * 100 / w) as u8 + if x == 20 { 6 } else { 0 };
                rgb.extend_from_slice(&[v, v, v]);
            }
        }
        let g = detail(&rgb, w, h, 4);
        let row: Vec<u8> = (0..w).map(|x| g[(4 * w + x) * 3]).collect();
        let stroke = row[20];
        assert!(stroke > 200, "stroke at {stroke}: {row:?}");
        // The ramp itself is flat mid-grey away from the stroke and edges.
        for x in (5..15).chain(26..35) {
            assert!((row[x] as i32 - 128).abs() < 40, "ground at {x}: {row:?}");
        }
        // No detail: flat mid-grey.
        assert!(detail(&image(8, 8, 77), 8, 8, 2).iter().all(|&v| v == 128));
    }
}
