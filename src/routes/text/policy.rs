//! Which of the lines found are filled. The default fills every line.
//! With the recogniser loaded, each distinct line is read once (a cine's
//! fixed overlay is the same crop in every frame) and compared with the
//! object's own identifiers; a line is left in place only when it matches
//! `[text] keep`, the recogniser is sure of its reading and it holds no
//! identifier. An identifier found is counted (a source that burns PHI
//! in) and its line is always filled.

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
    /// One entry per distinct line that held one of the object's
    /// identifiers: the kind found (never the value).
    pub leaks: Vec<Kind>,
}

/// The reader and what it compares against.
pub struct Policy<'a> {
    pub reader: Option<&'a TextReader>,
    pub keep: &'a KeepList,
    pub min_confidence: f32,
    pub matcher: Option<&'a Matcher>,
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
        let mut first: HashMap<&(Rect, Vec<u8>), usize> = HashMap::new();
        let mut distinct = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            first.entry(k).or_insert_with(|| {
                distinct.push(i);
                i
            });
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
        for (&i, reading) in distinct.iter().zip(&readings) {
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
        for (line, key) in search.lines.iter().zip(&keys) {
            if !keep_line[&first[key]] {
                d.fill.push(line.fill);
            }
        }
        Ok(d)
    }
}
