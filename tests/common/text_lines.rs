//! The rendered text-line fixture (`tests/fixtures/text_lines.{png,txt}`,
//! written by scripts/text-fixtures.py): eight PHI-like lines in six fonts,
//! 8–20 px, as an anti-aliased ink mask and their boxes and texts.

use std::path::Path;

/// One rendered line: its ink box in the mask and its text.
pub struct Line {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
    pub text: String,
}

/// The coverage mask and the line list.
pub fn fixture() -> (image::GrayImage, Vec<Line>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mask = image::open(root.join("text_lines.png"))
        .expect("decode text_lines.png")
        .to_luma8();
    let txt = std::fs::read_to_string(root.join("text_lines.txt")).unwrap();
    let lines = txt
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.splitn(7, ' ').collect();
            let n = |i: usize| f[i].parse::<usize>().unwrap();
            Line {
                x0: n(0),
                y0: n(1),
                x1: n(2),
                y1: n(3),
                text: f[6].to_string(),
            }
        })
        .collect();
    (mask, lines)
}
