//! Lines stamped into real images, and how much of their ink an output
//! kept: the text route's looks (second pass, closer look, small text) are
//! each tested by running with the look off and on.

use super::gateway::anonymize_logged;
use std::path::{Path, PathBuf};

/// Share of the `ink` pixels (x, y) whose sample bytes the output of the
/// one-frame `input` kept.
pub fn kept(input: &Path, output: &Path, ink: &[(usize, usize)]) -> f64 {
    let frame = |p: &Path| {
        let o = dicom_object::open_file(p).unwrap();
        let d = dicom_pixeldata::PixelDecoder::decode_pixel_data(&o).unwrap();
        (d.data().to_vec(), d.columns() as usize, d.rows() as usize)
    };
    let ((a, w, h), (b, ..)) = (frame(input), frame(output));
    let n = a.len() / (w * h);
    let at = |x: usize, y: usize| (y * w + x) * n..(y * w + x + 1) * n;
    let same = ink
        .iter()
        .filter(|&&(x, y)| a[at(x, y)] == b[at(x, y)])
        .count();
    same as f64 / ink.len() as f64
}

/// The one output of `deidgate anonymize` on `input` with `toml`.
pub fn anonymize(dir: &Path, input: &Path, toml: &str) -> PathBuf {
    let run = anonymize_logged(dir, input, toml);
    run.output
        .unwrap_or_else(|| panic!("quarantined: {}", run.reasons))
}

/// Runs `input` with a look off and on (`toml(on)`), and asserts that the
/// look is what removes the line: off, the line is left whole (else the
/// test proves nothing); on, none of its ink is left.
pub fn assert_the_look_removes_it(
    look: &str,
    dir: &Path,
    input: &Path,
    ink: &[(usize, usize)],
    toml: impl Fn(bool) -> String,
) {
    let off = anonymize(&dir.join("without"), input, &toml(false));
    let on = anonymize(&dir.join("with"), input, &toml(true));
    let (without, with) = (kept(input, &off, ink), kept(input, &on, ink));
    eprintln!("ink kept: without the {look} {without:.3}, with it {with:.3}");
    assert!(without > 0.9, "without: kept {:.1} %", without * 100.0);
    assert_eq!(with, 0.0, "with: kept {:.1} % of the ink", with * 100.0);
}

/// `pixels` as the Pixel Data of `obj`, written to `path`.
pub fn write_with_pixels(
    mut obj: dicom_object::DefaultDicomObject,
    pixels: Vec<u8>,
    path: &Path,
) -> PathBuf {
    use dicom_core::{value::PrimitiveValue, DataElement, VR};
    obj.put(DataElement::new(
        dicom_dictionary_std::tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));
    obj.write_to_file(path).unwrap();
    path.to_path_buf()
}

/// `[text]` with the detector's weights from the source tree, `extra`
/// lines after.
pub fn text_toml(extra: &str) -> String {
    format!(
        "[text]\nweights = {:?}\n{extra}",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/text")
    )
}
