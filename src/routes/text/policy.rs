//! Which of the lines found are filled. The default fills every line.
//! With the recogniser loaded, each distinct line is read once (a cine's
//! fixed overlay is the same crop in every frame) and compared with the
//! object's own identifiers; a line is left in place only when it matches
//! `[text] keep`, the recogniser is sure of its reading and it holds no
//! identifier. An identifier found is counted (a source that burns PHI
//! in) and its line is always filled. In a cine, a box over moving content
//! in which the recogniser reads at most one letter or digit is a detector
//! false alarm and is not filled (see [`super::motion`]).

use std::collections::HashMap;

use super::frames::Rect;
use super::search::Search;
use crate::config::text_keep::KeepList;
use crate::deid::phi::{Kind, Matcher};
use crate::models::text::reader::crop_rgb;
use crate::models::text::TextReader;

/// What reading the lines decided.
#[derive(Debug, Default)]
pub struct Decision {
    /// Boxes to fill (not merged).
    pub fill: Vec<Rect>,
    /// Distinct lines read.
    pub read: usize,
    /// Lines left in place under `[text] keep`.
    pub kept: usize,
    /// Boxes over moving content read as nothing, left unfilled.
    pub unread_moving: usize,
    /// One entry per distinct line that held one of the object's
    /// identifiers: the kind found (never the value).
    pub leaks: Vec<Kind>,
}

/// Whether two boxes cover the same line: their overlap is at least 70 %
/// of their union.
fn same_place(a: &Rect, b: &Rect) -> bool {
    a.intersection(b).is_some_and(|i| {
        let inter = i.area();
        inter * 10 >= (a.area() + b.area() - inter) * 7
    })
}

/// The reader and what it compares against.
pub struct Policy<'a> {
    pub reader: Option<&'a TextReader>,
    pub keep: &'a KeepList,
    pub min_confidence: f32,
    pub matcher: Option<&'a Matcher>,
    /// Whether nothing in a box stays fixed over a cine's frames
    /// ([`super::motion`]); such a box is left unfilled when the recogniser
    /// reads at most one letter or digit there. `None`: every box is filled
    /// (`[text] skip_unread_moving = false`).
    pub moving: Option<&'a dyn Fn(Rect) -> bool>,
}

impl Policy<'_> {
    /// Decides for every line of `search` (images `width` pixels wide).
    /// `Err` when the recogniser fails (the caller quarantines).
    pub fn decide(&self, search: &Search, width: usize) -> anyhow::Result<Decision> {
        let Some(reader) = self.reader else {
            return Ok(Decision {
                fill: search.lines.iter().map(|l| l.fill).collect(),
                ..Decision::default()
            });
        };
        // Distinct (box, pixels) in first-seen order, each read once
        // (several lines packed into one network input).
        let keys: Vec<(Rect, Vec<u8>)> = search
            .lines
            .iter()
            .map(|l| {
                let r = l.found;
                let px = crop_rgb(&search.images[l.image], width, (r.x0, r.y0, r.x1, r.y1));
                (r, px)
            })
            .collect();
        // Which earlier line each line repeats (itself when none).
        let mut first: Vec<usize> = Vec::with_capacity(keys.len());
        let mut distinct: Vec<usize> = Vec::new();
        let mut seen: HashMap<&(Rect, Vec<u8>), usize> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            // With nothing to keep, a reading only reports identifiers: a
            // line in the same place in another frame of a cine (the box
            // moved by a pixel, the ground under it changed) is the same
            // line, read once and counted once. Every line is filled anyway.
            let again = match seen.get(k) {
                Some(&j) => Some(j),
                None if self.keep.is_empty() => distinct
                    .iter()
                    .copied()
                    .find(|&j| same_place(&keys[j].0, &k.0)),
                None => None,
            };
            let j = again.unwrap_or_else(|| {
                distinct.push(i);
                i
            });
            seen.entry(k).or_insert(j);
            first.push(j);
        }
        let crops: Vec<(&[u8], usize, usize)> = distinct
            .iter()
            .map(|&i| {
                let (r, px) = (&keys[i].0, &keys[i].1);
                (&px[..], r.x1 - r.x0, r.y1 - r.y0)
            })
            .filter(|&(_, w, h)| w > 0 && h > 0)
            .collect();
        anyhow::ensure!(crops.len() == distinct.len(), "an empty text box");
        let readings = reader.read_many(&crops)?;
        let mut d = Decision {
            read: readings.len(),
            ..Decision::default()
        };
        let mut keep_line: HashMap<usize, bool> = HashMap::new();
        let mut unread: HashMap<usize, bool> = HashMap::new();
        for (&i, reading) in distinct.iter().zip(&readings) {
            // One letter or digit names no one; it is what the recogniser
            // makes of Doppler speckle.
            let signs = reading.text.chars().filter(|c| c.is_alphanumeric()).count();
            unread.insert(i, signs < 2);
            let leak = self.matcher.and_then(|m| m.find_in_text(&reading.text));
            if let Some(kind) = leak {
                d.leaks.push(kind);
            }
            let k = leak.is_none()
                && reading.confidence >= self.min_confidence
                && self.keep.keeps(&reading.text);
            d.kept += k as usize;
            keep_line.insert(i, k);
        }
        for (line, j) in search.lines.iter().zip(&first) {
            // Asked only of unread lines: the check reads every frame.
            if unread[j] && self.moving.is_some_and(|moving| moving(line.found)) {
                d.unread_moving += 1;
            } else if !keep_line[j] {
                d.fill.push(line.fill);
            }
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_moved_by_a_pixel_is_the_same_line() {
        assert!(same_place(
            &Rect::at(460, 5, 639, 25),
            &Rect::at(459, 5, 639, 25)
        ));
        assert!(same_place(
            &Rect::at(16, 69, 85, 93),
            &Rect::at(16, 69, 92, 94)
        ));
        // Next line down, a word of the line, elsewhere: not the same.
        assert!(!same_place(
            &Rect::at(460, 5, 639, 25),
            &Rect::at(429, 23, 639, 48)
        ));
        assert!(!same_place(
            &Rect::at(460, 5, 639, 25),
            &Rect::at(460, 5, 520, 25)
        ));
        assert!(!same_place(
            &Rect::at(0, 0, 10, 10),
            &Rect::at(20, 20, 30, 30)
        ));
    }
}
