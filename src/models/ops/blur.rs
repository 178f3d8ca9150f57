//! Separable Gaussian smoothing with replicate padding, which keeps the
//! chest displacement field smooth and bounded.

use candle_core::{Result, Tensor};

/// Normalised 1-D Gaussian taps (sum 1).
pub fn gaussian_taps(size: usize, sigma: f64) -> Vec<f32> {
    let c = (size as f64 - 1.0) / 2.0;
    let raw: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = raw.iter().sum();
    raw.iter().map(|v| (v / s) as f32).collect()
}

/// Separable Gaussian smoothing of every channel of an N×C×H×W tensor with
/// **replicate** padding (edge values repeated). Replicate rather than zero
/// padding so that a displacement field is not pulled towards zero at the
/// image border; and because the taps are non-negative and sum to one, every
/// output is a convex combination of inputs, so |smoothed| <= max |input|.
pub fn gaussian_blur(xs: &Tensor, size: usize, sigma: f64) -> Result<Tensor> {
    let (n, c, h, w) = xs.dims4()?;
    let taps = gaussian_taps(size, sigma);
    let r = size / 2;
    let dev = xs.device();
    let kx = Tensor::from_vec(taps.clone(), (1, 1, 1, size), dev)?.to_dtype(xs.dtype())?;
    let ky = Tensor::from_vec(taps, (1, 1, size, 1), dev)?.to_dtype(xs.dtype())?;
    let flat = xs.reshape((n * c, 1, h, w))?;
    let padded = flat.pad_with_same(3, r, r)?;
    let rows = padded.conv2d(&kx, 0, 1, 1, 1)?;
    let padded = rows.pad_with_same(2, r, r)?;
    padded.conv2d(&ky, 0, 1, 1, 1)?.reshape((n, c, h, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ops::tensor::rnd;
    use candle_core::Device;

    #[test]
    fn gaussian_blur_matches_naive_replicate_convolution() {
        let dev = Device::Cpu;
        let (h, w) = (12, 10);
        let inp = rnd(h * w, 7);
        let t = Tensor::from_vec(inp.clone(), (1, 1, h, w), &dev).unwrap();
        let got: Vec<f32> = gaussian_blur(&t, 9, 2.0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Naive 2-D 9×9 Gaussian, replicate border, f64, built from exp directly.
        let g = |d: i64| (-(d * d) as f64 / 8.0).exp();
        let norm: f64 = (-4..=4).map(g).sum::<f64>().powi(2);
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                let mut acc = 0.0;
                for dy in -4..=4i64 {
                    for dx in -4..=4i64 {
                        let yy = (y + dy).clamp(0, h as i64 - 1) as usize;
                        let xx = (x + dx).clamp(0, w as i64 - 1) as usize;
                        acc += g(dy) * g(dx) * inp[yy * w + xx] as f64;
                    }
                }
                let want = acc / norm;
                let a = got[y as usize * w + x as usize] as f64;
                assert!((a - want).abs() < 1e-5, "({y},{x}) {a} vs {want}");
            }
        }
        // Taps are a normalised, symmetric Gaussian.
        let taps = gaussian_taps(9, 2.0);
        assert!((taps.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((taps[0] - taps[8]).abs() < 1e-9 && taps[4] > taps[3]);
    }
}
