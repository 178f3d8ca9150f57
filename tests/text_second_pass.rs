//! The text route's second pass (`[text] second_pass`): white text over
//! bright ultrasound content, crossing the white outline of the Doppler
//! box, is invisible to the detector as rendered and found once the image
//! is inverted with its highlights darkened; white text over the colour
//! Doppler itself is found by the least channel.

mod common;

use common::text_lines::fixture;
use common::*;
use dicom_pixeldata::PixelDecoder;
use std::path::{Path, PathBuf};

/// Where the line goes on US1_UNCR's 640x480 frame: over the bottom edge of
/// the Doppler box, the tissue bright around it.
const AT: (usize, usize) = (340, 285);
/// Over the colour Doppler of the left box (reds and yellows).
const ON_DOPPLER: (usize, usize) = (150, 200);

/// US1_UNCR.dcm with the fixture's "DOE^JOHN  ID 4471920" (DejaVu Sans,
/// 9 px ink) blended in white at `at`; returns the file and the ink pixels.
fn stamped(dir: &Path, at: (usize, usize)) -> (PathBuf, Vec<(usize, usize)>) {
    let (mask, lines) = fixture();
    let line = lines.iter().find(|l| l.text.contains("4471920")).unwrap();
    let obj = dicom_object::open_file(data_dir().join("dicom/us/US1_UNCR.dcm")).unwrap();
    let mut px = obj.decode_pixel_data().unwrap().data().to_vec();
    let w = 640;
    let mut ink = Vec::new();
    for y in line.y0..line.y1 {
        for x in line.x0..line.x1 {
            let a = mask.get_pixel(x as u32, y as u32)[0] as f32 / 255.0;
            let (ix, iy) = (at.0 + x - line.x0, at.1 + y - line.y0);
            for v in &mut px[(iy * w + ix) * 3..(iy * w + ix) * 3 + 3] {
                *v = (*v as f32 * (1.0 - a) + 255.0 * a).round() as u8;
            }
            if a > 0.25 {
                ink.push((ix, iy));
            }
        }
    }
    let p = ink::write_with_pixels(obj, px, &dir.join("us_white_text.dcm"));
    (p, ink)
}

#[test]
fn white_text_over_bright_content_is_found_by_the_second_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, ink) = stamped(tmp.path(), AT);
    let toml = |second: bool| {
        format!(
            "[chest]\nenabled = false\n[text]\nweights = {:?}\nsecond_pass = {second}\n",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/text")
        )
    };
    let one = ink::anonymize(&tmp.path().join("one-pass"), &input, &toml(false));
    let two = ink::anonymize(&tmp.path().join("two-pass"), &input, &toml(true));
    let (kept_one, kept_two) = (ink::kept(&input, &one, &ink), ink::kept(&input, &two, &ink));
    eprintln!("ink kept: one pass {kept_one:.3}, two passes {kept_two:.3}");
    // The first pass alone leaves most of the line (else this test proves
    // nothing); both passes fill all of it.
    assert!(
        kept_one > 0.5,
        "one pass kept only {:.0} % of the ink",
        kept_one * 100.0
    );
    assert_eq!(
        kept_two,
        0.0,
        "two passes kept {:.1} % of the ink",
        kept_two * 100.0
    );
}

#[test]
fn white_text_over_colour_doppler_is_found_by_its_least_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, ink) = stamped(tmp.path(), ON_DOPPLER);
    let toml = format!(
        "[chest]\nenabled = false\n[text]\nweights = {:?}\n",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/text")
    );
    let out = ink::anonymize(&tmp.path().join("out"), &input, &toml);
    let kept = ink::kept(&input, &out, &ink);
    eprintln!("ink kept over Doppler: {kept:.3}");
    // Without the least-channel look (bright-ground second pass only) the
    // output kept all of this line's ink (measured 7 Dec).
    assert_eq!(kept, 0.0, "kept {:.1} % of the ink", kept * 100.0);
}
