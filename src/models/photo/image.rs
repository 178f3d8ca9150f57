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
/// Area averaging is separable, so it runs as a horizontal then a vertical pass.
pub fn area_resize_normalized(
    img: &RgbImage,
    win: Window,
    out_w: usize,
    out_h: usize,
    dst: &mut [f32],
) {
    let src_w = img.width as usize;
    let (ww, wh) = (win.x1 - win.x0, win.y1 - win.y0);
    debug_assert!(ww > 0 && wh > 0 && dst.len() == 3 * out_w * out_h);
    let xspans: Vec<(usize, usize)> = (0..out_w).map(|i| area_span(i, out_w, ww)).collect();
    // Horizontal pass: for every source row of the window, out_w averaged RGB.
    let mut rows = vec![0f32; wh * out_w * 3];
    for r in 0..wh {
        let start = ((win.y0 + r) * src_w + win.x0) * 3;
        let row = &img.data[start..start + ww * 3];
        let dst_row = &mut rows[r * out_w * 3..(r + 1) * out_w * 3];
        for (o, &(s, e)) in xspans.iter().enumerate() {
            let mut acc = [0f32; 3];
            for px in row[s * 3..e * 3].chunks_exact(3) {
                acc[0] += px[0] as f32;
                acc[1] += px[1] as f32;
                acc[2] += px[2] as f32;
            }
            let inv = 1.0 / (e - s) as f32;
            dst_row[o * 3] = acc[0] * inv;
            dst_row[o * 3 + 1] = acc[1] * inv;
            dst_row[o * 3 + 2] = acc[2] * inv;
        }
    }
    // Vertical pass straight into the normalised output.
    let line = out_w * 3;
    for oy in 0..out_h {
        let (s, e) = area_span(oy, out_h, wh);
        let inv = 1.0 / (e - s) as f32;
        let out = &mut dst[oy * line..(oy + 1) * line];
        out.copy_from_slice(&rows[s * line..(s + 1) * line]);
        for r in s + 1..e {
            for (o, v) in out.iter_mut().zip(&rows[r * line..(r + 1) * line]) {
                *o += v;
            }
        }
        for o in out.iter_mut() {
            *o = (*o * inv - 127.5) * 0.0078125;
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
    fn rejects_wrong_length() {
        assert!(RgbImage::new(2, 2, vec![0; 11]).is_err());
    }
}
