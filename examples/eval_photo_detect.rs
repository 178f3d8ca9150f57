//! Detection recall and CPU timing of the photo route's MTCNN.
//!
//!   cargo run --release --example eval_photo_detect [-- --verbose]
//!
//! Recall: the share of photos with at least one face found, over the 64
//! deepface photos (all show at least one face; `couple.jpg` and
//! `selfie-many-people.jpg` several), the astronaut portrait and the derived
//! VL Photographic instances. Timing: detection + face replacement per photo
//! resized to 1024×768, on the CPU.
//!
//! The deepface photos are for internal evaluation only: this prints counts
//! and timings, and writes nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use deidgate::models::photo::{
    replace_faces, KeepRegion, Mtcnn, ReplaceConfig, RgbImage, DEFAULT_WEIGHTS,
};
use dicom_dictionary_std::tags;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

fn decode(bytes: &[u8]) -> Result<RgbImage> {
    let img = image::load_from_memory(bytes)?.to_rgb8();
    RgbImage::new(img.width(), img.height(), img.into_raw())
}

fn resized(img: &RgbImage, w: u32, h: u32) -> Result<RgbImage> {
    let buf = image::RgbImage::from_raw(img.width, img.height, img.data.clone())
        .context("image buffer")?;
    let out = image::imageops::resize(&buf, w, h, image::imageops::FilterType::Triangle);
    RgbImage::new(w, h, out.into_raw())
}

/// An 8-bit RGB DICOM photo: uncompressed (interleaved or planar) or JPEG
/// baseline (the decoder converts YBR to RGB).
fn load_dicom(path: &Path) -> Result<RgbImage> {
    let obj = dicom_object::open_file(path)?;
    let num = |tag| -> Result<u32> { Ok(obj.element(tag)?.to_int::<u32>()?) };
    let (rows, cols) = (num(tags::ROWS)?, num(tags::COLUMNS)?);
    let pixels = obj.element(tags::PIXEL_DATA)?;
    if let Some(frags) = pixels.value().fragments() {
        return decode(&frags.concat());
    }
    if num(tags::SAMPLES_PER_PIXEL)? != 3 {
        bail!("{} is not RGB", path.display());
    }
    let raw = pixels.to_bytes()?;
    let n = (rows * cols) as usize;
    let planar = obj
        .element_opt(tags::PLANAR_CONFIGURATION)?
        .map(|e| e.to_int::<u32>())
        .transpose()?
        .unwrap_or(0);
    let data = if planar == 1 {
        (0..n)
            .flat_map(|i| [raw[i], raw[n + i], raw[2 * n + i]])
            .collect()
    } else {
        raw[..n * 3].to_vec()
    };
    RgbImage::new(cols, rows, data)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() -> Result<()> {
    let verbose = std::env::args().any(|a| a == "--verbose");
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_WEIGHTS);
    let det = Mtcnn::load(&weights, &Device::Cpu)?;
    let data = data_dir();

    let mut photos: Vec<(String, RgbImage)> = Vec::new();
    let csv = std::fs::read_to_string(data.join("faces/deepface/identities.csv"))?;
    for line in csv.lines().skip(1) {
        let file = line.split(',').next().unwrap_or_default();
        if file.is_empty() {
            continue;
        }
        let bytes = std::fs::read(data.join("faces/deepface").join(file))?;
        photos.push((format!("deepface/{file}"), decode(&bytes)?));
    }
    let n_deepface = photos.len();
    photos.push((
        "images/astronaut.png".into(),
        decode(&std::fs::read(data.join("images/astronaut.png"))?)?,
    ));
    for f in ["vl_photo_face_rgb.dcm", "vl_photo_face_jpeg.dcm"] {
        photos.push((
            format!("derived/{f}"),
            load_dicom(&data.join("derived").join(f))?,
        ));
    }

    // Recall at native resolution.
    let mut found = 0;
    let mut found_deepface = 0;
    let mut faces_total = 0;
    let mut detect_ms = Vec::new();
    for (i, (name, img)) in photos.iter().enumerate() {
        let t = Instant::now();
        let faces = det.detect(img)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        detect_ms.push(ms);
        faces_total += faces.len();
        if !faces.is_empty() {
            found += 1;
            if i < n_deepface {
                found_deepface += 1;
            }
        }
        if verbose || faces.is_empty() {
            println!(
                "{name}: {}x{} faces={} best={:.3} {ms:.0} ms",
                img.width,
                img.height,
                faces.len(),
                faces.first().map(|f| f.score).unwrap_or(0.0)
            );
        }
    }
    println!(
        "recall (>=1 face per photo): deepface {found_deepface}/{n_deepface} = {:.1} %, all {found}/{} = {:.1} %, faces found {faces_total}",
        100.0 * found_deepface as f64 / n_deepface as f64,
        photos.len(),
        100.0 * found as f64 / photos.len() as f64
    );

    // Timing at 1024x768: detection alone and detection + replacement.
    let cfg = ReplaceConfig {
        keep: vec![KeepRegion::Periocular],
        seed: 1,
        ..ReplaceConfig::default()
    };
    let mut det_ms = Vec::new();
    let mut total_ms = Vec::new();
    let mut found_1024 = 0;
    let mut redetected = 0;
    for (_, img) in photos.iter().take(n_deepface) {
        let mut img = resized(img, 1024, 768)?;
        let t = Instant::now();
        let faces = det.detect(&img)?;
        let d = t.elapsed().as_secs_f64() * 1e3;
        replace_faces(&mut img, &faces, &cfg);
        let total = t.elapsed().as_secs_f64() * 1e3;
        det_ms.push(d);
        total_ms.push(total);
        if !faces.is_empty() {
            found_1024 += 1;
            // Does the detector still see a face where one was replaced?
            let after = det.detect(&img)?;
            let hit = faces.iter().any(|f| {
                after.iter().any(|a| {
                    let ix = (f.bbox[2].min(a.bbox[2]) - f.bbox[0].max(a.bbox[0])).max(0.0);
                    let iy = (f.bbox[3].min(a.bbox[3]) - f.bbox[1].max(a.bbox[1])).max(0.0);
                    let area = (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]);
                    ix * iy > 0.5 * area
                })
            });
            redetected += hit as usize;
        }
    }
    for v in [&mut det_ms, &mut total_ms] {
        v.sort_by(f64::total_cmp);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "1024x768 CPU ({} threads): detect mean {:.0} ms, median {:.0}, p95 {:.0}; detect+replace mean {:.0} ms, median {:.0}, p95 {:.0}, max {:.0}",
        candle_core::utils::get_num_threads(),
        mean(&det_ms),
        percentile(&det_ms, 0.5),
        percentile(&det_ms, 0.95),
        mean(&total_ms),
        percentile(&total_ms, 0.5),
        percentile(&total_ms, 0.95),
        total_ms.last().copied().unwrap_or(0.0)
    );
    println!(
        "1024x768: photos with >=1 face {found_1024}/{n_deepface}; after replacement (periocular kept) a face is re-detected at the same place in {redetected}/{found_1024}"
    );
    Ok(())
}
