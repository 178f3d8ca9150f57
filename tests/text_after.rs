//! Text is removed from every image, including those a face or body route
//! has cleaned: a chest radiograph is deformed and then its printed label
//! filled; a photograph has its face replaced and then its name badge
//! filled, and an audited `reid photo` undoes both, exactly. The labels are
//! real glyphs (tests/fixtures/text_lines.png, rendered by
//! scripts/text-fixtures.py) stamped onto real images; Tesseract and
//! dcmj2pnm read the results back.

mod common;

use common::gateway::*;
use common::*;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One line of the fixture: its ink box in the mask.
struct Line {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

fn fixture() -> (image::GrayImage, Vec<Line>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mask = image::open(root.join("tests/fixtures/text_lines.png"))
        .unwrap()
        .to_luma8();
    let lines = std::fs::read_to_string(root.join("tests/fixtures/text_lines.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let n: Vec<usize> = l.split(' ').take(4).map(|v| v.parse().unwrap()).collect();
            Line {
                x0: n[0],
                y0: n[1],
                x1: n[2],
                y1: n[3],
            }
        })
        .collect();
    (mask, lines)
}

/// Blends `line`'s ink into `set(x, y, alpha)` at `(px, py)`.
fn stamp(
    mask: &image::GrayImage,
    line: &Line,
    px: usize,
    py: usize,
    mut set: impl FnMut(usize, usize, f32),
) {
    for y in line.y0..line.y1 + 2 {
        for x in line.x0.saturating_sub(1)..line.x1 + 1 {
            let a = mask.get_pixel(x as u32, y as u32)[0] as f32 / 255.0;
            if a > 0.0 {
                set(px + x - line.x0, py + y - line.y0, a);
            }
        }
    }
}

/// What Tesseract reads in a crop of `file`, rendered by dcmj2pnm.
fn ocr(file: &Path, crop: (u32, u32, u32, u32), dir: &Path) -> String {
    let pnm = dir.join(format!(
        "{}.pnm",
        file.file_name().unwrap().to_string_lossy()
    ));
    let (l, t, w, h) = crop;
    let o = Command::new(tool("dcmj2pnm"))
        .args(["+Wm", "+C"])
        .args([l, t, w, h].map(|v| v.to_string()))
        .arg(file)
        .arg(&pnm)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(tool("tesseract"))
        .arg(&pnm)
        .args(["stdout", "--psm", "6"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).to_ascii_uppercase()
}

fn legible(read: &str, words: &[&str]) -> Vec<String> {
    words
        .iter()
        .filter(|w| read.contains(&w.to_ascii_uppercase()))
        .map(|w| w.to_string())
        .collect()
}

fn put_pixels(obj: &mut DefaultDicomObject, bytes: Vec<u8>, vr: VR) {
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::from(bytes),
    ));
}

/// The real chest CR (MONOCHROME1, native) with a two-line label (name and
/// ID at 10 px, birth date at 12 px) printed bright in its top-left corner.
fn labelled_chest(dir: &Path) -> (PathBuf, (usize, usize, usize, usize)) {
    let mut obj = dicom_object::open_file(data_dir().join("dicom/cr_dx/RG1_UNCR.dcm")).unwrap();
    let (mask, lines) = fixture();
    let w: usize = deidgate::dicom::text(&obj, tags::COLUMNS).parse().unwrap();
    let mut px: Vec<u16> = pixel_bytes(&obj)
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    // MONOCHROME1: the lowest value shows brightest.
    let bright = *px.iter().min().unwrap() as f32;
    let (x, y) = (160, 150);
    for (i, line) in lines[..2].iter().enumerate() {
        stamp(&mask, line, x, y + 22 * i, |cx, cy, a| {
            let p = &mut px[cy * w + cx];
            *p = (*p as f32 * (1.0 - a) + bright * a).round() as u16;
        });
    }
    put_pixels(
        &mut obj,
        px.iter().flat_map(|v| v.to_le_bytes()).collect(),
        VR::OW,
    );
    let p = dir.join("labelled_chest.dcm");
    obj.write_to_file(&p).unwrap();
    (p, (x - 40, y - 30, x + 240, y + 75))
}

/// Decoded 16-bit samples of a native single-frame grey output.
fn words(path: &Path) -> Vec<u16> {
    pixel_bytes(&dicom_object::open_file(path).unwrap())
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

#[test]
fn a_chest_radiograph_is_deformed_then_its_label_filled() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, label) = labelled_chest(tmp.path());
    let words_in_label = ["DOE", "4471920", "1961"];
    // The label as a reader sees it; `label` is wider (the filled boxes grow).
    let crop = (label.0 as u32 + 20, label.1 as u32 + 10, 220, 80);
    assert!(
        !legible(&ocr(&input, crop, tmp.path()), &words_in_label).is_empty(),
        "Tesseract cannot read the stamped label"
    );
    let g = Gateway::start(tmp.path(), "");
    send_all(&g, tmp.path(), "RADIOLOGY", std::slice::from_ref(&input));
    let out = wait_for_outputs(&g, &expected_names(&g, std::slice::from_ref(&input)));
    assert_eq!(out.len(), 1, "{}", g.log());
    let o = dicom_object::open_file(&out[0]).unwrap();
    let codes = method_codes(&o);
    assert!(codes.contains(&"113102".to_string()), "deformed: {codes:?}");
    assert!(
        codes.contains(&"113101".to_string()),
        "text searched: {codes:?}"
    );
    let after = legible(&ocr(&out[0], crop, tmp.path()), &words_in_label);
    assert!(after.is_empty(), "still legible: {after:?}");
    // The same radiograph with the text route off: deformed only. Outside
    // the label the two outputs are the same values, so the text route
    // touched nothing there and the field's bound is the chest route's own.
    let dir = tmp.path().join("deformed-only");
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(&dir, "[text]\nenabled = false\n");
    let o = cli(
        &config,
        &[
            "anonymize",
            input.to_str().unwrap(),
            dir.join("out").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let reference = files_under(&dir.join("out"));
    assert_eq!(reference.len(), 1);
    let (a, b) = (words(&out[0]), words(&reference[0]));
    assert_eq!(a.len(), b.len());
    let w: usize = deidgate::dicom::text(&dicom_object::open_file(&input).unwrap(), tags::COLUMNS)
        .parse()
        .unwrap();
    let (x0, y0, x1, y1) = label;
    let mut inside_changed = 0;
    for (i, (p, q)) in a.iter().zip(&b).enumerate() {
        let (x, y) = (i % w, i / w);
        let in_label = x >= x0 && x < x1 && y >= y0 && y < y1;
        if in_label {
            inside_changed += usize::from(p != q);
        } else {
            assert_eq!(p, q, "pixel ({x}, {y}) outside the label differs");
        }
    }
    assert!(
        inside_changed > 500,
        "only {inside_changed} label pixels filled"
    );
}

/// The real VL photograph with a light name badge (name and ID, hospital)
/// below the face.
fn badged_photo(dir: &Path) -> PathBuf {
    let mut obj =
        dicom_object::open_file(data_dir().join("derived/vl_photo_face_rgb.dcm")).unwrap();
    let (mask, lines) = fixture();
    let w: usize = deidgate::dicom::text(&obj, tags::COLUMNS).parse().unwrap();
    let mut px = pixel_bytes(&obj).to_vec();
    let (bx, by) = (16, 430);
    for y in by..by + 56 {
        for x in bx..bx + 150 {
            px[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[235, 235, 228]);
        }
    }
    for (i, line) in [&lines[0], &lines[2]].into_iter().enumerate() {
        stamp(&mask, line, bx + 8, by + 8 + 22 * i, |cx, cy, a| {
            for c in &mut px[(cy * w + cx) * 3..(cy * w + cx) * 3 + 3] {
                *c = (*c as f32 * (1.0 - a) + 20.0 * a).round() as u8;
            }
        });
    }
    put_pixels(&mut obj, px, VR::OB);
    let p = dir.join("badged_photo.dcm");
    obj.write_to_file(&p).unwrap();
    p
}

#[test]
fn a_photograph_loses_face_and_badge_and_reid_gives_both_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let input = badged_photo(tmp.path());
    let badge = (10, 424, 170, 66);
    let badge_words = ["DOE", "4471920", "HOSPITAL", "MARY"];
    assert!(!legible(&ocr(&input, badge, tmp.path()), &badge_words).is_empty());
    let g = Gateway::start(tmp.path(), "");
    send_all(&g, tmp.path(), "DERMATOLOGY", std::slice::from_ref(&input));
    let out = wait_for_outputs(&g, &expected_names(&g, std::slice::from_ref(&input)));
    assert_eq!(out.len(), 1, "{}", g.log());
    let o = dicom_object::open_file(&out[0]).unwrap();
    let codes = method_codes(&o);
    assert!(
        codes.contains(&"113102".to_string()),
        "face replaced: {codes:?}"
    );
    assert!(
        codes.contains(&"113101".to_string()),
        "badge searched: {codes:?}"
    );
    let after = legible(&ocr(&out[0], badge, tmp.path()), &badge_words);
    assert!(after.is_empty(), "badge still legible: {after:?}");
    // One audited restore undoes the text fill, then the face replacement.
    let uid = deidgate::dicom::text(&o, tags::SOP_INSTANCE_UID);
    let restored = tmp.path().join("restored.dcm");
    let o = cli(
        &g.config,
        &[
            "reid",
            "photo",
            &uid,
            "--input",
            out[0].to_str().unwrap(),
            "--output",
            restored.to_str().unwrap(),
            "--reason",
            "wound documentation follow-up",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let original = pixel_bytes(&dicom_object::open_file(&input).unwrap());
    let back = pixel_bytes(&dicom_object::open_file(&restored).unwrap());
    assert!(
        back == original,
        "the restored pixels are not the original ones"
    );
}
