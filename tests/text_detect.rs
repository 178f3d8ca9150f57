//! The PP-OCRv4 text detector (`deidgate::models::text`) on real images:
//! PHI-like lines rendered onto a real ultrasound frame, and the real
//! burned-in text band of `JPGLosslessP14SV1_1s_1f_8b.dcm`. The weights are
//! required (scripts/fetch-weights.sh fetches them); without them these tests
//! fail and say so.
//!
//! Also here, ignored by default:
//! - `parity_with_onnxruntime`: compares the Candle network with ONNX Runtime
//!   outputs written by scripts/text-parity.py (`TEXT_PARITY_DIR`).
//! - `frame_time_640x480`: prints ms per 640×480 frame; run it in release.

mod common;

use common::text_lines::{fixture, Line};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use candle_core::Device;
use deidgate::models::text::{DbNet, DetectorConfig, Fmap, TextBox, TextDetector};
use dicom_pixeldata::PixelDecoder;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn data_dir() -> PathBuf {
    let d = root().join("../shared/data");
    assert!(d.is_dir(), "shared test data not found at {}", d.display());
    d
}

fn detector() -> &'static TextDetector {
    static DET: OnceLock<TextDetector> = OnceLock::new();
    DET.get_or_init(|| {
        let dir = root().join("models/text");
        assert!(
            dir.join(deidgate::models::text::DET_WEIGHTS).is_file(),
            "text detector weights missing in {}: run scripts/fetch-weights.sh first",
            dir.display()
        );
        TextDetector::load(&dir, &Device::Cpu).expect("load text detector")
    })
}

/// An interleaved RGB image.
#[derive(Clone)]
struct Rgb {
    w: usize,
    h: usize,
    data: Vec<u8>,
}

impl Rgb {
    fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> Rgb {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in y0..y0 + h {
            data.extend_from_slice(&self.data[(y * self.w + x0) * 3..(y * self.w + x0 + w) * 3]);
        }
        Rgb { w, h, data }
    }

    fn fill(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, col: [u8; 3]) {
        for y in y0..y1 {
            for x in x0..x1 {
                self.data[(y * self.w + x) * 3..(y * self.w + x) * 3 + 3].copy_from_slice(&col);
            }
        }
    }
}

/// The 8-bit MONOCHROME2 ultrasound frame (JPEG lossless) as grey RGB.
fn us_frame() -> Rgb {
    let obj = dicom_object::open_file(data_dir().join("dicom/us/JPGLosslessP14SV1_1s_1f_8b.dcm"))
        .expect("open DICOM");
    let d = obj.decode_pixel_data().expect("decode pixel data");
    assert_eq!((d.bits_allocated(), d.samples_per_pixel()), (8, 1));
    let (w, h) = (d.columns() as usize, d.rows() as usize);
    let data = d.data()[..w * h].iter().flat_map(|&v| [v, v, v]).collect();
    Rgb { w, h, data }
}

/// Blends `line`'s ink from the mask into `img` at `(px, py)` in colour
/// `col`; returns the ink pixels' coordinates in `img`.
fn stamp(
    img: &mut Rgb,
    mask: &image::GrayImage,
    line: &Line,
    px: usize,
    py: usize,
    col: [u8; 3],
) -> Vec<(usize, usize)> {
    let mut ink = Vec::new();
    for y in line.y0..line.y1 {
        for x in line.x0..line.x1 {
            let a = mask.get_pixel(x as u32, y as u32)[0] as f32 / 255.0;
            if a == 0.0 {
                continue;
            }
            let (ix, iy) = (px + x - line.x0, py + y - line.y0);
            let p = &mut img.data[(iy * img.w + ix) * 3..(iy * img.w + ix) * 3 + 3];
            for c in 0..3 {
                p[c] = (p[c] as f32 * (1.0 - a) + col[c] as f32 * a).round() as u8;
            }
            if a > 0.25 {
                ink.push((ix, iy));
            }
        }
    }
    ink
}

fn inside(b: &TextBox, x: usize, y: usize) -> bool {
    (b.x0 as usize) <= x && x < b.x1 as usize && (b.y0 as usize) <= y && y < b.y1 as usize
}

/// Eight PHI-like lines (ink 8–18 px high, several fonts) rendered onto a
/// 640×480 crop of a real ultrasound frame: white and yellow on the noisy
/// sector, grey of low contrast, dark on a light label, cyan on a dark band,
/// red on the image. Every ink pixel must fall inside a detected box.
#[test]
fn rendered_lines_on_ultrasound_are_covered() {
    let (mask, lines) = fixture();
    assert_eq!(lines.len(), 8);
    // The sector and its speckle; the crop holds no text of its own.
    let mut img = us_frame().crop(170, 140, 640, 480);
    // (x, y, colour, optional background band colour)
    type Placement = (usize, usize, [u8; 3], Option<[u8; 3]>);
    let placements: [Placement; 8] = [
        (200, 40, [255, 255, 255], None), // white over the sector edge
        (250, 120, [255, 230, 0], None),  // yellow on speckle
        (40, 200, [170, 170, 170], None), // low-contrast grey
        (330, 230, [20, 20, 20], Some([215, 215, 215])), // dark on a light label
        (60, 300, [0, 220, 255], Some([10, 10, 30])), // cyan on a dark band
        (380, 330, [230, 40, 40], None),  // red on the image
        (30, 400, [255, 255, 255], None), // white, lower left
        (300, 420, [200, 200, 255], None), // pale blue, large
    ];
    let mut inks = Vec::new();
    for (line, &(px, py, col, band)) in lines.iter().zip(&placements) {
        if let Some(bg) = band {
            img.fill(
                px - 4,
                py - 4,
                px + line.x1 - line.x0 + 4,
                py + line.y1 - line.y0 + 4,
                bg,
            );
        }
        inks.push(stamp(&mut img, &mask, line, px, py, col));
    }
    let boxes = detector().detect(&img.data, img.w, img.h).unwrap();
    println!("{} boxes: {boxes:?}", boxes.len());
    let mut missed = Vec::new();
    for (line, ink) in lines.iter().zip(&inks) {
        let out: Vec<_> = ink
            .iter()
            .filter(|&&(x, y)| !boxes.iter().any(|b| inside(b, x, y)))
            .collect();
        println!(
            "{:<28} ink {:>4} px, uncovered {}",
            line.text,
            ink.len(),
            out.len()
        );
        if !out.is_empty() {
            missed.push(format!(
                "{} ({} of {} ink px uncovered)",
                line.text,
                out.len(),
                ink.len()
            ));
        }
    }
    assert!(missed.is_empty(), "lines not fully covered: {missed:?}");
    // The detector must not simply blank the frame.
    let area: u32 = boxes.iter().map(|b| b.width() * b.height()).sum();
    assert!(
        (area as f64) < 0.25 * (img.w * img.h) as f64,
        "boxes cover {area} px"
    );
}

/// The real burned-in text of JPGLosslessP14SV1_1s_1f_8b.dcm (BurnedInAnnotation
/// NO): the top band's labels at the left and right are found.
#[test]
fn ultrasound_top_band_text_is_found() {
    let img = us_frame();
    let boxes = detector().detect(&img.data, img.w, img.h).unwrap();
    println!("{} boxes: {boxes:?}", boxes.len());
    // Ink centres (read off the decoded frame) of "Adult Echo" (top left) and
    // "TIS0.4  MI 1.4" (top right), and "Asc Ao Diam 3.3 cm" below them.
    for (name, x, y) in [
        ("Adult Echo", 78, 35),
        ("TIS0.4 MI 1.4", 905, 35),
        ("Asc Ao Diam", 210, 75),
    ] {
        assert!(
            boxes
                .iter()
                .any(|b| inside(b, x, y) && b.y0 < 60 + y as u32),
            "no box over {name} at ({x}, {y})"
        );
    }
    let top: Vec<&TextBox> = boxes.iter().filter(|b| b.y1 <= 60).collect();
    assert!(top.len() >= 2, "top band boxes: {top:?}");
}

fn read_bin(path: &Path) -> (usize, usize, Vec<f32>) {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let u = |i: usize| u32::from_le_bytes(raw[i..i + 4].try_into().unwrap()) as usize;
    let data = raw[8..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (u(0), u(4), data)
}

/// Max |Candle − ONNX Runtime| of the probability map on the same input.
#[test]
#[ignore = "needs TEXT_PARITY_DIR from scripts/text-parity.py"]
fn parity_with_onnxruntime() {
    let dir = PathBuf::from(std::env::var("TEXT_PARITY_DIR").expect("set TEXT_PARITY_DIR"));
    let net = DbNet::load(
        &root().join("models/text/ppocr_det.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    for name in ["us_jpgll", "us1_uncr", "astronaut"] {
        let (h, w, input) = read_bin(&dir.join(format!("{name}.input.bin")));
        let (rh, rw, reference) = read_bin(&dir.join(format!("{name}.prob.bin")));
        assert_eq!((h, w), (rh, rw));
        let prob = net.forward(&Fmap::new(3, h, w, input)).unwrap();
        assert_eq!((prob.h, prob.w), (h, w));
        let (mut max, mut sum) = (0f32, 0f64);
        for (a, b) in prob.data.iter().zip(&reference) {
            let d = (a - b).abs();
            max = max.max(d);
            sum += d as f64;
        }
        let flips = prob
            .data
            .iter()
            .zip(&reference)
            .filter(|(a, b)| (**a > 0.3) != (**b > 0.3))
            .count();
        println!(
            "{name} {w}x{h}: max |diff| {max:.2e}, mean {:.2e}, pixels flipping at 0.3: {flips}",
            sum / prob.data.len() as f64
        );
        assert!(max < 1e-3, "{name}: max abs diff {max}");
    }
}

/// Milliseconds per 640×480 frame (network + post-processing), at full
/// size and at a reduced input (longer side 480). Prints only; run with
/// `--release --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release"]
fn frame_time_640x480() {
    let img = us_frame().crop(192, 144, 640, 480);
    let det = detector();
    let dir = root().join("models/text");
    let small = TextDetector::load_with(
        &dir,
        &Device::Cpu,
        DetectorConfig {
            max_side: 480,
            ..DetectorConfig::default()
        },
    )
    .unwrap();
    for (name, d) in [("640x480 input", det), ("480x352 input", &small)] {
        d.detect(&img.data, img.w, img.h).unwrap(); // warm-up
        let n = 10;
        let t = Instant::now();
        for _ in 0..n {
            d.detect(&img.data, img.w, img.h).unwrap();
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        println!(
            "640x480 frame, {name}: {ms:.1} ms ({} threads)",
            rayon::current_num_threads()
        );
    }
}
