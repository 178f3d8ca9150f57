//! The PP-OCRv4 text recogniser (`deidgate::models::text::TextReader`):
//! lines rendered by scripts/text-fixtures.py in eight fonts and sizes
//! (10–20 px), read light-on-dark and dark-on-light, and the real burned-in
//! band of `JPGLosslessP14SV1_1s_1f_8b.dcm` found by the detector and read.
//! The weights are required (scripts/fetch-weights.sh fetches them).
//!
//! Ignored by default: `rec_parity_with_onnxruntime` (outputs written by
//! scripts/text-parity.py, `TEXT_PARITY_DIR`) and `line_time` (ms per line).

mod common;

use common::text_lines::{fixture, Line};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use candle_core::Device;
use deidgate::models::text::{Fmap, TextDetector, TextReader};
use dicom_pixeldata::PixelDecoder;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn models() -> PathBuf {
    let dir = root().join("models/text");
    assert!(
        dir.join(deidgate::models::text::reader::REC_WEIGHTS)
            .is_file(),
        "text recogniser weights missing in {}: run scripts/fetch-weights.sh first",
        dir.display()
    );
    dir
}

fn reader() -> &'static TextReader {
    static R: OnceLock<TextReader> = OnceLock::new();
    R.get_or_init(|| TextReader::load(&models()).expect("load text recogniser"))
}

/// `line`'s ink in `fg` on `bg`, with a margin of `m` pixels: an RGB image.
fn render(
    mask: &image::GrayImage,
    line: &Line,
    m: usize,
    fg: u8,
    bg: u8,
) -> (Vec<u8>, usize, usize) {
    let (w, h) = (line.x1 - line.x0 + 2 * m, line.y1 - line.y0 + 2 * m);
    let mut rgb = vec![bg; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = (
                (line.x0 + x) as i64 - m as i64,
                (line.y0 + y) as i64 - m as i64,
            );
            if sx < 0 || sy < 0 || sx >= mask.width() as i64 || sy >= mask.height() as i64 {
                continue;
            }
            let a = mask.get_pixel(sx as u32, sy as u32)[0] as f32 / 255.0;
            let v = (bg as f32 * (1.0 - a) + fg as f32 * a).round() as u8;
            rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].fill(v);
        }
    }
    (rgb, w, h)
}

/// Letters and digits, upper case: `^` (PN's separator) reads as `~` at
/// 10 px, and spacing is not what a comparison looks at.
fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

#[test]
fn rendered_lines_are_read_back() {
    let (mask, lines) = fixture();
    let mut wrong = Vec::new();
    for line in &lines {
        for (fg, bg) in [(255u8, 0u8), (0, 255), (200, 60)] {
            let (rgb, w, h) = render(&mask, line, 4, fg, bg);
            let r = reader().read_line(&rgb, w, h).unwrap();
            if norm(&r.text) != norm(&line.text) {
                wrong.push(format!(
                    "{:?} read {:?} ({:.2}) on {bg}",
                    line.text, r.text, r.confidence
                ));
            } else {
                assert!(
                    r.confidence > 0.8,
                    "{:?}: confidence {}",
                    line.text,
                    r.confidence
                );
            }
        }
    }
    assert!(wrong.is_empty(), "misread: {wrong:#?}");
}

#[test]
fn a_blank_box_reads_nothing() {
    let rgb = vec![30u8; 120 * 20 * 3];
    let r = reader().read_line(&rgb, 120, 20).unwrap();
    assert!(r.text.trim().is_empty(), "read {:?} in a blank box", r.text);
}

/// The detector's boxes on a real ultrasound file, each read.
fn read_real(name: &str) -> Vec<String> {
    let data = root().join("../shared/data/dicom/us").join(name);
    let obj = dicom_object::open_file(&data).expect("open DICOM");
    let d = obj.decode_pixel_data().expect("decode pixel data");
    assert_eq!((d.bits_allocated(), d.samples_per_pixel()), (8, 1));
    let (w, h) = (d.columns() as usize, d.rows() as usize);
    let rgb: Vec<u8> = d.data()[..w * h].iter().flat_map(|&v| [v, v, v]).collect();
    let det = TextDetector::load(&models(), &Device::Cpu).unwrap();
    det.detect(&rgb, w, h)
        .unwrap()
        .iter()
        .map(|b| {
            let r = (b.x0 as usize, b.y0 as usize, b.x1 as usize, b.y1 as usize);
            reader().read(&rgb, w, h, r).unwrap().text
        })
        .collect()
}

/// Real scanner text, found by the detector and read: the patient band of
/// `GREYSCALE_IMAGE.dcm` (its ID, the birth date of the header as
/// MM/DD/YYYY) and the labels of `JPGLosslessP14SV1_1s_1f_8b.dcm`.
#[test]
fn real_ultrasound_text_is_read() {
    for (file, want) in [
        (
            "GREYSCALE_IMAGE.dcm",
            &["00079241539", "DOB: 08/29/1951", "Adv Breast"][..],
        ),
        (
            "JPGLosslessP14SV1_1s_1f_8b.dcm",
            &["Adult Echo", "Asc Ao Diam 3.3 cm", "TIS0.4 MI 1.4", "65bpm"][..],
        ),
    ] {
        let read = read_real(file);
        let all: Vec<String> = read.iter().map(|t| norm(t)).collect();
        for w in want {
            assert!(
                all.iter().any(|t| t.contains(&norm(w))),
                "{file}: no line reads {w:?}; read {read:?}"
            );
        }
    }
}

/// `TEXT_PARITY_DIR/<name>.rec_input.bin` (u32 h, u32 w, f32 data) and
/// `<name>.rec_logits.bin` (u32 steps, u32 classes, f32 softmax) from
/// scripts/text-parity.py.
#[test]
#[ignore]
fn rec_parity_with_onnxruntime() {
    let dir = PathBuf::from(std::env::var("TEXT_PARITY_DIR").expect("TEXT_PARITY_DIR"));
    let read = |p: &Path| -> (usize, usize, Vec<f32>) {
        let b = std::fs::read(p).unwrap();
        let u = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        let data = b[8..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (u(0), u(4), data)
    };
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".rec_input.bin") else {
            continue;
        };
        let (h, w, input) = read(&p);
        let (steps, classes, want) = read(&dir.join(format!("{stem}.rec_logits.bin")));
        let got = reader().net().forward(&Fmap::new(3, h, w, input)).unwrap();
        assert_eq!((got.steps, got.classes), (steps, classes), "{stem}");
        let mut max = 0f32;
        let mut argmax_diff = 0;
        for (g, r) in got
            .data
            .chunks_exact(classes)
            .zip(want.chunks_exact(classes))
        {
            let m = g.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let z: f32 = g.iter().map(|v| (v - m).exp()).sum();
            let p: Vec<f32> = g.iter().map(|v| (v - m).exp() / z).collect();
            for (a, b) in p.iter().zip(r) {
                max = max.max((a - b).abs());
            }
            let am = |v: &[f32]| {
                v.iter()
                    .enumerate()
                    .fold((0, f32::MIN), |a, (i, &x)| if x > a.1 { (i, x) } else { a })
                    .0
            };
            argmax_diff += (am(&p) != am(r)) as usize;
        }
        println!(
            "{stem}: {steps} steps, max |p − p_ort| {max:.2e}, argmax differs at {argmax_diff}"
        );
        assert!(
            max < 1e-3 && argmax_diff == 0,
            "{stem}: max diff {max}, {argmax_diff} argmax"
        );
        n += 1;
    }
    assert!(n > 0, "no rec inputs in {}", dir.display());
}

#[test]
#[ignore]
fn line_time() {
    let (mask, lines) = fixture();
    let (rgb, w, h) = render(&mask, &lines[0], 4, 255, 0);
    reader().read_line(&rgb, w, h).unwrap();
    let t = Instant::now();
    let n = 50;
    for _ in 0..n {
        reader().read_line(&rgb, w, h).unwrap();
    }
    println!(
        "{:.2} ms per line ({w}x{h})",
        t.elapsed().as_secs_f64() * 1e3 / n as f64
    );
}

/// Lines read together (packed into strips) read as they do one by one.
#[test]
fn packed_lines_read_as_single_lines() {
    let (mask, lines) = fixture();
    let imgs: Vec<(Vec<u8>, usize, usize)> = lines
        .iter()
        .flat_map(|l| [render(&mask, l, 4, 255, 0), render(&mask, l, 4, 0, 255)])
        .collect();
    let refs: Vec<(&[u8], usize, usize)> = imgs.iter().map(|(d, w, h)| (&d[..], *w, *h)).collect();
    let many = reader().read_many(&refs).unwrap();
    assert_eq!(many.len(), refs.len());
    for ((d, w, h), m) in imgs.iter().zip(&many) {
        let one = reader().read_line(d, *w, *h).unwrap();
        assert_eq!(norm(&m.text), norm(&one.text));
        assert!(m.confidence > 0.8, "{:?}: {}", m.text, m.confidence);
    }
}
