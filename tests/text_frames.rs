//! The text route's check of the frames it did not search: a label shown in
//! one frame of a 12-frame cine (the route searches 8 sampled frames and the
//! static layer; frame 4 is in neither), over moving real ultrasound with
//! Doppler, is found in that frame and filled.

mod common;

use common::text_lines::fixture;
use common::*;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_pixeldata::PixelDecoder;
use std::path::{Path, PathBuf};

const W: usize = 640;
const H: usize = 480;
const FRAMES: usize = 12;
/// Not among the 8 frames sampled of 12 (0, 2, 3, 5, 6, 8, 9, 11).
const LABELLED: usize = 4;

/// A cine of the real US1_UNCR frame moving 3 px right per frame, with the
/// fixture line `text` in black on a light grey label at `at` in frame
/// [`LABELLED`] only. Returns the file and the ink pixels.
fn cine(dir: &Path, text: &str, at: (usize, usize)) -> (PathBuf, Vec<(usize, usize)>) {
    let mut obj = dicom_object::open_file(data_dir().join("dicom/us/US1_UNCR.dcm")).unwrap();
    let one = obj.decode_pixel_data().unwrap().data().to_vec();
    assert_eq!(one.len(), W * H * 3);
    let (mask, lines) = fixture();
    let line = lines.iter().find(|l| l.text == text).unwrap();
    let mut px = Vec::with_capacity(one.len() * FRAMES);
    let mut ink = Vec::new();
    for f in 0..FRAMES {
        let mut frame = vec![0u8; W * H * 3];
        let dx = 3 * f;
        for y in 0..H {
            frame[(y * W + dx) * 3..(y + 1) * W * 3]
                .copy_from_slice(&one[y * W * 3..((y + 1) * W - dx) * 3]);
        }
        if f == LABELLED {
            let (lw, lh) = (line.x1 - line.x0, line.y1 - line.y0);
            for y in at.1 - 3..at.1 + lh + 3 {
                for x in at.0 - 4..at.0 + lw + 4 {
                    frame[(y * W + x) * 3..(y * W + x) * 3 + 3].fill(215);
                }
            }
            for y in 0..lh {
                for x in 0..lw {
                    let a = mask.get_pixel((line.x0 + x) as u32, (line.y0 + y) as u32)[0] as f32
                        / 255.0;
                    let (ix, iy) = (at.0 + x, at.1 + y);
                    for v in &mut frame[(iy * W + ix) * 3..(iy * W + ix) * 3 + 3] {
                        *v = (*v as f32 * (1.0 - a)).round() as u8;
                    }
                    if a > 0.25 {
                        ink.push((ix, iy));
                    }
                }
            }
        }
        px.extend_from_slice(&frame);
    }
    obj.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.3.1"),
    ));
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from(FRAMES.to_string()),
    ));
    let p = ink::write_with_pixels(obj, px, &dir.join("cine_label.dcm"));
    (p, ink)
}

#[test]
fn a_label_in_one_frame_not_searched_is_found_and_filled() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, ink) = cine(tmp.path(), "Smith, Jane", (330, 176));
    let out = ink::anonymize(&tmp.path().join("run"), &input, &ink::text_toml(""));
    let frame = |p: &Path| {
        let o = dicom_object::open_file(p).unwrap();
        let d = o.decode_pixel_data().unwrap();
        assert_eq!(d.number_of_frames() as usize, FRAMES);
        d.data()[LABELLED * W * H * 3..(LABELLED + 1) * W * H * 3].to_vec()
    };
    let (a, b) = (frame(&input), frame(&out));
    let at = |x: usize, y: usize| (y * W + x) * 3..(y * W + x) * 3 + 3;
    // The ink is black, as is the fill: the line is gone when its whole
    // box, the label's grey between the strokes included, is one fill.
    let (x0, y0) = ink
        .iter()
        .fold((W, H), |m, &(x, y)| (m.0.min(x), m.1.min(y)));
    let (x1, y1) = ink
        .iter()
        .fold((0, 0), |m, &(x, y)| (m.0.max(x + 1), m.1.max(y + 1)));
    let grey = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| a[at(x, y)] == [215, 215, 215])
        .count();
    let left: Vec<(usize, usize)> = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| b[at(x, y)] != b[at(x0, y0)])
        .collect();
    assert!(
        grey > 100,
        "the label is not in frame {LABELLED} of the input"
    );
    assert!(
        left.is_empty(),
        "{} pixels of the line's box in frame {LABELLED} are not the fill",
        left.len()
    );
}
