//! Pure image geometry for the chest route: shrink an image to the model
//! grid, bring the model's field back to native size, and warp the native
//! stored values with it.
//!
//! Conventions (those of `grid_sample` with `align_corners = true`): pixel
//! `i` of an axis of `n` samples sits at normalized coordinate
//! `-1 + 2 i / (n - 1)`, so a displacement `d` in normalized units is
//! `d (n - 1) / 2` pixels, whatever the resolution. That is why the field
//! can be computed at 256² and applied at 2000² without rescaling.

use rayon::prelude::*;

/// Position of output sample `i` of `n_out` on an axis of `n_in` samples,
/// corners aligned.
fn aligned(i: usize, n_out: usize, n_in: usize) -> f32 {
    if n_out <= 1 || n_in <= 1 {
        0.0
    } else {
        i as f32 * (n_in - 1) as f32 / (n_out - 1) as f32
    }
}

/// One axis of an area resample: each output sample is the mean of the input
/// (as a piecewise-constant signal) over a box centred on its aligned
/// position, as wide as one output step and at least one input pixel. A box
/// of width one reduces to linear interpolation, so the same code shrinks
/// (no aliasing) and enlarges.
fn area_weights(n_in: usize, n_out: usize) -> Vec<Vec<(usize, f32)>> {
    let step = if n_out > 1 && n_in > 1 {
        ((n_in - 1) as f32 / (n_out - 1) as f32).max(1.0)
    } else {
        n_in as f32
    };
    (0..n_out)
        .map(|o| {
            let c = if n_out == 1 {
                (n_in as f32 - 1.0) / 2.0
            } else {
                aligned(o, n_out, n_in)
            };
            // Box [c - step/2, c + step/2] over pixels [k - 1/2, k + 1/2],
            // clipped to the image.
            let lo = (c - step / 2.0).max(-0.5);
            let hi = (c + step / 2.0).min(n_in as f32 - 0.5);
            let first = (lo + 0.5).floor().max(0.0) as usize;
            let last = ((hi + 0.5).ceil() as usize).min(n_in);
            let mut w: Vec<(usize, f32)> = (first..last)
                .map(|k| {
                    let a = lo.max(k as f32 - 0.5);
                    let b = hi.min(k as f32 + 0.5);
                    (k, (b - a).max(0.0))
                })
                .filter(|&(_, x)| x > 0.0)
                .collect();
            let total: f32 = w.iter().map(|p| p.1).sum();
            if total > 0.0 {
                w.iter_mut().for_each(|p| p.1 /= total);
            } else {
                w = vec![(c.round().clamp(0.0, (n_in - 1) as f32) as usize, 1.0)];
            }
            w
        })
        .collect()
}

/// Resample a `w`×`h` row-major image to `n`×`n` (area average when
/// shrinking, linear when enlarging), corners aligned.
pub fn resample_square(img: &[f32], w: usize, h: usize, n: usize) -> Vec<f32> {
    assert_eq!(img.len(), w * h, "image size");
    let wx = area_weights(w, n);
    let wy = area_weights(h, n);
    // Rows first (h × n), then columns (n × n).
    let mut tmp = vec![0f32; h * n];
    tmp.par_chunks_mut(n).enumerate().for_each(|(y, row)| {
        let src = &img[y * w..(y + 1) * w];
        for (o, ws) in row.iter_mut().zip(&wx) {
            *o = ws.iter().map(|&(k, a)| src[k] * a).sum();
        }
    });
    let mut out = vec![0f32; n * n];
    out.par_chunks_mut(n).zip(&wy).for_each(|(row, ws)| {
        for &(k, a) in ws {
            let src = &tmp[k * n..(k + 1) * n];
            row.iter_mut().zip(src).for_each(|(o, s)| *o += s * a);
        }
    });
    out
}

/// For each of `n_out` output samples, the two field samples (of `n`) and
/// the weight of the second: linear interpolation, corners aligned.
fn field_taps(n: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    (0..n_out)
        .map(|i| {
            let p = aligned(i, n_out, n);
            let i0 = (p.floor() as usize).min(n - 1);
            let i1 = (i0 + 1).min(n - 1);
            (i0, i1, p - i0 as f32)
        })
        .collect()
}

/// The field's value between two of its rows, at one output column.
#[inline]
fn field_at(r0: &[f32], r1: &[f32], (x0, x1, fx): (usize, usize, f32), fy: f32) -> f32 {
    let top = r0[x0] + (r0[x1] - r0[x0]) * fx;
    let bottom = r1[x0] + (r1[x1] - r1[x0]) * fx;
    top + (bottom - top) * fy
}

/// Bilinear upsample (or downsample) of an `n`×`n` field to `w`×`h`, corners
/// aligned. The values are normalized displacements, so they are copied
/// as they are: the scale change is implicit in the convention above.
pub fn upsample_field(field: &[f32], n: usize, w: usize, h: usize) -> Vec<f32> {
    assert_eq!(field.len(), n * n, "field size");
    let (tx, ty) = (field_taps(n, w), field_taps(n, h));
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w)
        .zip(&ty)
        .for_each(|(row, &(y0, y1, fy))| {
            let (r0, r1) = (&field[y0 * n..(y0 + 1) * n], &field[y1 * n..(y1 + 1) * n]);
            for (o, &t) in row.iter_mut().zip(&tx) {
                *o = field_at(r0, r1, t, fy);
            }
        });
    out
}

/// How a `w`×`h` image is sampled: normalized units to pixels, and the last
/// pixel on each axis (border padding).
#[derive(Clone, Copy)]
struct Sampler<'a> {
    img: &'a [f32],
    w: usize,
    h: usize,
    sx: f32,
    sy: f32,
    xmax: f32,
    ymax: f32,
}

impl<'a> Sampler<'a> {
    fn new(img: &'a [f32], w: usize, h: usize) -> Self {
        Sampler {
            img,
            w,
            h,
            sx: w.saturating_sub(1) as f32 / 2.0,
            sy: h.saturating_sub(1) as f32 / 2.0,
            xmax: w.saturating_sub(1) as f32,
            ymax: h.saturating_sub(1) as f32,
        }
    }

    /// The image at pixel `(x, y)` moved by `(dx, dy)` normalized units.
    #[inline]
    fn at(&self, x: usize, y: usize, dx: f32, dy: f32) -> f32 {
        let (w, img) = (self.w, self.img);
        let px = (x as f32 + dx * self.sx).clamp(0.0, self.xmax);
        let py = (y as f32 + dy * self.sy).clamp(0.0, self.ymax);
        let (x0, y0) = (px.floor() as usize, py.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(self.h - 1));
        let (fx, fy) = (px - x0 as f32, py - y0 as f32);
        let a = img[y0 * w + x0];
        let b = img[y0 * w + x1];
        let c = img[y1 * w + x0];
        let d = img[y1 * w + x1];
        // Written so that fx = fy = 0 gives `a` bit for bit.
        let top = a * (1.0 - fx) + b * fx;
        let bottom = c * (1.0 - fx) + d * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// Bilinear warp of a `w`×`h` image: output pixel `(x, y)` takes the input
/// at normalized position identity + `(dx, dy)`, border padding, corners
/// aligned. A zero field returns the input exactly.
pub fn warp(img: &[f32], dx: &[f32], dy: &[f32], w: usize, h: usize) -> Vec<f32> {
    assert!(img.len() == w * h && dx.len() == w * h && dy.len() == w * h);
    let s = Sampler::new(img, w, h);
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let i = y * w + x;
            *o = s.at(x, y, dx[i], dy[i]);
        }
    });
    out
}

/// [`warp`] along an `n`×`n` field as [`upsample_field`] brings it to
/// `w`×`h`, without writing the two native-size fields (40 MB for a
/// 2000×2500 radiograph): the same arithmetic, so the same values bit for
/// bit, with a fraction of the memory traffic.
pub fn warp_upsampled(
    img: &[f32],
    dx: &[f32],
    dy: &[f32],
    n: usize,
    w: usize,
    h: usize,
) -> Vec<f32> {
    assert!(img.len() == w * h && dx.len() == n * n && dy.len() == n * n);
    let s = Sampler::new(img, w, h);
    let (tx, ty) = (field_taps(n, w), field_taps(n, h));
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w)
        .zip(&ty)
        .enumerate()
        .for_each(|(y, (row, &(y0, y1, fy)))| {
            let (x0r, x1r) = (&dx[y0 * n..(y0 + 1) * n], &dx[y1 * n..(y1 + 1) * n]);
            let (y0r, y1r) = (&dy[y0 * n..(y0 + 1) * n], &dy[y1 * n..(y1 + 1) * n]);
            for (x, (o, &t)) in row.iter_mut().zip(&tx).enumerate() {
                *o = s.at(x, y, field_at(x0r, x1r, t, fy), field_at(y0r, y1r, t, fy));
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Vec<f32> {
        (0..w * h)
            .map(|i| ((i % w) * 7 + (i / w) * 13 % 101) as f32)
            .collect()
    }

    /// Naive bilinear sample with border padding, in f64.
    fn sample(img: &[f32], w: usize, h: usize, px: f64, py: f64) -> f64 {
        let px = px.clamp(0.0, (w - 1) as f64);
        let py = py.clamp(0.0, (h - 1) as f64);
        let at = |x: f64, y: f64| img[(y as usize).min(h - 1) * w + (x as usize).min(w - 1)] as f64;
        let (x0, y0) = (px.floor(), py.floor());
        let (fx, fy) = (px - x0, py - y0);
        at(x0, y0) * (1.0 - fx) * (1.0 - fy)
            + at(x0 + 1.0, y0) * fx * (1.0 - fy)
            + at(x0, y0 + 1.0) * (1.0 - fx) * fy
            + at(x0 + 1.0, y0 + 1.0) * fx * fy
    }

    #[test]
    fn zero_field_is_the_identity_exactly() {
        let (w, h) = (37, 23);
        let img = ramp(w, h);
        let z = vec![0f32; w * h];
        assert_eq!(warp(&img, &z, &z, w, h), img);
    }

    #[test]
    fn one_pixel_shift_moves_the_image() {
        let (w, h) = (31, 17);
        let img = ramp(w, h);
        let dx = vec![2.0 / (w - 1) as f32; w * h];
        let dy = vec![0f32; w * h];
        let out = warp(&img, &dx, &dy, w, h);
        for y in 0..h {
            for x in 0..w {
                let want = img[y * w + (x + 1).min(w - 1)];
                assert!((out[y * w + x] - want).abs() < 1e-3, "({x},{y})");
            }
        }
        // And down by one row.
        let dy = vec![2.0 / (h - 1) as f32; w * h];
        let dx = vec![0f32; w * h];
        let out = warp(&img, &dx, &dy, w, h);
        for y in 0..h {
            for x in 0..w {
                let want = img[(y + 1).min(h - 1) * w + x];
                assert!((out[y * w + x] - want).abs() < 1e-3, "({x},{y})");
            }
        }
    }

    #[test]
    fn warp_matches_a_naive_bilinear_reference() {
        let (w, h) = (29, 19);
        let img = ramp(w, h);
        let dx: Vec<f32> = (0..w * h)
            .map(|i| 0.07 * ((i as f32) * 0.37).sin())
            .collect();
        let dy: Vec<f32> = (0..w * h)
            .map(|i| 0.09 * ((i as f32) * 0.23).cos())
            .collect();
        let out = warp(&img, &dx, &dy, w, h);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let px = x as f64 + dx[i] as f64 * (w - 1) as f64 / 2.0;
                let py = y as f64 + dy[i] as f64 * (h - 1) as f64 / 2.0;
                let want = sample(&img, w, h, px, py);
                assert!((out[i] as f64 - want).abs() < 1e-3, "({x},{y})");
            }
        }
    }

    #[test]
    fn field_upsample_matches_a_naive_reference() {
        let n = 5;
        let f: Vec<f32> = (0..n * n).map(|i| (i as f32 * 0.3).sin()).collect();
        let (w, h) = (13, 9);
        let up = upsample_field(&f, n, w, h);
        for y in 0..h {
            for x in 0..w {
                let px = x as f64 * (n - 1) as f64 / (w - 1) as f64;
                let py = y as f64 * (n - 1) as f64 / (h - 1) as f64;
                let want = sample(&f, n, n, px, py);
                assert!((up[y * w + x] as f64 - want).abs() < 1e-5, "({x},{y})");
            }
        }
        // Corners land on the field's corners; a constant stays constant.
        assert_eq!(up[0], f[0]);
        let c = upsample_field(&vec![0.25; n * n], n, w, h);
        assert!(c.iter().all(|&v| (v - 0.25).abs() < 1e-7));
    }

    #[test]
    fn area_resample_averages_and_keeps_constants() {
        // 4x4 -> 2x2 of a constant stays constant.
        let c = resample_square(&[3.0; 16], 4, 4, 2);
        assert!(c.iter().all(|&v| (v - 3.0).abs() < 1e-6), "{c:?}");
        // A same-size resample is the identity.
        let img = ramp(6, 6);
        let same = resample_square(&img, 6, 6, 6);
        for (a, b) in same.iter().zip(&img) {
            assert!((a - b).abs() < 1e-4);
        }
        // Shrinking 9 -> 3: the middle sample is the mean of pixels 2..=6
        // (box of width 4 centred on pixel 4: half of 2, 3, 4, 5, half of 6).
        let row: Vec<f32> = (0..9).map(|x| x as f32).collect();
        let img: Vec<f32> = row.iter().cycle().take(81).copied().collect();
        let s = resample_square(&img, 9, 9, 3);
        assert!((s[1] - 4.0).abs() < 1e-5, "{s:?}");
        // Enlarging 2 -> 3 interpolates linearly.
        let e = resample_square(&[0.0, 2.0, 0.0, 2.0], 2, 2, 3);
        assert!((e[1] - 1.0).abs() < 1e-6, "{e:?}");
    }

    #[test]
    fn the_fused_warp_equals_upsample_then_warp_bit_for_bit() {
        let (n, w, h) = (16, 97, 131);
        let img = ramp(w, h);
        let field = |seed: u32| -> Vec<f32> {
            (0..n * n)
                .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) % 2001)
                .map(|v| (v as f32 - 1000.0) * 1e-5)
                .collect()
        };
        let (dx, dy) = (field(7), field(99));
        let want = warp(
            &img,
            &upsample_field(&dx, n, w, h),
            &upsample_field(&dy, n, w, h),
            w,
            h,
        );
        let got = warp_upsampled(&img, &dx, &dy, n, w, h);
        assert!(want
            .iter()
            .zip(&got)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_ne!(got, img, "a non-zero field moves the image");
    }
}
