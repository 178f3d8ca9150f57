//! Applying a model-size displacement at the image's native resolution:
//! the field (normalized grid units, align_corners convention) is upsampled
//! bilinearly and the native image is resampled along it, so the output
//! keeps its full resolution. Plain f32 loops over rows (rayon): at 2–4
//! megapixels this is far cheaper than tensor matmuls.

use rayon::prelude::*;

/// Upsample one s×s field component to w×h (align_corners=true, the
/// convention of normalized grid coordinates).
pub fn upsample_field(d: &[f32], s: usize, w: usize, h: usize) -> Vec<f32> {
    assert_eq!(d.len(), s * s, "field is not {s}×{s}");
    let taps = |out: usize| -> Vec<(usize, usize, f32)> {
        (0..out)
            .map(|o| {
                let src = if out > 1 {
                    o as f64 * (s - 1) as f64 / (out - 1) as f64
                } else {
                    0.0
                };
                let i0 = (src.floor() as usize).min(s - 1);
                let i1 = (i0 + 1).min(s - 1);
                (i0, i1, (src - i0 as f64) as f32)
            })
            .collect()
    };
    let tx = taps(w);
    let ty = taps(h);
    // Rows first at model height, then columns to native height.
    let rows: Vec<f32> = (0..s)
        .flat_map(|r| {
            tx.iter()
                .map(move |&(a, b, f)| d[r * s + a] * (1.0 - f) + d[r * s + b] * f)
        })
        .collect();
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let (a, b, f) = ty[y];
        for x in 0..w {
            row[x] = rows[a * w + x] * (1.0 - f) + rows[b * w + x] * f;
        }
    });
    out
}

/// Bilinear resample of a w×h image along identity + (dx, dy) (native
/// fields in normalized units), border padding, align_corners=true — the
/// same sampling as the training-time `grid_sample`.
pub fn warp_image(img: &[f32], w: usize, h: usize, dx: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(img.len() == w * h && dx.len() == w * h && dy.len() == w * h);
    let sx = (w as f32 - 1.0) / 2.0;
    let sy = (h as f32 - 1.0) / 2.0;
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let i = y * w + x;
            let fx = (x as f32 + dx[i] * sx).clamp(0.0, (w - 1) as f32);
            let fy = (y as f32 + dy[i] * sy).clamp(0.0, (h - 1) as f32);
            let (x0, y0) = (fx as usize, fy as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (ax, ay) = (fx - x0 as f32, fy - y0 as f32);
            let top = img[y0 * w + x0] * (1.0 - ax) + img[y0 * w + x1] * ax;
            let bot = img[y1 * w + x0] * (1.0 - ax) + img[y1 * w + x1] * ax;
            *o = top * (1.0 - ay) + bot * ay;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::chest::warp::warp;
    use candle_core::{Device, Tensor};

    #[test]
    fn upsampled_constant_field_stays_constant_and_corners_match() {
        let d: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let up = upsample_field(&d, 4, 7, 10);
        assert_eq!(up[0], 0.0);
        assert_eq!(up[6], 3.0);
        assert_eq!(up[9 * 7], 12.0);
        assert_eq!(up[9 * 7 + 6], 15.0);
        assert!(upsample_field(&[0.25; 16], 4, 5, 3)
            .iter()
            .all(|&v| v == 0.25));
    }

    #[test]
    fn native_warp_matches_tensor_warp() {
        let (w, h) = (12usize, 9usize);
        let img: Vec<f32> = (0..w * h)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0)
            .collect();
        let dx: Vec<f32> = (0..w * h).map(|i| ((i % 5) as f32 - 2.0) * 0.05).collect();
        let dy: Vec<f32> = (0..w * h).map(|i| ((i % 3) as f32 - 1.0) * 0.07).collect();
        let got = warp_image(&img, w, h, &dx, &dy);
        let dev = Device::Cpu;
        let x = Tensor::from_vec(img.clone(), (1, 1, h, w), &dev).unwrap();
        let d = Tensor::cat(
            &[
                Tensor::from_vec(dx, (1, 1, h, w), &dev).unwrap(),
                Tensor::from_vec(dy, (1, 1, h, w), &dev).unwrap(),
            ],
            1,
        )
        .unwrap();
        let want: Vec<f32> = warp(&x, &d)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let zero = vec![0f32; w * h];
        assert_eq!(warp_image(&img, w, h, &zero, &zero), img);
    }
}
