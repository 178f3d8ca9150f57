//! Detection recall and CPU timing of the photo route's MTCNN.
//!
//!   cargo run --release --example eval_photo_detect [-- --verbose] [--timing]
//!
//! `--timing` runs only the 1024×768 timing (no native-resolution recall, no
//! 40 px run): for profiling.
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
    replace_faces, DetectConfig, KeepRegion, Mtcnn, ReplaceConfig, RgbImage, DEFAULT_WEIGHTS,
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

/// CPU time of the whole process in ms: on a shared machine wall time
/// measures the neighbours too.
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() -> Result<()> {
    deidgate::allocator::keep_freed_memory();
    let verbose = std::env::args().any(|a| a == "--verbose");
    let timing_only = std::env::args().any(|a| a == "--timing");
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
        if timing_only {
            break;
        }
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
    if !timing_only {
        println!(
        "recall (>=1 face per photo): deepface {found_deepface}/{n_deepface} = {:.1} %, all {found}/{} = {:.1} %, faces found {faces_total}",
        100.0 * found_deepface as f64 / n_deepface as f64,
        photos.len(),
        100.0 * found as f64 / photos.len() as f64
    );
    }

    // Timing at 1024x768: detection alone and detection + replacement.
    let cfg = ReplaceConfig {
        keep: vec![KeepRegion::Periocular],
        seed: 1,
        ..ReplaceConfig::default()
    };
    let mut det_ms = Vec::new();
    let mut total_ms = Vec::new();
    let mut cpu_total = Vec::new();
    let mut replace_ms = Vec::new();
    let mut found_1024 = 0;
    let mut redetected = 0;
    for (_, img) in photos.iter().take(n_deepface) {
        let mut img = resized(img, 1024, 768)?;
        let c0 = cpu_ms();
        let t = Instant::now();
        let faces = det.detect(&img)?;
        let d = t.elapsed().as_secs_f64() * 1e3;
        replace_faces(&mut img, &faces, &cfg);
        let total = t.elapsed().as_secs_f64() * 1e3;
        cpu_total.push(cpu_ms() - c0);
        det_ms.push(d);
        total_ms.push(total);
        replace_ms.push(total - d);
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
    for v in [&mut det_ms, &mut total_ms, &mut cpu_total, &mut replace_ms] {
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
        "1024x768: replacement alone mean {:.1} ms; CPU time (all threads) of detect+replace mean {:.0} ms, median {:.0}; load average {}",
        mean(&replace_ms),
        mean(&cpu_total),
        percentile(&cpu_total, 0.5),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    // The same with a 40-pixel minimum face (a face at least ~5 % of the
    // image height, usual for clinical photos): a quarter of P-Net's work.
    let cfg40 = DetectConfig {
        min_face_size: 40.0,
        ..DetectConfig::default()
    };
    let (mut found40, mut ms40, mut found40_native) = (0, Vec::new(), 0);
    let runs40 = if timing_only { 0 } else { n_deepface };
    for (_, img) in photos.iter().take(runs40) {
        found40_native += !det.detect_with(img, &cfg40)?.is_empty() as usize;
        let mut img = resized(img, 1024, 768)?;
        let t = Instant::now();
        let faces = det.detect_with(&img, &cfg40)?;
        replace_faces(&mut img, &faces, &cfg);
        ms40.push(t.elapsed().as_secs_f64() * 1e3);
        found40 += !faces.is_empty() as usize;
    }
    ms40.sort_by(f64::total_cmp);
    if timing_only {
        return Ok(());
    }
    println!(
        "min face 40 px: recall native {found40_native}/{n_deepface}, at 1024x768 {found40}/{n_deepface}; detect+replace mean {:.0} ms, median {:.0}, p95 {:.0}",
        mean(&ms40),
        percentile(&ms40, 0.5),
        percentile(&ms40, 0.95)
    );
    println!(
        "1024x768: photos with >=1 face {found_1024}/{n_deepface}; after replacement (periocular kept) a face is re-detected at the same place in {redetected}/{found_1024}"
    );
    Ok(())
}
