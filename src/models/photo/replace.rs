//! Face replacement: the identity-bearing area of each face (an ellipse from
//! the box and landmarks) is overwritten with a synthetic face-like fill, with
//! a soft edge, while keep regions stay bit-identical.
//!
//! The fill keeps nothing of the original structure: it is the face's median
//! skin colour, a generic shading pattern placed at fixed positions of the
//! ellipse (not at this person's landmarks, whose spacing is itself a
//! biometric), and heavy noise at several scales. Blurring or pixelating
//! would keep the low frequencies a face matcher relies on; this does not.
//!
//! Replacement is reversible only with the original bytes, which come back as
//! [`ReplacedRegion`]s for the caller to store encrypted; [`restore`] puts
//! them back exactly.

use anyhow::{ensure, Result};
use rayon::prelude::*;

use super::detect::Face;
use super::image::RgbImage;
use super::keep::{eye_distance, keep_rects, KeepRegion, PixelRect};

/// How faces are replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplaceConfig {
    /// Regions left bit-identical.
    pub keep: Vec<KeepRegion>,
    /// Width of the soft outer edge of the ellipse, as a fraction of its
    /// radius. The ellipse itself is always fully replaced; only this band
    /// outside it mixes fill and original.
    pub feather: f32,
    /// Width of the blend band around keep regions, as a fraction of the eye
    /// distance. The band lies outside the keep region, which is never
    /// touched.
    pub keep_feather: f32,
    /// Standard deviation of the added noise, in grey levels.
    pub noise: f32,
    /// Seed of the noise. Derive it from the instance (e.g. a keyed hash of
    /// its UID) so that replaying the same instance gives the same output.
    pub seed: u64,
}

impl Default for ReplaceConfig {
    fn default() -> Self {
        Self {
            keep: Vec::new(),
            feather: 0.15,
            keep_feather: 0.1,
            noise: 22.0,
            seed: 0,
        }
    }
}

/// The original bytes of one replaced rectangle (RGB, row by row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplacedRegion {
    pub rect: PixelRect,
    pub original: Vec<u8>,
}

/// What [`replace_faces`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replacement {
    /// In the order applied; [`restore`] undoes them in reverse.
    pub regions: Vec<ReplacedRegion>,
    /// The keep rectangles left bit-identical.
    pub kept: Vec<PixelRect>,
}

/// The replaced area of one face: an ellipse in the face's own frame (rotated
/// by the eye line), centred between box centre and landmark centroid.
#[derive(Clone, Copy, Debug)]
struct FaceEllipse {
    cx: f32,
    cy: f32,
    cos: f32,
    sin: f32,
    /// Semi-axes across and along the face.
    a: f32,
    b: f32,
}

impl FaceEllipse {
    fn of(face: &Face) -> Self {
        let [x1, y1, x2, y2] = face.bbox;
        let [le, re, nose, ml, mr] = face.landmarks;
        let ang = (re.1 - le.1).atan2(re.0 - le.0);
        // Eye and mouth centres give the face's middle; the box centre keeps
        // a bad landmark from dragging the ellipse off the face.
        let lx = (le.0 + re.0 + ml.0 + mr.0) / 4.0 * 0.8 + nose.0 * 0.2;
        let ly = (le.1 + re.1 + ml.1 + mr.1) / 4.0 * 0.8 + nose.1 * 0.2;
        let mut e = Self {
            cx: 0.5 * (x1 + x2) * 0.5 + 0.5 * lx,
            cy: 0.5 * (y1 + y2) * 0.5 + 0.5 * ly,
            cos: ang.cos(),
            sin: ang.sin(),
            // MTCNN boxes run from the brows to the chin and cheek to cheek;
            // the margin adds the forehead and jaw line.
            a: 0.5 * (x2 - x1) * 1.1,
            b: 0.5 * (y2 - y1) * 1.25,
        };
        // Every landmark must lie well inside, whatever the box says.
        let worst = face
            .landmarks
            .iter()
            .map(|&(x, y)| e.radius(x, y))
            .fold(0.0f32, f32::max);
        if worst > 0.75 {
            e.a *= worst / 0.75;
            e.b *= worst / 0.75;
        }
        e
    }

    /// Face-frame coordinates of image point `(x, y)`, in units of the
    /// semi-axes: `u` across, `v` down the face.
    fn local(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = (x - self.cx, y - self.cy);
        (
            (dx * self.cos + dy * self.sin) / self.a,
            (-dx * self.sin + dy * self.cos) / self.b,
        )
    }

    fn radius(&self, x: f32, y: f32) -> f32 {
        let (u, v) = self.local(x, y);
        (u * u + v * v).sqrt()
    }

    /// Bounding box of the ellipse grown by `grow` (relative radius).
    fn bounds(&self, grow: f32) -> (f32, f32, f32, f32) {
        let (a, b) = (self.a * grow, self.b * grow);
        let hx = ((a * self.cos).powi(2) + (b * self.sin).powi(2)).sqrt();
        let hy = ((a * self.sin).powi(2) + (b * self.cos).powi(2)).sqrt();
        (
            self.cx - hx,
            self.cy - hy,
            self.cx + hx + 1.0,
            self.cy + hy + 1.0,
        )
    }
}

fn smoothstep(edge0: f32, edge1: f32, x: f32) -> f32 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Stateless hash to a uniform value in [-1, 1): the noise at a position
/// does not depend on the order pixels are visited in.
fn hash_unit(seed: u64, a: i64, b: i64, c: u64) -> f32 {
    let mut z = seed
        ^ (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ c.wrapping_mul(0x1656_67B1_9E37_79F9);
    // splitmix64 finaliser
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// Smooth value noise in [-1, 1] on a grid of `cell` pixels.
fn value_noise(seed: u64, octave: u64, x: f32, y: f32, cell: f32) -> f32 {
    let (gx, gy) = (x / cell, y / cell);
    let (ix, iy) = (gx.floor(), gy.floor());
    let (fx, fy) = (gx - ix, gy - iy);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (ix as i64, iy as i64);
    let n = |dx: i64, dy: i64| hash_unit(seed, ix + dx, iy + dy, octave);
    let top = n(0, 0) + (n(1, 0) - n(0, 0)) * sx;
    let bottom = n(0, 1) + (n(1, 1) - n(0, 1)) * sx;
    top + (bottom - top) * sy
}

/// A 2-D Gaussian bump in face-frame units.
fn bump(u: f32, v: f32, cu: f32, cv: f32, su: f32, sv: f32) -> f32 {
    (-0.5 * (((u - cu) / su).powi(2) + ((v - cv) / sv).powi(2))).exp()
}

/// Generic face shading as a brightness factor at face-frame `(u, v)`: the
/// same for every face, so it carries no identity. Gives the fill the coarse
/// look of a face (dark sockets and mouth, lit nose ridge, rounded cheeks).
fn mean_face_shading(u: f32, v: f32) -> f32 {
    let mut s = 1.0 - 0.12 * (u * u + v * v);
    for side in [-1.0f32, 1.0] {
        s -= 0.20 * bump(u, v, 0.36 * side, -0.22, 0.13, 0.08); // eye sockets
        s -= 0.10 * bump(u, v, 0.36 * side, -0.40, 0.17, 0.05); // brows
        s += 0.05 * bump(u, v, 0.45 * side, 0.15, 0.16, 0.16); // cheeks
    }
    s += 0.07 * bump(u, v, 0.0, -0.02, 0.06, 0.22); // nose ridge
    s -= 0.08 * bump(u, v, 0.0, 0.22, 0.12, 0.04); // nostrils
    s -= 0.14 * bump(u, v, 0.0, 0.45, 0.26, 0.05); // mouth
    s
}

/// Per-channel median colour of the ellipse's inner part, outside keep
/// regions: the skin colour the fill is matched to.
fn median_skin(img: &RgbImage, e: &FaceEllipse, kept: &[PixelRect], rect: &PixelRect) -> [f32; 3] {
    let mut hist = [[0u32; 256]; 3];
    let mut n = 0u32;
    for y in rect.y..rect.y + rect.height {
        for x in rect.x..rect.x + rect.width {
            if e.radius(x as f32, y as f32) > 0.8 || kept.iter().any(|k| k.contains(x, y)) {
                continue;
            }
            let p = img.pixel(x, y);
            for c in 0..3 {
                hist[c][p[c] as usize] += 1;
            }
            n += 1;
        }
    }
    if n == 0 {
        return [170.0, 130.0, 110.0];
    }
    let mut out = [0f32; 3];
    for c in 0..3 {
        let mut acc = 0;
        for (v, &count) in hist[c].iter().enumerate() {
            acc += count;
            if acc * 2 >= n {
                out[c] = v as f32;
                break;
            }
        }
    }
    out
}

/// The colour (0–255, unclamped is fine) a replacement puts at image pixel
/// `(x, y)` of one face's replaced rectangle, before blending.
pub type FaceFill = Box<dyn Fn(u32, u32) -> [f32; 3] + Send + Sync>;

/// What a fill is made from: the face, the image before this face is
/// replaced, the rectangle about to be replaced and the kept rectangles.
pub struct FillContext<'a> {
    pub index: usize,
    pub face: &'a Face,
    pub img: &'a RgbImage,
    pub rect: PixelRect,
    pub kept: &'a [PixelRect],
    ellipse: FaceEllipse,
}

/// Bounds `[x0, y0, x1, y1]` of the area replacement may touch for `face`
/// (the ellipse with its feather), unclipped. The learned generator crops
/// around it, in training as in use, so both see the same framing.
pub fn replaced_bounds(face: &Face, feather: f32) -> [f32; 4] {
    let (x0, y0, x1, y1) = FaceEllipse::of(face).bounds(1.0 + feather.max(0.0));
    [x0, y0, x1, y1]
}

/// Replace every face in `img`. Keep regions of all faces are honoured by
/// every replacement. Returns the original bytes of each touched rectangle.
pub fn replace_faces(img: &mut RgbImage, faces: &[Face], cfg: &ReplaceConfig) -> Replacement {
    replace_faces_with(img, faces, cfg, |ctx| Ok(synthetic_fill(ctx, cfg)))
        .expect("the synthetic fill does not fail")
}

/// The synthetic fill: median skin colour, generic shading, seeded noise.
fn synthetic_fill(ctx: &FillContext, cfg: &ReplaceConfig) -> FaceFill {
    let e = ctx.ellipse;
    let skin = median_skin(ctx.img, &e, ctx.kept, &ctx.rect);
    let seed = cfg.seed ^ (ctx.index as u64).wrapping_mul(0xA24B_AED4_963E_E407);
    // Noise scales follow the face size so a small face is as scrambled
    // as a large one.
    let coarse = (e.a / 3.0).max(2.0);
    let fine = (e.a / 10.0).max(1.0);
    let noise = cfg.noise;
    Box::new(move |x, y| {
        let (px, py) = (x as f32, y as f32);
        let (u, v) = e.local(px, py);
        let shade = mean_face_shading(u, v);
        let lum = noise
            * (0.8 * value_noise(seed, 1, px, py, coarse)
                + 0.6 * value_noise(seed, 2, px, py, fine)
                + 1.0 * hash_unit(seed, x as i64, y as i64, 3));
        let mut out = [0f32; 3];
        for (c, tone) in skin.iter().enumerate() {
            let chroma = 0.3 * noise * hash_unit(seed, x as i64, y as i64, 4 + c as u64);
            out[c] = (tone * shade + lum + chroma).clamp(0.0, 255.0);
        }
        out
    })
}

/// [`replace_faces`] with the fill made by `make_fill` (the learned
/// generator's, for instance): the same ellipse, feather, keep regions and
/// recorded originals, whatever paints the face.
pub fn replace_faces_with(
    img: &mut RgbImage,
    faces: &[Face],
    cfg: &ReplaceConfig,
    mut make_fill: impl FnMut(&FillContext) -> Result<FaceFill>,
) -> Result<Replacement> {
    let (w, h) = (img.width, img.height);
    let kept = if faces.is_empty() {
        Vec::new()
    } else {
        keep_rects(faces, &cfg.keep, w, h)
    };
    let mut regions = Vec::with_capacity(faces.len());
    for (index, face) in faces.iter().enumerate() {
        let e = FaceEllipse::of(face);
        let outer = 1.0 + cfg.feather.max(0.0);
        let (bx0, by0, bx1, by1) = e.bounds(outer);
        let Some(rect) = PixelRect::from_bounds(bx0, by0, bx1, by1, w, h) else {
            continue;
        };
        let band = (cfg.keep_feather * eye_distance(face)).max(0.0);
        let fill = make_fill(&FillContext {
            index,
            face,
            img,
            rect,
            kept: &kept,
            ellipse: e,
        })?;
        let original = copy_rect(img, &rect);
        // Rows are independent (the fill is a function of the position), so
        // they run in parallel.
        let row_bytes = w as usize * 3;
        let rows =
            &mut img.data[rect.y as usize * row_bytes..(rect.y + rect.height) as usize * row_bytes];
        rows.par_chunks_mut(row_bytes)
            .enumerate()
            .for_each(|(j, line)| {
                let y = rect.y + j as u32;
                for x in rect.x..rect.x + rect.width {
                    let r = e.radius(x as f32, y as f32);
                    let mut alpha = 1.0 - smoothstep(1.0, outer, r);
                    if alpha <= 0.0 {
                        continue;
                    }
                    // Distance to keep regions: 0 inside (never touched), ramping
                    // up over `band` pixels outside.
                    let mut near = f32::INFINITY;
                    for k in &kept {
                        near = near.min(k.distance(x, y));
                    }
                    if near == 0.0 {
                        continue;
                    }
                    if band > 0.0 {
                        alpha *= smoothstep(0.0, band, near);
                    }
                    if alpha <= 0.0 {
                        continue;
                    }
                    let colour = fill(x, y);
                    let i = x as usize * 3;
                    for (c, v) in colour.iter().enumerate() {
                        let fill = v.clamp(0.0, 255.0);
                        let orig = line[i + c] as f32;
                        line[i + c] = (fill * alpha + orig * (1.0 - alpha)).round() as u8;
                    }
                }
            });
        regions.push(ReplacedRegion { rect, original });
    }
    Ok(Replacement { regions, kept })
}

fn copy_rect(img: &RgbImage, r: &PixelRect) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.width as usize * r.height as usize * 3);
    for y in r.y..r.y + r.height {
        let start = (y as usize * img.width as usize + r.x as usize) * 3;
        out.extend_from_slice(&img.data[start..start + r.width as usize * 3]);
    }
    out
}

/// Put the original bytes back, undoing [`replace_faces`] exactly. Regions
/// are restored in reverse order, so overlapping faces come back right.
pub fn restore(img: &mut RgbImage, regions: &[ReplacedRegion]) -> Result<()> {
    for reg in regions.iter().rev() {
        let r = reg.rect;
        ensure!(
            r.x + r.width <= img.width && r.y + r.height <= img.height,
            "replaced region {r:?} lies outside the {}x{} image",
            img.width,
            img.height
        );
        let row = r.width as usize * 3;
        ensure!(
            reg.original.len() == row * r.height as usize,
            "replaced region {r:?} carries {} bytes, expected {}",
            reg.original.len(),
            row * r.height as usize
        );
        for (j, src) in reg.original.chunks_exact(row).enumerate() {
            let start = ((r.y as usize + j) * img.width as usize + r.x as usize) * 3;
            img.data[start..start + row].copy_from_slice(src);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face() -> Face {
        Face {
            bbox: [100.0, 100.0, 200.0, 220.0],
            score: 0.99,
            landmarks: [
                (130.0, 145.0),
                (170.0, 145.0),
                (150.0, 170.0),
                (135.0, 195.0),
                (165.0, 195.0),
            ],
        }
    }

    /// A structured test image (gradients and a checker), so "changed" and
    /// "unchanged" are meaningful everywhere.
    fn test_image(w: u32, h: u32) -> RgbImage {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let check = if (x / 7 + y / 5).is_multiple_of(2) {
                    40
                } else {
                    0
                };
                data.push((x % 256) as u8);
                data.push((y % 256) as u8);
                data.push(((x + y) / 3 % 200) as u8 + check);
            }
        }
        RgbImage::new(w, h, data).unwrap()
    }

    fn cfg(keep: Vec<KeepRegion>) -> ReplaceConfig {
        ReplaceConfig {
            keep,
            seed: 42,
            ..ReplaceConfig::default()
        }
    }

    #[test]
    fn keep_regions_are_bit_identical() {
        let original = test_image(320, 300);
        let mut img = original.clone();
        let faces = [face()];
        let extra = PixelRect {
            x: 140,
            y: 160,
            width: 12,
            height: 6,
        };
        let rep = replace_faces(
            &mut img,
            &faces,
            &cfg(vec![
                KeepRegion::Periocular,
                KeepRegion::Perioral,
                KeepRegion::Box(extra),
            ]),
        );
        assert_eq!(rep.kept.len(), 3);
        for k in &rep.kept {
            for y in k.y..k.y + k.height {
                for x in k.x..k.x + k.width {
                    assert_eq!(
                        img.pixel(x, y),
                        original.pixel(x, y),
                        "kept pixel {x},{y} changed"
                    );
                }
            }
        }
    }

    #[test]
    fn face_area_is_replaced_and_outside_untouched() {
        let original = test_image(320, 300);
        let mut img = original.clone();
        let rep = replace_faces(&mut img, &[face()], &cfg(vec![]));
        assert_eq!(rep.regions.len(), 1);
        // Nearly every pixel inside the box's inner part differs.
        let (mut changed, mut total) = (0, 0);
        for y in 120..200 {
            for x in 115..185 {
                total += 1;
                if img.pixel(x, y) != original.pixel(x, y) {
                    changed += 1;
                }
            }
        }
        assert!(changed * 100 >= total * 97, "{changed}/{total} changed");
        // Nothing outside the recorded rectangle changed.
        let r = rep.regions[0].rect;
        for y in 0..300 {
            for x in 0..320 {
                if !r.contains(x, y) {
                    assert_eq!(img.pixel(x, y), original.pixel(x, y));
                }
            }
        }
    }

    #[test]
    fn fill_does_not_follow_the_original_structure() {
        // The test image's blue channel carries a fine checkerboard; the fill
        // depends on the median colour only, so inside the ellipse core its
        // blue channel is uncorrelated with that checkerboard.
        let a = test_image(320, 300);
        let mut ra = a.clone();
        replace_faces(&mut ra, &[face()], &cfg(vec![]));
        let pts: Vec<(u32, u32)> = (130..190)
            .flat_map(|y| (125..175).map(move |x| (x, y)))
            .collect();
        let checker = |x: u32, y: u32| {
            if (x / 7 + y / 5).is_multiple_of(2) {
                1.0
            } else {
                0.0
            }
        };
        let correlation = |img: &RgbImage| {
            let n = pts.len() as f64;
            let mc = pts.iter().map(|&(x, y)| checker(x, y)).sum::<f64>() / n;
            let mv = pts
                .iter()
                .map(|&(x, y)| img.pixel(x, y)[2] as f64)
                .sum::<f64>()
                / n;
            let (mut num, mut sc, mut sv) = (0.0, 0.0, 0.0);
            for &(x, y) in &pts {
                let c = checker(x, y) - mc;
                let v = img.pixel(x, y)[2] as f64 - mv;
                num += c * v;
                sc += c * c;
                sv += v * v;
            }
            num / (sc.sqrt() * sv.sqrt())
        };
        assert!(correlation(&a) > 0.5, "test pattern too weak");
        let corr = correlation(&ra);
        assert!(
            corr.abs() < 0.1,
            "fill correlates with the original: {corr}"
        );
    }

    #[test]
    fn restore_gives_back_the_original_bytes() {
        let original = test_image(320, 300);
        let mut img = original.clone();
        // Two overlapping faces, one of them reaching over the image edge.
        let mut second = face();
        for v in second.bbox.iter_mut() {
            *v += 60.0;
        }
        for l in second.landmarks.iter_mut() {
            l.0 += 60.0;
            l.1 += 60.0;
        }
        let faces = [face(), second];
        let rep = replace_faces(&mut img, &faces, &cfg(vec![KeepRegion::Periocular]));
        assert_eq!(rep.regions.len(), 2);
        assert_ne!(img, original);
        restore(&mut img, &rep.regions).unwrap();
        assert_eq!(img, original);
    }

    #[test]
    fn deterministic_for_a_seed() {
        let mut a = test_image(320, 300);
        let mut b = a.clone();
        replace_faces(&mut a, &[face()], &cfg(vec![]));
        replace_faces(&mut b, &[face()], &cfg(vec![]));
        assert_eq!(a, b);
    }

    #[test]
    fn restore_rejects_mismatched_region() {
        let mut img = test_image(10, 10);
        let bad = ReplacedRegion {
            rect: PixelRect {
                x: 5,
                y: 5,
                width: 10,
                height: 1,
            },
            original: vec![0; 30],
        };
        assert!(restore(&mut img, &[bad]).is_err());
    }
}
