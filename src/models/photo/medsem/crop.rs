//! Crop geometry and resampling shared by training and generation: both cut
//! the same square around a face, so the decoder renders faces framed the
//! way it learnt them.

use super::super::detect::Face;
use super::super::image::RgbImage;
use super::super::replace::replaced_bounds;

/// A source rectangle in image pixels (may extend past the image).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropBox {
    pub x0: f32,
    pub y0: f32,
    pub width: f32,
    pub height: f32,
}

impl CropBox {
    /// The square around the area face replacement touches (ellipse and
    /// feather), with the default feather.
    pub fn around(face: &Face) -> Self {
        let feather = super::super::replace::ReplaceConfig::default().feather;
        let [x0, y0, x1, y1] = replaced_bounds(face, feather);
        let side = (x1 - x0).max(y1 - y0).max(1.0);
        let (cx, cy) = (0.5 * (x0 + x1), 0.5 * (y0 + y1));
        Self {
            x0: cx - 0.5 * side,
            y0: cy - 0.5 * side,
            width: side,
            height: side,
        }
    }

    /// The whole image (training without a detector: aspect not kept).
    pub fn whole(width: u32, height: u32) -> Self {
        Self {
            x0: 0.0,
            y0: 0.0,
            width: width as f32,
            height: height as f32,
        }
    }

    /// Image coordinates of crop pixel centre `(i, j)` in a `size` crop.
    fn source(&self, i: usize, j: usize, size: usize) -> (f32, f32) {
        (
            self.x0 + (i as f32 + 0.5) * self.width / size as f32 - 0.5,
            self.y0 + (j as f32 + 0.5) * self.height / size as f32 - 0.5,
        )
    }

    /// Crop coordinates (continuous, pixel centres at integers) of image
    /// pixel `(x, y)` in a `size` crop.
    pub fn to_crop(&self, x: u32, y: u32, size: usize) -> (f32, f32) {
        (
            (x as f32 + 0.5 - self.x0) * size as f32 / self.width - 0.5,
            (y as f32 + 0.5 - self.y0) * size as f32 / self.height - 0.5,
        )
    }
}

/// Bilinear sample of a `w`×`h` plane at continuous `(x, y)`, edges clamped.
pub fn bilinear(plane: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize| plane[yy * w + xx];
    let top = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * fx;
    let bottom = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * fx;
    top + (bottom - top) * fy
}

/// `size`×`size` crop of `img` as planar `3×size×size` in [-1, 1].
pub fn crop_rgb(img: &RgbImage, b: &CropBox, size: usize) -> Vec<f32> {
    let (w, h) = (img.width as usize, img.height as usize);
    let planes: Vec<Vec<f32>> = (0..3)
        .map(|c| img.data[c..].iter().step_by(3).map(|&v| v as f32).collect())
        .collect();
    let mut out = vec![0f32; 3 * size * size];
    for j in 0..size {
        for i in 0..size {
            let (x, y) = b.source(i, j, size);
            for (c, plane) in planes.iter().enumerate() {
                out[(c * size + j) * size + i] = bilinear(plane, w, h, x, y) / 127.5 - 1.0;
            }
        }
    }
    out
}

/// `size`×`size` crop of a grey mask (`w`×`h`, 0–255) as 0/1 (white =
/// medical region).
pub fn crop_mask(mask: &[u8], w: usize, h: usize, b: &CropBox, size: usize) -> Vec<f32> {
    let plane: Vec<f32> = mask.iter().map(|&v| v as f32 / 255.0).collect();
    let mut out = vec![0f32; size * size];
    for j in 0..size {
        for i in 0..size {
            let (x, y) = b.source(i, j, size);
            out[j * size + i] = if bilinear(&plane, w, h, x, y) >= 0.5 {
                1.0
            } else {
                0.0
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_crop_round_trips() {
        let data: Vec<u8> = (0..4 * 4 * 3).map(|i| (i * 5) as u8).collect();
        let img = RgbImage::new(4, 4, data.clone()).unwrap();
        let c = crop_rgb(&img, &CropBox::whole(4, 4), 4);
        for y in 0..4 {
            for x in 0..4 {
                for ch in 0..3 {
                    let v = (c[(ch * 4 + y) * 4 + x] + 1.0) * 127.5;
                    assert!((v - data[(y * 4 + x) * 3 + ch] as f32).abs() < 1e-3);
                }
                let (u, v) = CropBox::whole(4, 4).to_crop(x as u32, y as u32, 4);
                assert!((u - x as f32).abs() < 1e-6 && (v - y as f32).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn mask_is_binary() {
        let mask = [0u8, 255, 255, 0];
        let m = crop_mask(&mask, 2, 2, &CropBox::whole(2, 2), 2);
        assert_eq!(m, vec![0.0, 1.0, 1.0, 0.0]);
    }
}
