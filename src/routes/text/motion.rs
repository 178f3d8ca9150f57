//! Whether anything fixed is drawn in a box of a cine. Burned-in text stays
//! put while the image moves under it, so some of a text box's pixels keep
//! their value in every frame (the strokes, and the ground of a label or a
//! dark band). A box in which every pixel changes holds moving content
//! only: where the detector fires on colour Doppler, for example. Such a box
//! is left unfilled only when the recogniser, too, reads nothing there (at
//! most one letter or digit; see [`super::policy`]).

use super::frames::{Colour, Frames, Rect};

/// Below this share of fixed pixels, a box holds moving content only. Text
/// over moving anatomy keeps its strokes (about a tenth of its box on the
/// corpus' thinnest lines); colour Doppler false alarms keep under 1 %.
pub const FIXED_SHARE_MIN: f64 = 0.02;

/// Whether nothing is fixed in `r`: under [`FIXED_SHARE_MIN`] of its
/// pixels keep their value. Never with fewer than 3 frames (two frames
/// that differ say too little). `grey_range`: as for [`fixed_share`].
pub fn moving(f: &Frames, r: Rect, grey_range: Option<(i64, i64)>) -> bool {
    f.frames >= 3 && fixed_share(f, r, grey_range) < FIXED_SHARE_MIN
}

/// Share of the pixels of `r` whose every sample stays within a tolerance
/// in every frame: 2 % of the grey range (lossy-compressed cines wobble by
/// a few values), 5 of 255 for colour, none for palette indices. 1.0 for a
/// single frame.
pub fn fixed_share(f: &Frames, r: Rect, grey_range: Option<(i64, i64)>) -> f64 {
    let r = r.clip(f.width, f.height);
    if f.frames < 2 || r.area() == 0 {
        return 1.0;
    }
    let tol = match &f.colour {
        Colour::Grey { .. } => {
            let (lo, hi) = grey_range.unwrap_or_else(|| f.grey_range());
            (hi - lo) / 50
        }
        Colour::Palette { .. } => 0,
        Colour::Rgb | Colour::YbrFull => 5 << (8 * (f.bytes - 1)),
    };
    let (px, bytes) = (f.pixel_len(), f.bytes);
    let mut fixed = 0usize;
    for y in r.y0..r.y1 {
        for x in r.x0..r.x1 {
            let at = (y * f.width + x) * px;
            let still = (0..f.samples).all(|s| {
                let b = at + s * bytes;
                let (mut lo, mut hi) = (i64::MAX, i64::MIN);
                for i in 0..f.frames {
                    let v = f.value(&f.frame(i)[b..b + bytes]);
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
                hi - lo <= tol
            });
            fixed += still as usize;
        }
    }
    fixed as f64 / r.area() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` frames of 40 × 20 grey pixels: a fixed bar in rows 8..12 over
    /// ground that changes every frame by `step` (0: still).
    fn cine(n: usize, step: u8) -> Frames {
        let (w, h) = (40, 20);
        let mut data = Vec::with_capacity(w * h * n);
        for f in 0..n {
            for y in 0..h {
                for x in 0..w {
                    let ground =
                        (((x * 3 + y * 2) % 200) as u8).wrapping_add(step.wrapping_mul(f as u8));
                    data.push(if (8..12).contains(&y) { 255 } else { ground });
                }
            }
        }
        Frames {
            width: w,
            height: h,
            frames: n,
            samples: 1,
            bytes: 1,
            bits_stored: 8,
            signed: false,
            colour: Colour::Grey { inverted: false },
            data,
        }
    }

    #[test]
    fn a_fixed_stroke_is_fixed_and_moving_ground_is_not() {
        let f = cine(5, 40);
        let stroke = Rect::at(0, 8, 40, 12);
        let ground = Rect::at(0, 0, 40, 8);
        assert_eq!(fixed_share(&f, stroke, None), 1.0);
        assert_eq!(fixed_share(&f, ground, None), 0.0);
        // A box over both: the stroke's share of it.
        let both = Rect::at(0, 4, 40, 14);
        assert!((fixed_share(&f, both, None) - 0.4).abs() < 1e-9);
        assert!(fixed_share(&f, ground, None) < FIXED_SHARE_MIN);
    }

    #[test]
    fn a_still_cine_and_a_single_frame_are_all_fixed() {
        assert_eq!(fixed_share(&cine(4, 0), Rect::at(0, 0, 40, 8), None), 1.0);
        assert_eq!(fixed_share(&cine(1, 40), Rect::at(0, 0, 40, 8), None), 1.0);
    }

    #[test]
    fn small_wobble_of_lossy_compression_counts_as_fixed() {
        // 2 of 255 per frame stays under 2 % of the range over 3 frames.
        assert_eq!(fixed_share(&cine(3, 2), Rect::at(0, 0, 40, 8), None), 1.0);
    }
}
