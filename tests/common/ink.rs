//! Lines stamped into real images, and how much of their ink an output
//! kept: the text route's looks (second pass, closer look, small text) are
//! each tested by running with the look off and on.

use super::gateway::anonymize_logged;
use super::text_lines::fixture;
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

/// How a stamped line is painted.
#[derive(Clone, Copy)]
pub enum Paint {
    /// At this share of the image's displayed range (0.70: the corpus's
    /// cyan on a grey image).
    Level(f32),
    /// This share of the displayed range darker than the ground under it (a
    /// faint grey print that follows the anatomy's shading).
    Darker(f32),
}

/// A real radiograph of `shared/data` (16-bit grey), shrunk `by` times (means)
/// as the evaluation corpus does, with the fixture line `text` (its ink
/// mask shrunk `shrink` times more, by means) blended in at `at` as `paint`
/// says (in displayed terms: MONOCHROME1 is inverted). Returns the file and
/// the ink pixels. The cat (DX, 3072 x 2614) by 3 gives 1024 x 871; the
/// chest RG1 (CR, 1841 x 1955) by 2 gives 920 x 977.
pub fn radiograph_stamped(
    dir: &Path,
    source: &str,
    by: usize,
    text: &str,
    at: (usize, usize),
    shrink: usize,
    paint: Paint,
) -> (PathBuf, Vec<(usize, usize)>) {
    use dicom_core::{value::PrimitiveValue, DataElement, VR};
    use dicom_dictionary_std::tags;
    let mut obj = dicom_object::open_file(super::data_dir().join(source)).unwrap();
    let decoded = dicom_pixeldata::PixelDecoder::decode_pixel_data(&obj).unwrap();
    let (w0, h0) = (decoded.columns() as usize, decoded.rows() as usize);
    let raw = decoded.data().to_vec();
    let mono1 = obj
        .element(tags::PHOTOMETRIC_INTERPRETATION)
        .unwrap()
        .to_str()
        .unwrap()
        .trim()
        == "MONOCHROME1";
    let v =
        |x: usize, y: usize| u16::from_le_bytes([raw[(y * w0 + x) * 2], raw[(y * w0 + x) * 2 + 1]]);
    let (w, h) = (w0 / by, h0 / by);
    let mut px: Vec<f32> = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let mut s = 0u32;
            for dy in 0..by {
                for dx in 0..by {
                    s += v(by * x + dx, by * y + dy) as u32;
                }
            }
            px.push(s as f32 / (by * by) as f32);
        }
    }
    let mut sorted = px.clone();
    sorted.sort_by(f32::total_cmp);
    let (lo, hi) = (
        sorted[sorted.len() / 200],
        sorted[sorted.len() * 998 / 1000],
    );
    let (mask, lines) = fixture();
    let line = lines.iter().find(|l| l.text == text).unwrap();
    let k = shrink.max(1);
    let mut ink = Vec::new();
    for y in 0..(line.y1 - line.y0) / k {
        for x in 0..(line.x1 - line.x0) / k {
            let mut a = 0f32;
            for dy in 0..k {
                for dx in 0..k {
                    let (mx, my) = (line.x0 + k * x + dx, line.y0 + k * y + dy);
                    a += mask.get_pixel(mx as u32, my as u32)[0] as f32 / 255.0;
                }
            }
            a /= (k * k) as f32;
            let (ix, iy) = (at.0 + x, at.1 + y);
            let p = &mut px[iy * w + ix];
            let to = match (paint, mono1) {
                (Paint::Level(l), false) => lo + l * (hi - lo),
                (Paint::Level(l), true) => hi - l * (hi - lo),
                (Paint::Darker(d), false) => *p - d * (hi - lo),
                (Paint::Darker(d), true) => *p + d * (hi - lo),
            };
            *p = *p * (1.0 - a) + to * a;
            if a > 0.25 {
                ink.push((ix, iy));
            }
        }
    }
    let bytes: Vec<u8> = px
        .iter()
        .flat_map(|&p| (p.round() as u16).to_le_bytes())
        .collect();
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(h as u16),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(w as u16),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(bytes),
    ));
    let p = dir.join("radiograph_text.dcm");
    obj.write_to_file(&p).unwrap();
    (p, ink)
}
