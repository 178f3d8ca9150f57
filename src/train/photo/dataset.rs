//! Training data for `deidgate train photo`: a folder of face photographs
//! (png/jpg), optional masks of the medical regions (same file stem, png,
//! white = medical), cut into face crops.
//!
//! With the MTCNN weights, every detected face becomes one crop, framed as
//! generation will frame it ([`CropBox::around`]); photos
//! without a face are skipped. Without a detector each photo is one crop of
//! the whole image, for data that is already cropped to the face (MeMa is).
//! Training only, so it lives in `crate::train`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use super::train::Batch;
use crate::models::photo::image::RgbImage;
use crate::models::photo::medsem::crop::{crop_mask, crop_rgb, CropBox};
use crate::models::photo::Mtcnn;

/// One crop: planar `3×S×S` in [-1, 1] and an `S×S` 0/1 mask.
pub struct Sample {
    pub pixels: Vec<f32>,
    pub mask: Vec<f32>,
}

/// What loading found, for the progress output.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DataReport {
    pub images: usize,
    pub faces: usize,
    pub without_face: usize,
    pub with_mask: usize,
    pub detector: bool,
}

pub struct Dataset {
    pub size: usize,
    pub samples: Vec<Sample>,
    pub report: DataReport,
}

/// The png/jpg files directly in `dir`, sorted by name.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if p.is_file() && ["png", "jpg", "jpeg"].contains(&ext.as_str()) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn read_rgb(path: &Path) -> Result<RgbImage> {
    let img = image::open(path)
        .with_context(|| format!("cannot decode {}", path.display()))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    RgbImage::new(w, h, img.into_raw())
}

/// The mask for `image` in `masks`, if there is one; it must have the
/// image's size.
fn read_mask(masks: &Path, image: &Path, img: &RgbImage) -> Result<Option<Vec<u8>>> {
    let Some(stem) = image.file_stem() else {
        return Ok(None);
    };
    let path = masks.join(stem).with_extension("png");
    if !path.exists() {
        return Ok(None);
    }
    let m = image::open(&path)
        .with_context(|| format!("cannot decode {}", path.display()))?
        .to_luma8();
    if m.dimensions() != (img.width, img.height) {
        bail!(
            "{}: mask is {}x{}, its image {}x{}",
            path.display(),
            m.width(),
            m.height(),
            img.width,
            img.height
        );
    }
    Ok(Some(m.into_raw()))
}

/// Loads and crops every photo of `data`. `progress` is called once per
/// photo.
pub fn load(
    data: &Path,
    masks: Option<&Path>,
    size: usize,
    detector: Option<&Mtcnn>,
    mut progress: impl FnMut(),
) -> Result<Dataset> {
    let files = image_files(data)?;
    if files.is_empty() {
        bail!("{}: no png or jpg files", data.display());
    }
    let mut report = DataReport {
        detector: detector.is_some(),
        ..DataReport::default()
    };
    let mut samples = Vec::new();
    for path in &files {
        progress();
        let img = read_rgb(path)?;
        report.images += 1;
        let mask = match masks {
            Some(dir) => read_mask(dir, path, &img)?,
            None => None,
        };
        report.with_mask += mask.is_some() as usize;
        let boxes = match detector {
            Some(d) => d
                .detect(&img)
                .with_context(|| format!("face detector failed on {}", path.display()))?
                .iter()
                .map(CropBox::around)
                .collect(),
            None => vec![CropBox::whole(img.width, img.height)],
        };
        if boxes.is_empty() {
            report.without_face += 1;
        }
        for b in boxes {
            report.faces += 1;
            samples.push(Sample {
                pixels: crop_rgb(&img, &b, size),
                mask: match &mask {
                    Some(m) => crop_mask(m, img.width as usize, img.height as usize, &b, size),
                    None => vec![0.0; size * size],
                },
            });
        }
    }
    if samples.is_empty() {
        bail!("{}: no face found in any photo", data.display());
    }
    Ok(Dataset {
        size,
        samples,
        report,
    })
}

impl Dataset {
    /// The samples at `idx` as one batch on `device`.
    pub fn batch(&self, idx: &[usize], device: &Device) -> Result<Batch> {
        let s = self.size;
        let mut crops = Vec::with_capacity(idx.len() * 3 * s * s);
        let mut masks = Vec::with_capacity(idx.len() * s * s);
        for &i in idx {
            crops.extend_from_slice(&self.samples[i].pixels);
            masks.extend_from_slice(&self.samples[i].mask);
        }
        Ok(Batch {
            crops: Tensor::from_vec(crops, (idx.len(), 3, s, s), device)?,
            masks: Tensor::from_vec(masks, (idx.len(), 1, s, s), device)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_whole_images_with_masks() {
        let dir = tempfile::tempdir().unwrap();
        let (data, masks) = (dir.path().join("img"), dir.path().join("mask"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&masks).unwrap();
        image::RgbImage::from_pixel(20, 10, image::Rgb([255, 0, 0]))
            .save(data.join("a.png"))
            .unwrap();
        image::RgbImage::from_pixel(8, 8, image::Rgb([0, 0, 255]))
            .save(data.join("b.jpg"))
            .unwrap();
        image::GrayImage::from_pixel(20, 10, image::Luma([255]))
            .save(masks.join("a.png"))
            .unwrap();
        std::fs::write(data.join("notes.txt"), "x").unwrap();
        let ds = load(&data, Some(&masks), 16, None, || {}).unwrap();
        assert_eq!(ds.samples.len(), 2);
        assert_eq!(ds.report.with_mask, 1);
        assert!(ds.samples[0].mask.iter().all(|&m| m == 1.0));
        assert!(ds.samples[1].mask.iter().all(|&m| m == 0.0));
        assert!((ds.samples[0].pixels[0] - 1.0).abs() < 1e-6);
        let b = ds.batch(&[0, 1], &Device::Cpu).unwrap();
        assert_eq!(b.crops.dims(), &[2, 3, 16, 16]);
        assert_eq!(b.masks.dims(), &[2, 1, 16, 16]);
    }
}
