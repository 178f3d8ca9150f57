//! Where the text is: the detector run on a sampled set of frames and, for
//! longer cines, on their static layer (the pixels that are the same in
//! every frame: overlays, labels, scales; moving anatomy blacked out), the
//! boxes grown by a margin, merged where they touch, in image pixels.
//! Small images are enlarged first: the detector sees text best when it is
//! at least about 10 px high.

use super::bright;
use super::frames::{Frames, Rect};
use super::rects::merge;
use super::{small, strokes, transient, zoom};
use crate::config::TextConfig;
use crate::models::text::reader::crop_rgb;
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

/// One line the detector found in one of the searched images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    /// The detector's box (what the recogniser reads).
    pub found: Rect,
    /// The box grown by the margin: what is filled.
    pub fill: Rect,
    /// Index into [`Search::images`].
    pub image: usize,
}

/// Every line found, and the rendered RGB images they were found in.
pub struct Search {
    pub images: Vec<Vec<u8>>,
    pub lines: Vec<Line>,
    /// The stored grey range the images were rendered over (`None` for
    /// colour), kept for later looks at the frames.
    pub grey_range: Option<(i64, i64)>,
}

/// The text lines of `f`: the sampled frames and (for longer cines) the
/// static layer, each searched.
pub fn find(f: &Frames, det: &TextDetector, cfg: &TextConfig) -> anyhow::Result<Search> {
    let (scan_frames, margin) = (cfg.scan_frames, cfg.margin as usize);
    let long = f.width.max(f.height);
    // Up to `enlarge` times, towards 960 px (where the detector was tuned).
    let enlarge = if long <= cfg.enlarge_below {
        (960.0 / long as f64).round().clamp(1.0, cfg.enlarge as f64) as usize
    } else {
        1
    };
    let range = matches!(f.colour, super::frames::Colour::Grey { .. }).then(|| f.grey_range());
    let mut images: Vec<Vec<u8>> = sampled(f.frames, scan_frames)
        .into_iter()
        .map(|i| f.render(f.frame(i), range))
        .collect();
    let has_static_layer = f.frames > scan_frames;
    if has_static_layer {
        images.push(static_layer(f, range));
    }
    let mut lines = Vec::new();
    for (n, rgb) in images.iter().enumerate() {
        let full = det.config.max_side;
        let mut boxes = detect(det, rgb, f.width, f.height, enlarge, full)?;
        if cfg.second_pass {
            let more = second_pass(det, rgb, f.width, f.height, enlarge, cfg)?;
            boxes = add_new_lines(boxes, more, margin);
        }
        let (mut found, implausible): (Vec<Rect>, Vec<Rect>) = boxes
            .into_iter()
            .partition(|r| is_line(r, f.height, cfg.max_line_height));
        if cfg.zoom && !has_static_layer {
            found = look_closer(det, rgb, f, found, &implausible, cfg)?;
        }
        if cfg.small_text {
            let seen = enlarge as f64 * (full as f64 / (long * enlarge) as f64).min(1.0);
            found = look_at_small_text(det, rgb, f, found, seen, cfg)?;
        }
        tracing::debug!(image = n, boxes = ?found, ?implausible, "text boxes");
        lines.extend(found.into_iter().map(|r| Line {
            found: r.clip(f.width, f.height),
            fill: grow_line(r, margin).clip(f.width, f.height),
            image: n,
        }));
    }
    if has_static_layer {
        let searched = sampled(f.frames, scan_frames);
        look_at_unsearched_frames(det, f, range, &searched, cfg, &mut images, &mut lines)?;
    }
    Ok(Search {
        images,
        lines,
        grey_range: range,
    })
}

/// The lines a check of the frames not searched finds ([`transient`]):
/// each place searched enlarged towards 20 px letters in its own frame,
/// whose rendering joins `images` when a line is found there.
fn look_at_unsearched_frames(
    det: &TextDetector,
    f: &Frames,
    range: Option<(i64, i64)>,
    searched: &[usize],
    cfg: &TextConfig,
    images: &mut Vec<Vec<u8>>,
    lines: &mut Vec<Line>,
) -> anyhow::Result<()> {
    let margin = cfg.margin as usize;
    let mut rendered: Option<(usize, usize)> = None; // (frame, index in images)
    for place in transient::places(f, range, searched) {
        let rgb = f.render(f.frame(place.frame), range);
        let a = place.area;
        let crop = crop_rgb(&rgb, f.width, (a.x0, a.y0, a.x1, a.y1));
        let s = 20usize.div_ceil(place.text_height.max(1)).clamp(1, 3);
        let mut boxes = search_view(det, &crop, a, s)?;
        boxes.retain(|r| is_line(r, f.height, cfg.max_line_height));
        tracing::debug!(?place, ?boxes, "frame not searched checked");
        if boxes.is_empty() {
            continue;
        }
        let image = match rendered {
            Some((frame, n)) if frame == place.frame => n,
            _ => {
                images.push(rgb);
                rendered = Some((place.frame, images.len() - 1));
                images.len() - 1
            }
        };
        lines.extend(boxes.into_iter().map(|r| Line {
            found: r.clip(f.width, f.height),
            fill: grow_line(r, margin).clip(f.width, f.height),
            image,
        }));
    }
    Ok(())
}

/// The second pass: the parts of `rgb` with bright ground searched again
/// with the highlights inverted, and the parts with saturated colour with
/// the least channel inverted the same way ([`bright::regions`]), at the
/// first pass's scale, except that images larger than
/// `second_pass_max_side` are searched shrunk to it (the detector's own
/// resize; a crop at the same scale).
fn second_pass(
    det: &TextDetector,
    rgb: &[u8],
    w: usize,
    h: usize,
    enlarge: usize,
    cfg: &TextConfig,
) -> anyhow::Result<Vec<Rect>> {
    let long = w.max(h);
    let full = det.config.max_side;
    let cap = if long > cfg.second_pass_max_side {
        full.min(cfg.second_pass_max_side.max(32))
    } else {
        full
    };
    // The scale the whole (enlarged) image would be searched at.
    let ratio = (cap as f64 / (long * enlarge) as f64).min(1.0);
    let mut boxes = Vec::new();
    for ground in [bright::Ground::Bright, bright::Ground::Colour] {
        let regions = merge(bright::regions(rgb, w, h, ground));
        if regions.is_empty() {
            continue;
        }
        let mapped = match ground {
            bright::Ground::Bright => highlights_inverted(rgb),
            bright::Ground::Colour => least_channel_inverted(rgb),
        };
        for r in regions {
            boxes.extend(search_region(det, &mapped, w, h, r, enlarge, ratio)?);
        }
    }
    Ok(boxes)
}

/// The boxes in region `r` of `mapped` (`w × h`), searched at `ratio` of
/// the enlarged size. A line cut by the region's edge runs on outside it
/// (often into darker ground, where the first pass may have found only a
/// part): the region is widened on that side, and the rows of the cut
/// lines are searched again across the wider region
/// ([`bright::cut_band`]); their boxes replace those found there before.
fn search_region(
    det: &TextDetector,
    mapped: &[u8],
    w: usize,
    h: usize,
    r: Rect,
    enlarge: usize,
    ratio: f64,
) -> anyhow::Result<Vec<Rect>> {
    let mut found = search_crop(det, mapped, w, r, enlarge, ratio)?;
    let mut reach = r;
    for _ in 0..bright::MAX_WIDENINGS {
        let Some(wider) = bright::widened(reach, &found, w, h) else {
            break;
        };
        let band = bright::cut_band(reach, wider, &found, w, h);
        let again = search_crop(det, mapped, w, band, enlarge, ratio)?;
        found.retain(|b| !band.contains(b));
        found.extend(again);
        reach = wider;
    }
    Ok(found)
}

/// The boxes in `view` (what the detector is shown of `area`: a crop, as
/// it is or mapped), searched `s` times enlarged and at most
/// [`zoom::MAX_SIDE`] long, in image pixels.
fn search_view(det: &TextDetector, view: &[u8], area: Rect, s: usize) -> anyhow::Result<Vec<Rect>> {
    let (cw, ch) = (area.x1 - area.x0, area.y1 - area.y0);
    let max_side = (cw.max(ch) * s).clamp(32, zoom::MAX_SIDE);
    Ok(detect(det, view, cw, ch, s, max_side)?
        .into_iter()
        .map(|b| b.shifted(area.x0, area.y0))
        .collect())
}

/// The boxes in `r` of `mapped` (`w` wide), in image pixels.
fn search_crop(
    det: &TextDetector,
    mapped: &[u8],
    w: usize,
    r: Rect,
    enlarge: usize,
    ratio: f64,
) -> anyhow::Result<Vec<Rect>> {
    let (cw, ch) = (r.x1 - r.x0, r.y1 - r.y0);
    let max_side = ((cw.max(ch) * enlarge) as f64 * ratio).ceil() as usize;
    let crop = crop_rgb(mapped, w, (r.x0, r.y0, r.x1, r.y1));
    Ok(detect(det, &crop, cw, ch, enlarge, max_side.max(32))?
        .into_iter()
        .map(|b| b.shifted(r.x0, r.y0))
        .collect())
}

/// `found` and the new lines a closer look ([`zoom`]) at its lines on lit
/// ground and at the `implausible` boxes finds; lines new in that look are
/// looked at once more (a line found in a blob is often a part of one);
/// every line on lit ground then widened over the strokes that continue it
/// ([`strokes`]).
fn look_closer(
    det: &TextDetector,
    rgb: &[u8],
    f: &Frames,
    mut found: Vec<Rect>,
    implausible: &[Rect],
    cfg: &TextConfig,
) -> anyhow::Result<Vec<Rect>> {
    let (mut seeds, mut blobs) = (found.clone(), implausible.to_vec());
    for _round in 0..2 {
        let mut more = Vec::new();
        for place in zoom::places(rgb, f.width, f.height, &seeds, &blobs) {
            let (view, _, _, s) = zoom::view(rgb, f.width, &place);
            more.extend(search_view(det, &view, place.area, s)?);
        }
        more.retain(|r| is_line(r, f.height, cfg.max_line_height));
        let before = found.len();
        found = add_new_lines(found, more, cfg.margin as usize);
        seeds = found[before..].to_vec();
        blobs = Vec::new();
        if seeds.is_empty() {
            break;
        }
    }
    for r in found.iter_mut() {
        if zoom::on_lit_ground(rgb, f.width, f.height, r) {
            let wider = strokes::extended(rgb, f.width, f.height, *r);
            if wider != *r {
                tracing::debug!(from = ?*r, to = ?wider, "line widened over its strokes");
            }
            *r = wider;
        }
    }
    Ok(found)
}

/// `found` and the lines too small for the detector at the scale it saw the
/// image that an enlarged look at rows of small glyphs on flat ground
/// finds ([`small`]).
fn look_at_small_text(
    det: &TextDetector,
    rgb: &[u8],
    f: &Frames,
    found: Vec<Rect>,
    seen: f64,
    cfg: &TextConfig,
) -> anyhow::Result<Vec<Rect>> {
    let margin = cfg.margin as usize;
    let fills: Vec<Rect> = found.iter().map(|&r| grow_line(r, margin)).collect();
    let mut more = Vec::new();
    let grey = matches!(f.colour, super::frames::Colour::Grey { .. });
    let faint = grey && f.frames == 1;
    for place in small::places(rgb, f.width, f.height, seen, &fills, faint) {
        let a = place.area;
        let (cw, ch) = (a.x1 - a.x0, a.y1 - a.y0);
        let mut crop = crop_rgb(rgb, f.width, (a.x0, a.y0, a.x1, a.y1));
        if place.faint {
            crop = zoom::detail(&crop, cw, ch, (ch / 3).clamp(4, 24));
        }
        let boxes = search_view(det, &crop, a, place.scale)?;
        tracing::debug!(?place, ?boxes, "small text looked at");
        more.extend(boxes.into_iter().map(|b| {
            // Faint text on lit ground: often found a word at a time.
            if place.faint {
                strokes::extended(rgb, f.width, f.height, b)
            } else {
                b
            }
        }));
    }
    more.retain(|r| is_line(r, f.height, cfg.max_line_height));
    Ok(add_new_lines(found, more, margin))
}

/// The first pass's boxes and those of the second that are new: a box that
/// lies wholly inside what one of the first pass's lines fills is that line
/// found again (read once, so an allow-listed line is not filled because
/// its second box read a little differently).
fn add_new_lines(mut first: Vec<Rect>, second: Vec<Rect>, margin: usize) -> Vec<Rect> {
    let fills: Vec<Rect> = first.iter().map(|&r| grow_line(r, margin)).collect();
    first.extend(
        second
            .into_iter()
            .filter(|b| !fills.iter().any(|f| f.contains(b))),
    );
    first
}

/// Whether a detected box can be a line of text: no taller than
/// `max_share` of the image (at least 48 px), unless it is also at least
/// twice as wide as tall. The detector takes rib and trabecular patterns of
/// radiographs for text in big squarish boxes; a real line is short or long.
pub fn is_line(r: &Rect, image_height: usize, max_share: f32) -> bool {
    let (w, h) = (r.x1 - r.x0, r.y1 - r.y0);
    let limit = ((image_height as f32 * max_share) as usize).max(48);
    h <= limit || w >= 2 * h
}

/// A line's box grown by `margin`, and by a share of its height: the
/// detector's box can stop short of descenders, accents and the last glyphs
/// (sideways by the full height: half of it left "AM" of "11:41 AM" in
/// 0089 of the corpus).
fn grow_line(r: Rect, margin: usize) -> Rect {
    let h = r.y1 - r.y0;
    let (dx, dy) = (margin.max(h), margin.max(h / 4));
    Rect {
        x0: r.x0.saturating_sub(dx),
        y0: r.y0.saturating_sub(dy),
        x1: r.x1 + dx,
        y1: r.y1 + dy,
    }
}

/// The detector's boxes in image pixels, the image enlarged `s` times and
/// the network input's longer side capped at `max_side`.
fn detect(
    det: &TextDetector,
    rgb: &[u8],
    w: usize,
    h: usize,
    s: usize,
    max_side: usize,
) -> anyhow::Result<Vec<Rect>> {
    let (big, bw, bh) = if s == 1 {
        (std::borrow::Cow::Borrowed(rgb), w, h)
    } else {
        (std::borrow::Cow::Owned(enlarge(rgb, w, h, s)), w * s, h * s)
    };
    Ok(det
        .detect_within(&big, bw, bh, max_side)?
        .into_iter()
        .map(|b| Rect {
            x0: b.x0 as usize / s,
            y0: b.y0 as usize / s,
            x1: (b.x1 as usize).div_ceil(s),
            y1: (b.y1 as usize).div_ceil(s),
        })
        .collect())
}

/// The rendering searched by the second pass: each sample darkened by a
/// power of 2.5 (spreading out the bright end, where white text sits over
/// bright content) and then inverted (the detector finds dark text on a
/// light ground more surely than light text on speckle).
fn highlights_inverted(rgb: &[u8]) -> Vec<u8> {
    let lut = highlights_lut();
    rgb.iter().map(|&v| lut[v as usize]).collect()
}

/// `255 − 255·(v/255)^2.5` for every 8-bit `v`.
fn highlights_lut() -> [u8; 256] {
    std::array::from_fn(|v| 255 - (255.0 * (v as f64 / 255.0).powf(2.5)).round() as u8)
}

/// The rendering the colour look searches: each pixel's least channel
/// through [`highlights_inverted`]'s mapping, as grey. White text keeps a
/// high least channel over saturated colour, whose least channel is low.
fn least_channel_inverted(rgb: &[u8]) -> Vec<u8> {
    let lut = highlights_lut();
    rgb.chunks_exact(3)
        .flat_map(|p| [lut[p[0].min(p[1]).min(p[2]) as usize]; 3])
        .collect()
}

/// Nearest-neighbour enlargement by `s` (keeps glyph edges sharp).
fn enlarge(rgb: &[u8], w: usize, h: usize, s: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgb.len() * s * s);
    for y in 0..h * s {
        let row = &rgb[(y / s) * w * 3..(y / s + 1) * w * 3];
        for x in 0..w * s {
            out.extend_from_slice(&row[(x / s) * 3..(x / s) * 3 + 3]);
        }
    }
    out
}

/// The rendered pixels that are the same in every frame; the others black.
fn static_layer(f: &Frames, range: Option<(i64, i64)>) -> Vec<u8> {
    let first = f.render(f.frame(0), range);
    let px = f.pixel_len();
    let mut same = vec![true; f.width * f.height];
    let f0 = f.frame(0);
    for i in 1..f.frames {
        let fi = f.frame(i);
        for (p, s) in same.iter_mut().enumerate() {
            if *s && fi[p * px..(p + 1) * px] != f0[p * px..(p + 1) * px] {
                *s = false;
            }
        }
    }
    first
        .chunks_exact(3)
        .zip(&same)
        .flat_map(|(c, &s)| if s { [c[0], c[1], c[2]] } else { [0, 0, 0] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_pass_inverts_and_spreads_the_highlights() {
        let out = highlights_inverted(&[0, 128, 230, 255]);
        assert_eq!(out[0], 255);
        assert_eq!(out[3], 0);
        // 230 and 255 are 25 levels apart before, about 57 after.
        assert!(out[2] - out[3] > 50, "{out:?}");
        // The dark half is squeezed: 0 and 128 end up 46 levels apart.
        assert_eq!(out[0] - out[1], 46, "{out:?}");
    }

    #[test]
    fn the_colour_look_sets_white_apart_from_saturated_colour() {
        // White text, Doppler yellow and red, mid grey.
        let out = least_channel_inverted(&[255, 255, 255, 255, 230, 0, 200, 0, 0, 128, 128, 128]);
        assert_eq!(&out[..3], &[0, 0, 0]);
        assert_eq!(&out[3..9], &[255; 6]);
        assert_eq!(&out[9..], &[209, 209, 209]);
    }

    #[test]
    fn a_line_grows_by_its_height_sideways_and_a_quarter_up_and_down() {
        // 15 px high: 15 px more on each side, 3 (the margin) above and below.
        assert_eq!(
            grow_line(Rect::at(100, 10, 200, 25), 3),
            Rect::at(85, 7, 215, 28)
        );
    }

    #[test]
    fn a_line_found_again_by_the_second_pass_is_kept_once() {
        let first = vec![Rect::at(100, 10, 200, 22)]; // fills 88..212 x 7..25
        let second = vec![
            Rect::at(98, 9, 203, 23),
            Rect::at(85, 9, 203, 23),
            Rect::at(300, 50, 340, 60),
        ];
        assert_eq!(
            add_new_lines(first, second, 3),
            vec![
                Rect::at(100, 10, 200, 22),
                Rect::at(85, 9, 203, 23),
                Rect::at(300, 50, 340, 60)
            ]
        );
    }

    #[test]
    fn the_second_pass_sees_a_radiograph_at_half_size() {
        // 1955 x 1841 under a 1024 cap: the detector's own resize.
        let (w, h) = crate::models::text::network_size(1955, 1841, 1.0, 1024);
        assert_eq!((w, h), (1024, 960));
    }

    #[test]
    fn sampling_keeps_first_and_last() {
        assert_eq!(sampled(3, 16), vec![0, 1, 2]);
        let s = sampled(100, 5);
        assert_eq!(s.len(), 5);
        assert_eq!((s[0], s[4]), (0, 99));
    }

    #[test]
    fn squarish_boxes_taller_than_a_line_are_not_text() {
        // A chest radiograph's false hit (548 x 783 px of 1841 rows).
        assert!(!is_line(&Rect::at(985, 152, 1533, 935), 1841, 0.06));
        // A lead marker letter, a label line, a tall but long title.
        assert!(is_line(&Rect::at(1141, 1380, 1228, 1483), 1760, 0.06));
        assert!(is_line(&Rect::at(0, 0, 300, 14), 240, 0.06));
        assert!(is_line(&Rect::at(0, 0, 900, 150), 1841, 0.06));
        // Small images: at least 48 px.
        assert!(is_line(&Rect::at(0, 0, 40, 40), 240, 0.06));
    }
}
