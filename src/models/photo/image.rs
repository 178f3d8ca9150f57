//! The detector's input image and the area resampling MTCNN was trained with.

use anyhow::{ensure, Result};

/// An 8-bit RGB image, rows top to bottom, pixels interleaved `RGBRGB…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self> {
        ensure!(width > 0 && height > 0, "empty image {width}x{height}");
        ensure!(
            data.len() == width as usize * height as usize * 3,
            "RGB image {width}x{height} needs {} bytes, got {}",
            width as usize * height as usize * 3,
            data.len()
        );
        Ok(Self {
            width,
            height,
            data,
        })
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// A window of the source image in pixels, `x0..x1` × `y0..y1` (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

/// Source span `[start, end)` that output cell `i` of `out` averages over `len`
/// inputs, as PyTorch's `interpolate(mode="area")` (adaptive average pooling).
fn area_span(i: usize, out: usize, len: usize) -> (usize, usize) {
    let start = (i * len) / out;
    let end = ((i + 1) * len).div_ceil(out);
    (start, end.max(start + 1))
}

/// Resample `win` of `img` to `out_w`×`out_h` by area averaging and write it
/// interleaved (H, W, C) and normalised as the networks expect,
/// `(v - 127.5) / 128`, into `dst` (length `3 * out_w * out_h`).
///
/// Per output row, the source rows of its span are first summed as integers
/// (a widening add the compiler vectorises), then that one line is summed
/// over each output column's span: the exact integer sum of the cell, divided
/// once by its area. Summing vertically first touches every source pixel
/// once with vector adds and leaves the scalar work to a single line per
/// output row. Large levels run their rows in parallel.
pub fn area_resize_normalized(
    img: &RgbImage,
    win: Window,
    out_w: usize,
    out_h: usize,
    dst: &mut [f32],
) {
    use rayon::prelude::*;
    let (ww, wh) = (win.x1 - win.x0, win.y1 - win.y0);
    debug_assert!(ww > 0 && wh > 0 && dst.len() == 3 * out_w * out_h);
    let xspans: Vec<(usize, usize)> = (0..out_w).map(|i| area_span(i, out_w, ww)).collect();
    let line = out_w * 3;
    let row = |sums: &mut Vec<u32>, (oy, out): (usize, &mut [f32])| {
        area_row(img, win, &xspans, area_span(oy, out_h, wh), sums, out)
    };
    if ww * wh >= PARALLEL_PIXELS {
        dst.par_chunks_mut(line)
            .enumerate()
            .for_each_init(|| vec![0u32; ww * 3], row);
    } else {
        let mut sums = vec![0u32; ww * 3];
        dst.chunks_mut(line)
            .enumerate()
            .for_each(|r| row(&mut sums, r));
    }
}

/// Source windows from this many pixels up are resampled in parallel.
const PARALLEL_PIXELS: usize = 1 << 16;

/// One output row: source rows `ys.0..ys.1` of `win`, summed into `sums`
/// (`3 × window width`), then averaged per column span into `out`. The sums
/// are exact: a cell would need 16 million pixels to overflow a `u32`.
fn area_row(
    img: &RgbImage,
    win: Window,
    xspans: &[(usize, usize)],
    ys: (usize, usize),
    sums: &mut [u32],
    out: &mut [f32],
) {
    let src_w = img.width as usize;
    let ww3 = (win.x1 - win.x0) * 3;
    sums.fill(0);
    for r in ys.0..ys.1 {
        let start = ((win.y0 + r) * src_w + win.x0) * 3;
        for (s, &v) in sums.iter_mut().zip(&img.data[start..start + ww3]) {
            *s += v as u32;
        }
    }
    let rows = (ys.1 - ys.0) as f32;
    for (o, &(s, e)) in xspans.iter().enumerate() {
        let mut acc = [0u32; 3];
        for px in sums[s * 3..e * 3].chunks_exact(3) {
            acc[0] += px[0];
            acc[1] += px[1];
            acc[2] += px[2];
        }
        let inv = 1.0 / ((e - s) as f32 * rows);
        for ch in 0..3 {
            out[o * 3 + ch] = (acc[ch] as f32 * inv - 127.5) * 0.0078125;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_input() {
        // Downscale 5 -> 2: PyTorch uses [0,3) and [2,5).
        assert_eq!(area_span(0, 2, 5), (0, 3));
        assert_eq!(area_span(1, 2, 5), (2, 5));
        // Upscale 2 -> 4 repeats pixels.
        let spans: Vec<_> = (0..4).map(|i| area_span(i, 4, 2)).collect();
        assert_eq!(spans, vec![(0, 1), (0, 1), (1, 2), (1, 2)]);
    }

    #[test]
    fn resize_averages_and_normalises() {
        // 2x1 image: black and white; resized to 1x1 gives the mean grey.
        let img = RgbImage::new(2, 1, vec![0, 0, 0, 255, 255, 255]).unwrap();
        let mut out = vec![0f32; 3];
        let win = Window {
            x0: 0,
            y0: 0,
            x1: 2,
            y1: 1,
        };
        area_resize_normalized(&img, win, 1, 1, &mut out);
        for v in out {
            assert!(v.abs() < 1e-6, "{v}");
        }
    }

    #[test]
    fn resize_matches_naive_area_average() {
        // A window of a noisy image, down- and upscaled, both the serial and
        // the parallel path: every cell is the plain mean of its span.
        let (w, h) = (300u32, 260u32);
        let data: Vec<u8> = (0..w * h * 3)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let img = RgbImage::new(w, h, data).unwrap();
        for (win, ow, oh) in [
            (
                Window {
                    x0: 0,
                    y0: 0,
                    x1: 300,
                    y1: 260,
                },
                181,
                157,
            ),
            (
                Window {
                    x0: 7,
                    y0: 11,
                    x1: 40,
                    y1: 29,
                },
                24,
                24,
            ),
            (
                Window {
                    x0: 3,
                    y0: 5,
                    x1: 13,
                    y1: 9,
                },
                48,
                48,
            ),
        ] {
            let mut out = vec![0f32; ow * oh * 3];
            area_resize_normalized(&img, win, ow, oh, &mut out);
            for oy in 0..oh {
                let (ys, ye) = area_span(oy, oh, win.y1 - win.y0);
                for ox in 0..ow {
                    let (xs, xe) = area_span(ox, ow, win.x1 - win.x0);
                    for ch in 0..3 {
                        let mut sum = 0f64;
                        for y in ys..ye {
                            for x in xs..xe {
                                let p = img.pixel((win.x0 + x) as u32, (win.y0 + y) as u32);
                                sum += p[ch] as f64;
                            }
                        }
                        let mean = sum / ((ye - ys) * (xe - xs)) as f64;
                        let want = (mean - 127.5) / 128.0;
                        let got = out[(oy * ow + ox) * 3 + ch] as f64;
                        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_wrong_length() {
        assert!(RgbImage::new(2, 2, vec![0; 11]).is_err());
    }
}
