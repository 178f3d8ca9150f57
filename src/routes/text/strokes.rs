//! How far a line's strokes run along its row. On lit ground the detector
//! often boxes a faint line only from where it stands out ("JOHN ID 4471920"
//! of "DOE^JOHN ID 4471920" where a rib crosses "DOE^"), and a closer look
//! finds the same part again. The glyphs beside the box still change
//! across the row as sharply as those inside it: the box is widened over
//! the columns that hold such strokes, across gaps no wider than a letter
//! or two lost in the ground (see [`GAP`]) and crossings of texture no wider than two heights, up to
//! six heights each side.

use super::frames::Rect;
use super::zoom::luminance;
use crate::models::text::reader::crop_rgb;

/// A gap of this many line heights without strokes ends the line. A word
/// space is well under one; letters as light as the ground under them leave
/// a longer one ("orn" of "Born 09-May-1932" over a vertebra, 0094 of the
/// corpus, about 1.2 box heights, left its "B" at 0.8). At 1.6 the walk
/// crossed 50 px of a chest radiograph's texture beside the label of
/// `tests/text_after.rs`.
const GAP: f32 = 1.3;
/// At most this many line heights are added on each side.
const REACH: usize = 6;
/// A column holds strokes when its share of stroke pixels is at least this
/// share of the box's mean.
const COLUMN_SHARE: f32 = 0.3;

/// `r` widened along its row over the strokes that continue it in `rgb`
/// (`w × h`). A column continues the line where it holds strokes in the
/// line's band and clearly fewer in the bands of the same height above and
/// below it: texture (ribs, trabeculae, speckle) runs on across all three.
pub fn extended(rgb: &[u8], w: usize, h: usize, r: Rect) -> Rect {
    let lh = r.y1 - r.y0;
    if lh < 4 || r.x1 <= r.x0 || r.y1 > h || r.x1 > w {
        return r;
    }
    let x0 = r.x0.saturating_sub(REACH * lh);
    let x1 = (r.x1 + REACH * lh).min(w);
    let (y0, y1) = (r.y0.saturating_sub(lh), (r.y1 + lh).min(h));
    let (cw, ch) = (x1 - x0, y1 - y0);
    let crop = crop_rgb(rgb, w, (x0, y0, x1, y1));
    let lum: Vec<f32> = crop.chunks_exact(3).map(|p| luminance(p) as f32).collect();
    // Across-the-row change: glyphs' upright strokes give it, shading and
    // edges that run along the row (a clavicle, a band's border) do not.
    let diff: Vec<f32> = (0..ch * cw)
        .map(|i| {
            let x = i % cw;
            let (a, b) = (x.saturating_sub(1), (x + 1).min(cw - 1));
            lum[i - x + b] - lum[i - x + a]
        })
        .collect();
    let band = (r.y0 - y0)..(r.y1 - y0);
    // Strokes: pixels changing at least half as much as the box's own
    // strongest tenth.
    let mut inside: Vec<f32> = band
        .clone()
        .flat_map(|y| (r.x0 - x0..r.x1 - x0).map(move |x| (y, x)))
        .map(|(y, x)| diff[y * cw + x].abs())
        .collect();
    let k = (inside.len() * 9 / 10).min(inside.len() - 1);
    let strong = *inside.select_nth_unstable_by(k, f32::total_cmp).1;
    if strong < 2.0 {
        return r;
    }
    let share = |rows: std::ops::Range<usize>, x: usize| {
        let n = rows.len().max(1) as f32;
        rows.filter(|&y| diff[y * cw + x].abs() >= strong / 2.0)
            .count() as f32
            / n
    };
    let smooth = |v: Vec<f32>| -> Vec<f32> {
        let k = (lh / 3).max(1);
        (0..v.len())
            .map(|x| {
                let (a, b) = (x.saturating_sub(k), (x + k + 1).min(v.len()));
                v[a..b].iter().sum::<f32>() / (b - a) as f32
            })
            .collect()
    };
    let within = smooth((0..cw).map(|x| share(band.clone(), x)).collect());
    let outside = smooth(
        (0..cw)
            .map(|x| share(0..band.start, x).max(share(band.end..ch, x)))
            .collect(),
    );
    let mean = within[r.x0 - x0..r.x1 - x0].iter().sum::<f32>() / (r.x1 - r.x0) as f32;
    // A column with strokes in the band that also has them above or below
    // (a rib crossing the line) neither continues the line nor ends it, for
    // up to two heights: the line may go on beyond.
    let strokes = |x: usize| within[x] >= COLUMN_SHARE * mean;
    let alone = |x: usize| within[x] >= 2.0 * outside[x];
    let gap = ((GAP * lh as f32) as usize).max(2);
    let walk = |cols: &mut dyn Iterator<Item = usize>, start: usize| {
        let (mut last, mut missed, mut crossed) = (start, 0, 0);
        for x in cols {
            if strokes(x) && alone(x) {
                (last, missed, crossed) = (x, 0, 0);
            } else if strokes(x) {
                crossed += 1;
                if crossed > 2 * lh {
                    break;
                }
            } else {
                missed += 1;
                if missed > gap {
                    break;
                }
            }
        }
        last
    };
    let left = walk(&mut (0..r.x0 - x0).rev(), r.x0 - x0);
    let right = walk(&mut (r.x1 - x0..cw), r.x1 - x0 - 1);
    Rect {
        x0: x0 + left,
        y0: r.y0,
        x1: x0 + right + 1,
        y1: r.y1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grey ramp 200 wide and 40 high with vertical 1-px strokes, 6 levels
    /// above the ramp, every 3 columns in `runs`.
    fn image(runs: &[(usize, usize)]) -> Vec<u8> {
        let (w, h) = (200, 40);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let stroke = (14..26).contains(&y)
                    && x % 3 == 0
                    && runs.iter().any(|&(a, b)| (a..b).contains(&x));
                let v = (80 + x / 4) as u8 + if stroke { 6 } else { 0 };
                rgb.extend_from_slice(&[v, v, v]);
            }
        }
        rgb
    }

    #[test]
    fn a_box_over_part_of_a_line_is_widened_to_its_strokes() {
        let rgb = image(&[(60, 150)]);
        let r = Rect::at(100, 12, 140, 28);
        let e = extended(&rgb, 200, 40, r);
        assert!(e.x0 <= 61 && e.x0 >= 55, "{e:?}");
        assert!(e.x1 >= 148 && e.x1 <= 152, "{e:?}");
        assert_eq!((e.y0, e.y1), (12, 28));
    }

    #[test]
    fn a_gap_wider_than_a_letter_space_ends_the_line() {
        // Strokes 60..90, then a 30 px gap (about two heights), then 120..150.
        let rgb = image(&[(60, 90), (120, 150)]);
        let e = extended(&rgb, 200, 40, Rect::at(125, 12, 145, 28));
        assert!(e.x0 >= 110, "crossed the gap: {e:?}");
        assert!(e.x1 >= 148, "{e:?}");
    }

    #[test]
    fn letters_lost_in_the_ground_do_not_end_the_line() {
        // Strokes 40..74, 18 px (1.1 heights) as light as the ground, then
        // the boxed part 92..150.
        let rgb = image(&[(40, 74), (92, 150)]);
        let e = extended(&rgb, 200, 40, Rect::at(100, 12, 145, 28));
        assert!(e.x0 <= 42, "stopped at the gap: {e:?}");
        assert!(e.x1 >= 148, "{e:?}");
    }

    #[test]
    fn texture_that_runs_on_above_and_below_is_not_a_line() {
        // Strokes in every row (a hatched ground) left of the line's own.
        let (w, h) = (200, 40);
        let mut rgb = image(&[(120, 150)]);
        for y in 0..h {
            for x in (20..110).step_by(3) {
                for c in 0..3 {
                    rgb[(y * w + x) * 3 + c] += 6;
                }
            }
        }
        let e = extended(&rgb, w, h, Rect::at(125, 12, 145, 28));
        assert!(e.x0 >= 110, "walked into the texture: {e:?}");
    }

    #[test]
    fn a_box_past_the_image_edge_is_left_as_it_is() {
        let rgb = image(&[(60, 150)]);
        let r = Rect::at(150, 12, 205, 28);
        assert_eq!(extended(&rgb, 200, 40, r), r);
    }

    #[test]
    fn flat_ground_adds_nothing() {
        let rgb = vec![90u8; 200 * 40 * 3];
        let r = Rect::at(100, 12, 140, 28);
        assert_eq!(extended(&rgb, 200, 40, r), r);
    }
}
