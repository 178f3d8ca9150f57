//! The text route's check for detector false alarms over moving content
//! (`[text] skip_unread_moving`), with the real recogniser: a box over
//! real colour Doppler (US1_UNCR.dcm) reads as nothing (and a single letter
//! as one sign, which names no one), so in a cine, where
//! none of its pixels stays fixed, it is left unfilled. A Doppler box where
//! something stays fixed, and a line of real text even where nothing does
//! (text shown in only some frames), are filled.

mod common;

use common::text_lines::fixture;
use common::*;
use deidgate::config::text_keep::KeepList;
use deidgate::models::text::TextReader;
use deidgate::routes::text::frames::Rect;
use deidgate::routes::text::policy::Policy;
use deidgate::routes::text::search::{Line, Search};
use dicom_pixeldata::PixelDecoder;
use std::path::Path;

const W: usize = 640;

fn reader() -> TextReader {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/text");
    TextReader::load(&dir).expect("text recogniser weights: run scripts/fetch-weights.sh")
}

/// US1_UNCR's first frame, 640 × 480 RGB; the left Doppler box's colour
/// lies in x 90–310, y 150–290.
fn ultrasound() -> Vec<u8> {
    let obj = dicom_object::open_file(data_dir().join("dicom/us/US1_UNCR.dcm")).unwrap();
    obj.decode_pixel_data().unwrap().data()[..W * 480 * 3].to_vec()
}

/// A black 640 × 480 image with the fixture's "DOE^JOHN  ID 4471920" in
/// white at (20, 400); returns it and the line's box.
fn text_image() -> (Vec<u8>, Rect) {
    let (mask, lines) = fixture();
    let line = lines.iter().find(|l| l.text.contains("4471920")).unwrap();
    let mut rgb = vec![0u8; W * 480 * 3];
    let (ox, oy) = (20, 400);
    for y in line.y0..line.y1 {
        for x in line.x0..line.x1 {
            let v = mask.get_pixel(x as u32, y as u32)[0];
            let p = ((oy + y - line.y0) * W + ox + x - line.x0) * 3;
            rgb[p..p + 3].fill(v);
        }
    }
    let r = rect(
        ox - 2,
        oy - 2,
        ox + line.x1 - line.x0 + 2,
        oy + line.y1 - line.y0 + 2,
    );
    (rgb, r)
}

fn rect(x0: usize, y0: usize, x1: usize, y1: usize) -> Rect {
    Rect { x0, y0, x1, y1 }
}

fn line(r: Rect, image: usize) -> Line {
    Line {
        found: r,
        fill: r.grow(3),
        image,
    }
}

#[test]
fn an_unread_box_over_moving_doppler_is_left_and_text_is_filled() {
    let reader = reader();
    let keep = KeepList::new(&[]).unwrap();
    let (text, text_box) = text_image();
    let moving_doppler = rect(120, 170, 300, 240);
    let fixed_doppler = rect(130, 200, 290, 260);
    // The line's first letter alone: one sign names no one.
    let letter = rect(text_box.x0, text_box.y0, text_box.x0 + 10, text_box.y1);
    let search = Search {
        images: vec![ultrasound(), text],
        lines: vec![
            line(moving_doppler, 0),
            line(fixed_doppler, 0),
            line(text_box, 1),
            line(letter, 1),
        ],
        grey_range: None,
    };
    // What the route measures on the frames, given here.
    let moving = |r: Rect| r != fixed_doppler;
    fn policy<'a>(
        reader: &'a TextReader,
        keep: &'a KeepList,
        moving: Option<&'a dyn Fn(Rect) -> bool>,
    ) -> Policy<'a> {
        Policy {
            reader: Some(reader),
            keep,
            min_confidence: 0.9,
            matcher: None,
            moving,
        }
    }
    let d = policy(&reader, &keep, Some(&moving))
        .decide(&search, W)
        .unwrap();
    assert_eq!(
        d.unread_moving, 2,
        "the moving Doppler box and letter are left"
    );
    assert_eq!(
        d.fill,
        vec![fixed_doppler.grow(3), text_box.grow(3)],
        "the fixed box and the text line are filled"
    );
    // Off: every box is filled.
    let d = policy(&reader, &keep, None).decide(&search, W).unwrap();
    assert_eq!((d.unread_moving, d.fill.len()), (0, 4));
}
