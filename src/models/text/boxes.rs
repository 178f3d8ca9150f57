//! DB post-processing (as PaddleOCR's `DBPostProcess`, "fast" score mode):
//! threshold the probability map, dilate by 2×2, take 8-connected
//! components, fit each a minimum-area (rotated) rectangle, score it by the
//! mean probability inside, "unclip" it (grow every side by
//! `area · ratio / perimeter`), and report the axis-aligned pixel box that
//! covers it in input-image coordinates.

/// A detected text region in input-image pixels: columns `x0..x1`, rows
/// `y0..y1` (inclusive-exclusive), with the mean text probability inside the
/// region before unclipping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub score: f32,
}

impl TextBox {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    /// Whether this box contains the rectangle `x0..x1 × y0..y1`.
    pub fn covers(&self, x0: u32, y0: u32, x1: u32, y1: u32) -> bool {
        self.x0 <= x0 && self.y0 <= y0 && self.x1 >= x1 && self.y1 >= y1
    }
}

/// Post-processing parameters; the defaults are PP-OCR's (rapidocr's
/// config.yaml).
#[derive(Clone, Copy, Debug)]
pub struct DbParams {
    /// Probability above which a pixel counts as text.
    pub thresh: f32,
    /// Minimum mean probability inside a candidate box.
    pub box_thresh: f32,
    /// Growth of the shrunk text kernel back to the text's extent.
    pub unclip_ratio: f32,
    /// Dilate the binary map by 2×2 before finding components.
    pub dilate: bool,
    /// At most this many components are considered (in scan order).
    pub max_candidates: usize,
}

impl Default for DbParams {
    fn default() -> Self {
        Self {
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            dilate: true,
            max_candidates: 1000,
        }
    }
}

/// Shortest side (in map pixels) of a component's rectangle to be kept,
/// before and (plus 2) after unclipping.
const MIN_SIZE: f32 = 3.0;

type Pt = (f32, f32);

/// Boxes from a `w × h` probability map computed for an image of
/// `dest_w × dest_h` pixels.
pub fn boxes_from_prob(
    prob: &[f32],
    w: usize,
    h: usize,
    p: &DbParams,
    dest_w: usize,
    dest_h: usize,
) -> Vec<TextBox> {
    assert_eq!(prob.len(), w * h, "probability map size");
    let mut bitmap: Vec<u8> = prob.iter().map(|&v| u8::from(v > p.thresh)).collect();
    if p.dilate {
        bitmap = dilate2x2(&bitmap, w, h);
    }
    let mut out = Vec::new();
    for comp in components(&bitmap, w, h).into_iter().take(p.max_candidates) {
        let hull = convex_hull(comp);
        let Some(rect) = min_area_rect(&hull) else {
            continue;
        };
        if rect.w.min(rect.h) < MIN_SIZE {
            continue;
        }
        let score = mean_inside(prob, w, h, &rect.corners());
        if score < p.box_thresh {
            continue;
        }
        let d = rect.w * rect.h * p.unclip_ratio / (2.0 * (rect.w + rect.h));
        let grown = Rect {
            w: rect.w + 2.0 * d,
            h: rect.h + 2.0 * d,
            ..rect
        };
        if grown.w.min(grown.h) < MIN_SIZE + 2.0 {
            continue;
        }
        let (sx, sy) = (dest_w as f32 / w as f32, dest_h as f32 / h as f32);
        let corners = grown.corners();
        let fold = |f: fn(f32, f32) -> f32, init: f32, get: fn(&Pt) -> f32| {
            corners.iter().map(get).fold(init, f)
        };
        let minx = fold(f32::min, f32::INFINITY, |c| c.0) * sx;
        let maxx = fold(f32::max, f32::NEG_INFINITY, |c| c.0) * sx;
        let miny = fold(f32::min, f32::INFINITY, |c| c.1) * sy;
        let maxy = fold(f32::max, f32::NEG_INFINITY, |c| c.1) * sy;
        let clampx = |v: f32| v.clamp(0.0, dest_w as f32) as u32;
        let clampy = |v: f32| v.clamp(0.0, dest_h as f32) as u32;
        let b = TextBox {
            x0: clampx(minx.floor()),
            y0: clampy(miny.floor()),
            x1: clampx(maxx.ceil() + 1.0),
            y1: clampy(maxy.ceil() + 1.0),
            score,
        };
        if b.x1 > b.x0 && b.y1 > b.y0 {
            out.push(b);
        }
    }
    out
}

/// `dst(x, y) = max(src(x-1..=x, y-1..=y))`, OpenCV's 2×2 dilation with
/// its default anchor.
fn dilate2x2(src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut dst = src.to_vec();
    for y in 0..h {
        for x in 0..w {
            let mut v = src[y * w + x];
            if x > 0 {
                v |= src[y * w + x - 1];
            }
            if y > 0 {
                v |= src[(y - 1) * w + x];
                if x > 0 {
                    v |= src[(y - 1) * w + x - 1];
                }
            }
            dst[y * w + x] = v;
        }
    }
    dst
}

/// 8-connected components, in raster order of their first pixel; each as the
/// leftmost and rightmost pixel of each of its rows (enough for the hull).
fn components(bitmap: &[u8], w: usize, h: usize) -> Vec<Vec<Pt>> {
    let mut label = vec![u32::MAX; w * h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if bitmap[start] == 0 || label[start] != u32::MAX {
            continue;
        }
        let id = out.len() as u32;
        label[start] = id;
        stack.push(start);
        // row -> (min x, max x)
        let mut rows: Vec<(usize, usize, usize)> = Vec::new();
        let mut extent = std::collections::HashMap::new();
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            let e = extent.entry(y).or_insert((x, x));
            e.0 = e.0.min(x);
            e.1 = e.1.max(x);
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if bitmap[j] != 0 && label[j] == u32::MAX {
                        label[j] = id;
                        stack.push(j);
                    }
                }
            }
        }
        rows.extend(extent.into_iter().map(|(y, (a, b))| (y, a, b)));
        let mut pts = Vec::with_capacity(rows.len() * 2);
        for (y, a, b) in rows {
            pts.push((a as f32, y as f32));
            if b != a {
                pts.push((b as f32, y as f32));
            }
        }
        out.push(pts);
    }
    out
}

fn cross(o: Pt, a: Pt, b: Pt) -> f32 {
    (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
}

/// Andrew's monotone chain; counter-clockwise, no repeated end point.
fn convex_hull(mut pts: Vec<Pt>) -> Vec<Pt> {
    pts.sort_by(|a, b| a.partial_cmp(b).expect("finite points"));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let mut hull: Vec<Pt> = Vec::with_capacity(pts.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &Pt>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// A rotated rectangle: centre, side lengths along `u` and its normal.
#[derive(Clone, Copy, Debug)]
struct Rect {
    cx: f32,
    cy: f32,
    w: f32,
    h: f32,
    ux: f32,
    uy: f32,
}

impl Rect {
    fn corners(&self) -> [Pt; 4] {
        let (hx, hy) = (self.ux * self.w / 2.0, self.uy * self.w / 2.0);
        let (vx, vy) = (-self.uy * self.h / 2.0, self.ux * self.h / 2.0);
        [
            (self.cx - hx - vx, self.cy - hy - vy),
            (self.cx + hx - vx, self.cy + hy - vy),
            (self.cx + hx + vx, self.cy + hy + vy),
            (self.cx - hx + vx, self.cy - hy + vy),
        ]
    }
}

/// Minimum-area enclosing rectangle of a convex polygon (one side lies on a
/// hull edge). `None` for fewer than two distinct points.
fn min_area_rect(hull: &[Pt]) -> Option<Rect> {
    if hull.len() < 2 {
        return None;
    }
    let mut best: Option<(f32, Rect)> = None;
    for i in 0..hull.len() {
        let a = hull[i];
        let b = hull[(i + 1) % hull.len()];
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        if len == 0.0 {
            continue;
        }
        let (ux, uy) = ((b.0 - a.0) / len, (b.1 - a.1) / len);
        let (mut umin, mut umax, mut vmin, mut vmax) = (
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
        );
        for p in hull {
            let u = p.0 * ux + p.1 * uy;
            let v = -p.0 * uy + p.1 * ux;
            umin = umin.min(u);
            umax = umax.max(u);
            vmin = vmin.min(v);
            vmax = vmax.max(v);
        }
        let (w, h) = (umax - umin, vmax - vmin);
        let (cu, cv) = ((umin + umax) / 2.0, (vmin + vmax) / 2.0);
        let rect = Rect {
            cx: cu * ux - cv * uy,
            cy: cu * uy + cv * ux,
            w,
            h,
            ux,
            uy,
        };
        let area = w * h;
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            best = Some((area, rect));
        }
    }
    best.map(|(_, r)| r)
}

/// Mean of `prob` over the pixels whose centres lie in the convex quad
/// (boundary included, as OpenCV's `fillPoly` does).
fn mean_inside(prob: &[f32], w: usize, h: usize, quad: &[Pt; 4]) -> f32 {
    let minx = quad
        .iter()
        .map(|p| p.0)
        .fold(f32::INFINITY, f32::min)
        .floor()
        .max(0.0) as usize;
    let maxx = (quad
        .iter()
        .map(|p| p.0)
        .fold(f32::NEG_INFINITY, f32::max)
        .ceil() as usize)
        .min(w - 1);
    let miny = quad
        .iter()
        .map(|p| p.1)
        .fold(f32::INFINITY, f32::min)
        .floor()
        .max(0.0) as usize;
    let maxy = (quad
        .iter()
        .map(|p| p.1)
        .fold(f32::NEG_INFINITY, f32::max)
        .ceil() as usize)
        .min(h - 1);
    // Orientation of the quad, so "inside" is on the same side of every edge.
    let sign = cross(quad[0], quad[1], quad[2]).signum();
    let (mut sum, mut n) = (0.0f64, 0usize);
    for y in miny..=maxy {
        for x in minx..=maxx {
            let p = (x as f32, y as f32);
            let inside = (0..4).all(|i| cross(quad[i], quad[(i + 1) % 4], p) * sign >= -0.5);
            if inside {
                sum += prob[y * w + x] as f64;
                n += 1;
            }
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_gives_one_grown_box() {
        let (w, h) = (64, 32);
        let mut prob = vec![0.0f32; w * h];
        for y in 10..16 {
            for x in 5..45 {
                prob[y * w + x] = 0.9;
            }
        }
        let boxes = boxes_from_prob(&prob, w, h, &DbParams::default(), w * 2, h * 2);
        assert_eq!(boxes.len(), 1, "{boxes:?}");
        let b = boxes[0];
        // The 2×2 dilation adds a zero-probability row and column to the
        // component, as in PP-OCR, so the mean is below the plateau's 0.9.
        assert!(b.score > 0.7 && b.score <= 0.9, "{b:?}");
        // The kernel spans x 5..45, y 10..16 (scaled ×2); unclipping grows it.
        assert!(b.covers(10, 20, 90, 32), "{b:?}");
        assert!(b.x0 > 0 && b.y1 < 64, "{b:?}");
    }

    #[test]
    fn specks_and_faint_regions_are_dropped() {
        let (w, h) = (32, 32);
        let mut prob = vec![0.0f32; w * h];
        prob[5 * w + 5] = 0.9; // a single pixel
        for y in 20..28 {
            for x in 4..28 {
                prob[y * w + x] = 0.35; // above thresh, below box_thresh
            }
        }
        assert!(boxes_from_prob(&prob, w, h, &DbParams::default(), w, h).is_empty());
    }

    #[test]
    fn rotated_rectangle_is_fitted() {
        let hull = convex_hull(vec![(0.0, 0.0), (10.0, 10.0), (8.0, 12.0), (-2.0, 2.0)]);
        let r = min_area_rect(&hull).unwrap();
        let (a, b) = (r.w.max(r.h), r.w.min(r.h));
        assert!(
            (a - 200f32.sqrt()).abs() < 1e-3 && (b - 8f32.sqrt()).abs() < 1e-3,
            "{r:?}"
        );
    }
}
