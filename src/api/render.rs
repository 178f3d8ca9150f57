//! A quarantined object's pixels as a small PNG, for a reviewer's preview:
//! one frame, decoded by the text route's decoder (every photometric
//! interpretation and transfer syntax the gateway reads), greys shown
//! through the header's window (WindowCenter/WindowWidth, else the frame's
//! own range), downscaled so the longer side is at most [`MAX_SIDE`].

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use image::ImageEncoder;

use crate::routes::text::frames::{self, Colour, Frames};

/// Longest side of a preview, in pixels.
pub const MAX_SIDE: u32 = 512;

/// One rendered frame.
pub struct Preview {
    pub png: Vec<u8>,
    /// 1-based, as DICOM numbers frames.
    pub frame: usize,
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    /// How greys were mapped: `window C/W`, `range lo..hi` or `colour`.
    pub window: String,
}

/// Parses Part 10 bytes after the structural pre-check (a quarantined object
/// may be the malformed one the pipeline refused to trust).
pub fn parse(bytes: &[u8], until_pixels: bool) -> Result<DefaultDicomObject, String> {
    crate::pipeline::precheck::check(bytes)?;
    let mut o = OpenFileOptions::new().read_preamble(ReadPreamble::Auto);
    if until_pixels {
        o = o.read_until(tags::PIXEL_DATA);
    }
    o.from_reader(bytes)
        .map_err(|e| format!("not a readable DICOM object: {e}"))
}

/// The first value of a decimal string attribute.
fn number(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<f64> {
    crate::dicom::text(obj, tag)
        .split('\\')
        .next()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// The header's linear window as a range of stored values (the modality
/// rescale undone), with its description.
fn window(obj: &DefaultDicomObject) -> Option<((i64, i64), String)> {
    let (c, w) = (
        number(obj, tags::WINDOW_CENTER)?,
        number(obj, tags::WINDOW_WIDTH)?,
    );
    if w < 1.0 {
        return None;
    }
    let slope = number(obj, tags::RESCALE_SLOPE)
        .filter(|s| *s != 0.0)
        .unwrap_or(1.0);
    let intercept = number(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    let (lo, hi) = (c - 0.5 - (w - 1.0) / 2.0, c - 0.5 + (w - 1.0) / 2.0);
    let (a, b) = ((lo - intercept) / slope, (hi - intercept) / slope);
    let (a, b) = (a.min(b).floor() as i64, a.max(b).ceil() as i64);
    Some(((a, b.max(a + 1)), format!("window {c}/{w}")))
}

/// Renders frame `frame` (1-based) of `bytes`.
pub fn render(bytes: &[u8], frame: usize) -> Result<Preview, String> {
    let obj = parse(bytes, false)?;
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err("the object has no pixel data".into());
    }
    let frames = crate::dicom::text(&obj, tags::NUMBER_OF_FRAMES)
        .parse::<usize>()
        .unwrap_or(1)
        .max(1);
    if frame == 0 || frame > frames {
        return Err(format!("frame {frame}: the object has {frames} frame(s)"));
    }
    let f = frames::decode_frame(&obj, (frame - 1) as u32)
        .map_err(|e| e.trim_start_matches("text route: ").to_string())?;
    let (range, how) = match (&f.colour, window(&obj)) {
        (Colour::Grey { .. }, Some((range, how))) => (Some(range), how),
        (Colour::Grey { .. }, None) => {
            let (lo, hi) = f.grey_range();
            (Some((lo, hi)), format!("range {lo}..{hi}"))
        }
        _ => (None, "colour".to_string()),
    };
    let rgb = f.render(f.frame(0), range);
    let (png, width, height) = encode(&f, rgb)?;
    Ok(Preview {
        png,
        frame,
        frames,
        width,
        height,
        window: how,
    })
}

/// Downscales (never up) and encodes: grey as 8-bit grey, else RGB.
fn encode(f: &Frames, rgb: Vec<u8>) -> Result<(Vec<u8>, u32, u32), String> {
    let (w, h) = (f.width as u32, f.height as u32);
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or("the decoded frame has the wrong size")?;
    let scale = (MAX_SIDE as f64 / w.max(h) as f64).min(1.0);
    let (tw, th) = (
        ((w as f64 * scale).round() as u32).max(1),
        ((h as f64 * scale).round() as u32).max(1),
    );
    let small = if (tw, th) == (w, h) {
        img
    } else {
        image::imageops::thumbnail(&img, tw, th)
    };
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut png);
    let written = if matches!(f.colour, Colour::Grey { .. }) {
        let grey: Vec<u8> = small.pixels().map(|p| p.0[0]).collect();
        encoder.write_image(&grey, tw, th, image::ExtendedColorType::L8)
    } else {
        encoder.write_image(small.as_raw(), tw, th, image::ExtendedColorType::Rgb8)
    };
    written.map_err(|e| format!("cannot encode the preview: {e}"))?;
    Ok((png, tw, th))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(rel: &str) -> Option<Vec<u8>> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/dicom")
            .join(rel);
        std::fs::read(p).ok()
    }

    fn decoded(png: &[u8]) -> image::DynamicImage {
        image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap()
    }

    #[test]
    fn a_greyscale_ultrasound_is_windowed_and_downscaled() {
        let Some(bytes) = shared("us/GREYSCALE_IMAGE.dcm") else {
            return;
        };
        let p = render(&bytes, 1).unwrap();
        assert_eq!((p.width, p.height, p.frames), (512, 384, 1));
        assert_eq!(p.window, "window 127/254");
        let img = decoded(&p.png).to_luma8();
        assert_eq!(img.dimensions(), (512, 384));
        let (lo, hi) = img
            .pixels()
            .fold((255u8, 0u8), |(lo, hi), q| (lo.min(q.0[0]), hi.max(q.0[0])));
        assert!(hi > lo + 100, "an image, not a blank: {lo}..{hi}");
        assert!(render(&bytes, 2).err().unwrap().contains("1 frame"));
        assert!(render(&bytes, 0).is_err());
    }

    #[test]
    fn colour_and_multi_frame_objects_render_the_chosen_frame() {
        let Some(bytes) = shared("us/OBXXXX1A_rle_2frame.dcm") else {
            return;
        };
        let first = render(&bytes, 1).unwrap();
        let second = render(&bytes, 2).unwrap();
        assert_eq!(first.frames, 2);
        assert!(first.width <= MAX_SIDE && first.height <= MAX_SIDE);
        assert_ne!(first.png, second.png, "two frames, two pictures");
        assert!(render(&bytes, 3).is_err());
        if let Some(rgb) = shared("us/RGB_IMAGE.dcm") {
            let p = render(&rgb, 1).unwrap();
            assert_eq!(p.window, "colour");
            assert_eq!(decoded(&p.png).color(), image::ColorType::Rgb8);
        }
    }

    #[test]
    fn garbage_is_refused_not_rendered() {
        assert!(render(b"not dicom at all", 1).is_err());
        let mut fake = vec![0u8; 128];
        fake.extend_from_slice(b"DICM\x02\x00\x10\x00UI\xff\x7f");
        assert!(render(&fake, 1).is_err());
    }
}
