//! Text too small for the detector at the scale it searched the image:
//! below about 10 px of ink the network sees a smudge (a 7 px hospital name
//! in the black band of an 800 × 600 ultrasound, 0097 of the corpus, which
//! it finds at twice the size). Enlarging every image costs four times the
//! search, so only the places that look like a row of small glyphs on even
//! ground are enlarged and searched again: groups of pixels that stand out
//! of their surroundings, joined along the row, a few pixels high, at least
//! twice as wide, the ground round them flat (a band, a label, a screen's
//! background; never speckle or anatomy, whose grain is everywhere).

use super::frames::Rect;
use super::rects::merge;
use super::zoom::{box_mean, luminance};
use crate::models::components::Components;

/// At most this many places are looked at per image (the first in reading
/// order).
pub const MAX_LOOKS: usize = 8;

/// A pixel is ink when it is this many levels (of 255) off the mean of the
/// square [`RADIUS`] round it: small light-on-dark or dark-on-light text
/// clears it by far, JPEG ringing and noise on a flat band do not.
const INK: f32 = 48.0;
const RADIUS: usize = 6;

/// Ink is joined along the row across gaps of up to this many pixels (the
/// space between small letters and words).
const JOIN: usize = 3;

/// Groups whose ink is at most this many pixels high, at the scale the
/// detector saw the image, are too small for it; larger text it finds.
const MAX_SEEN_HEIGHT: usize = 10;

/// The ground round a group (the ring one to three pixels out, ink left
/// out) is flat when its luminance varies by at most this much (standard
/// deviation).
const FLAT: f32 = 12.0;

/// A row holds at least this many separate glyphs: a line of text is
/// letters side by side, an edge or a vessel is one long stroke.
const MIN_GLYPHS: usize = 3;

/// The text height the enlargement aims at (letters, not boxes).
const TARGET: usize = 20;

/// Faint rows: ink at least this many levels off the local mean, on ground
/// at least [`LIT`] bright, standing out of it by [`DISTINCT`] times the
/// ground's own spread (a grey label printed on a radiograph's lung; 0030
/// of the corpus, an 8 px bitmap font 7 levels darker than the lung).
/// Radiograph texture gives many such rows, and ranks close to real text
/// (0030's line came first of three at 4.0 against 3.3): at most
/// [`MAX_FAINT`] are looked at, three times enlarged at most, each with
/// [`FAINT_REACH`] heights of room each side (the part found is often a
/// word of the line), and only in single grey images (radiographs, where
/// grey labels are printed; a photo's texture gave 99 such rows).
const FAINT_INK: f32 = 5.0;
const LIT: f32 = 40.0;
const DISTINCT: f32 = 3.0;
pub const MAX_FAINT: usize = 3;
const FAINT_REACH: usize = 6;

/// One place to search enlarged, and how many times. `faint`: its glyphs
/// barely stand out of lit ground, and the detector is shown the crop with
/// the shading taken out and the contrast stretched ([`super::zoom`]'s
/// detail view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub area: Rect,
    pub scale: usize,
    pub faint: bool,
}

/// A row of glyph-like ink: its box, how far its ink stands from the
/// ground round it (median), and that ground's mean and spread.
#[derive(Clone, Copy, Debug)]
struct Row {
    b: Rect,
    contrast: f32,
    ground: f32,
    spread: f32,
}

/// The places in `rgb` (`w × h`, which the detector saw at `seen` times
/// its size) where a row of glyphs too small for it stands on flat ground
/// that `filled` does not already cover: clear ones not wholly inside one of
/// its boxes (at most [`MAX_LOOKS`], in reading order: a small line just
/// above a large one is often boxed with it, and that box's fill cuts its
/// letters in half) and, with `faint`, faint ones on lit ground clear of
/// all its boxes (at most [`MAX_FAINT`], the most distinct first).
pub fn places(
    rgb: &[u8],
    w: usize,
    h: usize,
    seen: f64,
    filled: &[Rect],
    faint: bool,
) -> Vec<Place> {
    let (lum, mean) = levels(rgb, w, h);
    let small = |b: &Rect| {
        let (bw, bh) = (b.x1 - b.x0, b.y1 - b.y0);
        bh >= 3 && bh as f64 * seen <= MAX_SEEN_HEIGHT as f64 && bw >= 2 * bh && bw >= 10
    };
    let clear: Vec<Row> = rows(&lum, &mean, w, h, INK, |b| {
        small(b) && !filled.iter().any(|f| f.contains(b))
    })
    .into_iter()
    .filter(|r| r.spread <= FLAT)
    .collect();
    let mut out = to_places(&clear, w, h, 2, MAX_LOOKS, false);
    if !faint {
        return out;
    }
    let mut rows_faint: Vec<Row> = rows(&lum, &mean, w, h, FAINT_INK, |b| {
        small(b) && !filled.iter().any(|f| f.overlaps(b)) && !out.iter().any(|p| p.area.overlaps(b))
    })
    .into_iter()
    .filter(|r| r.contrast < INK && r.ground >= LIT && r.spread * DISTINCT <= r.contrast)
    .collect();
    // The most distinct first; ties in the order found (light rows, then
    // dark, each in scan order: a stable sort), so the choice is the same
    // on every run.
    rows_faint.sort_by(|a, b| {
        (b.contrast / b.spread.max(0.5)).total_cmp(&(a.contrast / a.spread.max(0.5)))
    });
    rows_faint.truncate(MAX_FAINT);
    out.extend(to_places(&rows_faint, w, h, FAINT_REACH, MAX_FAINT, true));
    out
}

/// The boxes of the rows of clear glyph-like ink on flat ground in `rgb`
/// (`w × h`) whose box `shape` accepts (the check of frames not searched,
/// [`super::transient`]).
pub fn clear_rows(rgb: &[u8], w: usize, h: usize, shape: impl Fn(&Rect) -> bool) -> Vec<Rect> {
    let (lum, mean) = levels(rgb, w, h);
    rows(&lum, &mean, w, h, INK, shape)
        .into_iter()
        .filter(|r| r.spread <= FLAT)
        .map(|r| r.b)
        .collect()
}

/// Each pixel's luminance, and its mean over the square [`RADIUS`] round it.
fn levels(rgb: &[u8], w: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let lum: Vec<f32> = rgb.chunks_exact(3).map(|p| luminance(p) as f32).collect();
    let mean = box_mean(&lum, w, h, RADIUS);
    (lum, mean)
}

/// A row's box with room round it to search: `reach` of its heights
/// sideways, one up and down, clipped to `w × h`.
pub fn around(b: &Rect, reach: usize, w: usize, h: usize) -> Rect {
    let bh = b.y1 - b.y0;
    Rect {
        x0: b.x0.saturating_sub(reach * bh),
        y0: b.y0.saturating_sub(bh),
        x1: b.x1 + reach * bh,
        y1: b.y1 + bh,
    }
    .clip(w, h)
}

/// `rows` grown (`reach` heights sideways, one up and down), overlapping
/// ones joined, at most `max` of them, each enlarged towards [`TARGET`].
fn to_places(
    rows: &[Row],
    w: usize,
    h: usize,
    reach: usize,
    max: usize,
    faint: bool,
) -> Vec<Place> {
    let grown: Vec<(Rect, usize)> = rows
        .iter()
        .map(|r| (around(&r.b, reach, w, h), r.b.y1 - r.b.y0))
        .collect();
    merge(grown.iter().map(|p| p.0).collect())
        .into_iter()
        .take(max)
        .map(|area| {
            let least = grown
                .iter()
                .filter(|p| area.contains(&p.0))
                .map(|p| p.1)
                .min()
                .unwrap_or(MAX_SEEN_HEIGHT);
            Place {
                area,
                scale: TARGET
                    .div_ceil(least.max(1))
                    .clamp(2, if faint { 3 } else { 4 }),
                faint,
            }
        })
        .collect()
}

/// The rows of ink at least `threshold` levels off the local mean, light
/// and dark apart (between light strokes the ground is as far below the
/// mean as the strokes are above it), with a glyph-like share of ink, whose
/// box `shape` accepts (tested first: at a faint threshold a radiograph's
/// texture gives thousands of groups, most of the wrong size).
fn rows(
    lum: &[f32],
    mean: &[f32],
    w: usize,
    h: usize,
    threshold: f32,
    shape: impl Fn(&Rect) -> bool,
) -> Vec<Row> {
    let mut out = Vec::new();
    for sign in [1.0f32, -1.0] {
        let ink: Vec<bool> = lum
            .iter()
            .zip(mean)
            .map(|(v, m)| sign * (v - m) >= threshold)
            .collect();
        // Labelled only once a group needs its glyphs counted.
        let mut glyphs: Option<Vec<u32>> = None;
        for b in groups(&joined_along_rows(&ink, w, h), w, h) {
            if !shape(&b) {
                continue;
            }
            let share = count(&ink, w, &b) as f32 / b.area() as f32;
            if !(0.1..=0.8).contains(&share) {
                continue;
            }
            let labels = glyphs.get_or_insert_with(|| Components::of(&ink, [w, h, 1]).label);
            if distinct(labels, w, &b) < MIN_GLYPHS {
                continue;
            }
            let Some((ground, spread)) = ground(lum, &ink, w, h, &b) else {
                continue;
            };
            let mut off: Vec<f32> = (b.y0..b.y1)
                .flat_map(|y| (b.x0..b.x1).map(move |x| y * w + x))
                .filter(|&i| ink[i])
                .map(|i| (lum[i] - ground).abs())
                .collect();
            let mid = off.len() / 2;
            let contrast = *off.select_nth_unstable_by(mid, f32::total_cmp).1;
            out.push(Row {
                b,
                contrast,
                ground,
                spread,
            });
        }
    }
    out
}

/// `set` with gaps of up to [`JOIN`] pixels between set pixels of a row
/// filled.
fn joined_along_rows(set: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut joined = set.to_vec();
    for y in 0..h {
        let mut last: Option<usize> = None;
        for x in 0..w {
            if !set[y * w + x] {
                continue;
            }
            if let Some(l) = last {
                if x - l > 1 && x - l <= JOIN + 1 {
                    joined[y * w + l + 1..y * w + x].fill(true);
                }
            }
            last = Some(x);
        }
    }
    joined
}

/// Bounding boxes of the 4-connected groups of set pixels.
fn groups(set: &[bool], w: usize, h: usize) -> Vec<Rect> {
    let c = Components::of(set, [w, h, 1]);
    let mut out = vec![
        Rect {
            x0: w,
            y0: h,
            x1: 0,
            y1: 0
        };
        c.count as usize
    ];
    for (i, &l) in c.label.iter().enumerate() {
        if l > 0 {
            let (x, y) = (i % w, i / w);
            let b = &mut out[l as usize - 1];
            *b = Rect {
                x0: b.x0.min(x),
                y0: b.y0.min(y),
                x1: b.x1.max(x + 1),
                y1: b.y1.max(y + 1),
            };
        }
    }
    out
}

/// How many different glyphs (separate groups of ink) lie in `r`.
fn distinct(labels: &[u32], w: usize, r: &Rect) -> usize {
    let mut seen: Vec<u32> = (r.y0..r.y1)
        .flat_map(|y| labels[y * w + r.x0..y * w + r.x1].iter().copied())
        .filter(|&l| l > 0)
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

fn count(set: &[bool], w: usize, r: &Rect) -> usize {
    (r.y0..r.y1)
        .map(|y| {
            set[y * w + r.x0..y * w + r.x1]
                .iter()
                .filter(|&&s| s)
                .count()
        })
        .sum()
}

/// The mean and standard deviation of the ground round `b`: the ring from
/// one to three pixels out (a glyph's anti-aliased edge reaches a pixel
/// beyond its ink), ink of other glyphs left out. `None` when too little
/// of it is ground.
fn ground(lum: &[f32], ink: &[bool], w: usize, h: usize, b: &Rect) -> Option<(f32, f32)> {
    let (inner, outer) = (b.grow(1), b.grow(3).clip(w, h));
    let (mut n, mut s, mut s2) = (0f64, 0f64, 0f64);
    for y in outer.y0..outer.y1 {
        for x in outer.x0..outer.x1 {
            let i = y * w + x;
            if ink[i] || (inner.x0..inner.x1).contains(&x) && (inner.y0..inner.y1).contains(&y) {
                continue;
            }
            let v = lum[i] as f64;
            (n, s, s2) = (n + 1.0, s + v, s2 + v * v);
        }
    }
    if n < 8.0 {
        return None;
    }
    let var = (s2 / n - (s / n).powi(2)).max(0.0);
    Some(((s / n) as f32, var.sqrt() as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w × h` image of `ground` with 1-px upright strokes of `ink`,
    /// `height` high from row `y`, every other column of `x0..x1`.
    fn strokes(w: usize, h: usize, ground: u8, ink: u8, y: usize, height: usize) -> Vec<u8> {
        let mut rgb = vec![ground; w * h * 3];
        for yy in y..y + height {
            for x in (40..100).step_by(2) {
                rgb[(yy * w + x) * 3..(yy * w + x) * 3 + 3].fill(ink);
            }
        }
        rgb
    }

    #[test]
    fn a_row_of_small_glyphs_on_a_dark_band_is_a_place() {
        let rgb = strokes(200, 60, 8, 220, 40, 7);
        let p = places(&rgb, 200, 60, 1.0, &[], false);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].area.contains(&Rect::at(40, 40, 99, 47)), "{p:?}");
        assert_eq!(p[0].scale, 3);
    }

    #[test]
    fn text_the_detector_saw_large_enough_or_already_found_is_not() {
        let rgb = strokes(200, 60, 8, 220, 40, 7);
        // Searched twice enlarged: 14 px to the detector.
        assert!(places(&rgb, 200, 60, 2.0, &[], false).is_empty());
        // Inside a box already found.
        assert!(places(&rgb, 200, 60, 1.0, &[Rect::at(30, 30, 120, 55)], false).is_empty());
        // Partly under a box found (the fill of a larger line below it): a
        // place all the same.
        assert_eq!(
            places(&rgb, 200, 60, 1.0, &[Rect::at(30, 44, 120, 60)], false).len(),
            1
        );
        // Too tall for small text.
        let tall = strokes(200, 60, 8, 220, 20, 16);
        assert!(places(&tall, 200, 60, 1.0, &[], false).is_empty());
    }

    #[test]
    fn glyphs_over_grainy_ground_are_not_a_place() {
        // Speckle: every pixel ±30 levels at random round 100.
        let mut rgb = strokes(200, 60, 100, 250, 40, 7);
        let mut s = 7u32;
        for px in rgb.chunks_exact_mut(3) {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            if px[0] == 100 {
                px.fill((70 + (s >> 16) % 61) as u8);
            }
        }
        assert!(places(&rgb, 200, 60, 1.0, &[], false).is_empty());
    }
}
