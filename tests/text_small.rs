//! The text route's look at small text (`[text] small_text`): a line too
//! small for the detector at the image's own size (the image is larger than
//! `enlarge_below`, so not enlarged) is found once its place is searched
//! enlarged, and filled. Clear text on a band (a hospital name squeezed
//! into a corner: 0097 of the corpus, 7 px and 2.7 px per letter) and faint
//! grey text on a radiograph's lung (0030: 8 px, a few levels darker).

mod common;

use common::text_lines::fixture;
use common::*;
use dicom_pixeldata::PixelDecoder;
use std::path::{Path, PathBuf};

/// The real greyscale ultrasound (8 bits, 1024 x 768) with the fixture line
/// `text` shrunk to a [`SHRINK`]th of its size (means of its ink mask) and
/// drawn at [`LEVEL`] at `at` in the black band under the image. Returns the
/// file and the ink pixels.
fn stamped(dir: &Path, text: &str, at: (usize, usize)) -> (PathBuf, Vec<(usize, usize)>) {
    let obj = dicom_object::open_file(data_dir().join("dicom/us/GREYSCALE_IMAGE.dcm")).unwrap();
    let mut px = obj.decode_pixel_data().unwrap().data().to_vec();
    let w = 1024usize;
    assert_eq!(px.len(), w * 768);
    let (mask, lines) = fixture();
    let line = lines.iter().find(|l| l.text == text).unwrap();
    let mut ink = Vec::new();
    let k = SHRINK;
    for y in 0..(line.y1 - line.y0) / k {
        for x in 0..(line.x1 - line.x0) / k {
            let mut a = 0f32;
            for (dx, dy) in (0..k).flat_map(|dx| (0..k).map(move |dy| (dx, dy))) {
                let (mx, my) = (line.x0 + k * x + dx, line.y0 + k * y + dy);
                a += mask.get_pixel(mx as u32, my as u32)[0] as f32 / 255.0 / (k * k) as f32;
            }
            let (ix, iy) = (at.0 + x, at.1 + y);
            let p = &mut px[iy * w + ix];
            *p = (*p as f32 * (1.0 - a) + LEVEL * a).round() as u8;
            if a > 0.25 {
                ink.push((ix, iy));
            }
        }
    }
    let p = ink::write_with_pixels(obj, px, &dir.join("us_small_text.dcm"));
    (p, ink)
}

const SHRINK: usize = 4;
const LEVEL: f32 = 170.0;

#[test]
fn a_line_too_small_for_the_detector_is_found_enlarged() {
    // 4 px high and 3 px per letter, in the black band of a real 1024 x 768
    // ultrasound.
    let tmp = tempfile::tempdir().unwrap();
    let (input, ink) = stamped(tmp.path(), "GARCIA LOPEZ, MARIA", (600, 740));
    ink::assert_the_look_removes_it("small-text look", tmp.path(), &input, &ink, |on| {
        ink::text_toml(&format!("small_text = {on}\n"))
    });
}

#[test]
fn a_faint_small_line_on_a_radiograph_is_found_enlarged() {
    // 8 px letters 5 % of the displayed range darker than the lung under
    // them, where the corpus's 0030 had its 8 px bitmap line (3 % darker;
    // the real chest radiograph RG1, shrunk twice as the corpus does). At
    // 3 % with anti-aliased strokes over the lung's grain (ground spread 6
    // levels, strokes 8 below it) the look does not find it.
    let tmp = tempfile::tempdir().unwrap();
    let (input, ink) = ink::radiograph_stamped(
        tmp.path(),
        "dicom/cr_dx/RG1_UNCR.dcm",
        2,
        "ST. MARY HOSPITAL",
        (446, 488),
        1,
        ink::Paint::Darker(0.05),
    );
    ink::assert_the_look_removes_it("small-text look", tmp.path(), &input, &ink, |on| {
        format!(
            "[chest]\nenabled = false\n{}",
            ink::text_toml(&format!("small_text = {on}\n"))
        )
    });
}
