//! One multi-pattern matcher (Aho-Corasick) per object over its
//! identifiers: every identifier as UTF-8 and as encoded in each character
//! set the object declares (the same text decoded in its character set),
//! ASCII letters in any case, other letters upper and lower case. A match
//! counts only at word edges: a name is not found inside a longer word
//! ("Roe" in "Roentgen"), a number not inside a longer number.
//!
//! The patient's, study's and institution's identifiers are the same for
//! every instance of a study, so the automaton over them is kept for the
//! next instance with the same ones (a few dozen, in memory only). The
//! original UIDs differ in every instance: they are looked up whole, as the
//! UID-shaped runs (digits and dots) of the text, in a hash set.
//!
//! [`Matcher::find_in_text`] checks any decoded string (a recognizer's
//! reading of burned-in text, for one) with the same patterns and edges.

use super::identifiers::{Identifier, Identifiers, Kind};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Input, MatchKind};
use dicom_encoding::text::{SpecificCharacterSet, TextCodec};
use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Identifiers of at least this many bytes are also looked for in the APPn
/// segments of compressed JPEG frames: those are binary as often as text
/// (EXIF, ICC profiles, thumbnails), where a shorter pattern would match by
/// chance. (Comment segments are text: every identifier is looked for.)
pub const MIN_IN_PIXEL_DATA: usize = 6;

/// Compiled identifier sets kept for the next instances of the same study.
const CACHED: usize = 32;

/// One pattern: which identifier it spells.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    pub kind: Kind,
    /// Checked inside encapsulated pixel data too.
    pub in_pixels: bool,
}

/// A pattern found at word edges.
#[derive(Debug, Clone)]
pub struct Found {
    pub pattern: Pattern,
    pub at: Range<usize>,
}

/// The automata over one set of identifiers.
struct Compiled {
    items: Vec<Identifier>,
    /// The shortest pattern, in bytes.
    shortest: usize,
    charsets: Vec<String>,
    ac: Option<AhoCorasick>,
    /// The patterns' bytes, in the automaton's order.
    bytes: Vec<Vec<u8>>,
    patterns: Vec<Pattern>,
    /// Only the patterns allowed in pixel data, built when a compressed
    /// frame first has a segment to read (`None`: there are none).
    pixels: std::sync::OnceLock<Option<(AhoCorasick, Vec<Pattern>)>>,
}

static CACHE: Mutex<VecDeque<Arc<Compiled>>> = Mutex::new(VecDeque::new());

/// The identifiers of one object, compiled.
pub struct Matcher {
    compiled: Arc<Compiled>,
    uids: Uids,
}

/// The original UIDs: a list (a few per image), a set for the objects that
/// reference thousands (a KOS, an RT structure set).
enum Uids {
    Few(Vec<String>),
    Many(HashSet<String>),
}

impl Uids {
    fn new(v: Vec<String>) -> Uids {
        if v.len() > 32 {
            Uids::Many(v.into_iter().collect())
        } else {
            Uids::Few(v)
        }
    }

    fn len(&self) -> usize {
        match self {
            Uids::Few(v) => v.len(),
            Uids::Many(s) => s.len(),
        }
    }

    fn contains(&self, u: &[u8]) -> bool {
        match self {
            Uids::Few(v) => v.iter().any(|x| x.as_bytes() == u),
            Uids::Many(s) => std::str::from_utf8(u).is_ok_and(|u| s.contains(u)),
        }
    }
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Matcher({} patterns, {} UIDs)",
            self.compiled.patterns.len(),
            self.uids.len()
        )
    }
}

fn build(pats: &[Vec<u8>]) -> Option<AhoCorasick> {
    if pats.is_empty() {
        return None;
    }
    // A contiguous NFA: built in tens of microseconds (a DFA takes hundreds)
    // and fast enough on the few kilobytes of text an object has.
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(pats)
        .ok()
}

impl Compiled {
    fn new(items: &[Identifier], charsets: &[String]) -> Compiled {
        let sets: Vec<SpecificCharacterSet> = charsets
            .iter()
            .filter_map(|c| SpecificCharacterSet::from_code(c))
            .collect();
        let mut bytes: Vec<Vec<u8>> = Vec::new();
        let mut patterns = Vec::new();
        for id in items {
            let mut spellings = vec![id.value.clone()];
            if !id.value.is_ascii() {
                spellings.push(id.value.to_lowercase());
                spellings.push(id.value.to_uppercase());
            }
            let mut forms: Vec<Vec<u8>> = Vec::new();
            for s in &spellings {
                forms.push(s.as_bytes().to_vec());
                if !s.is_ascii() {
                    forms.extend(sets.iter().filter_map(|c| c.encode(s).ok()));
                }
            }
            for f in forms {
                if f.is_empty() || bytes.contains(&f) {
                    continue;
                }
                let in_pixels = f.len() >= MIN_IN_PIXEL_DATA;
                patterns.push(Pattern {
                    kind: id.kind,
                    in_pixels,
                });
                bytes.push(f);
            }
        }
        Compiled {
            items: items.to_vec(),
            shortest: bytes.iter().map(Vec::len).min().unwrap_or(usize::MAX),
            charsets: charsets.to_vec(),
            ac: build(&bytes),
            bytes,
            pixels: std::sync::OnceLock::new(),
            patterns,
        }
    }

    fn pixels(&self) -> Option<(&AhoCorasick, &Vec<Pattern>)> {
        self.pixels
            .get_or_init(|| {
                let (b, p): (Vec<Vec<u8>>, Vec<Pattern>) = self
                    .bytes
                    .iter()
                    .zip(&self.patterns)
                    .filter(|(_, p)| p.in_pixels)
                    .map(|(b, p)| (b.clone(), *p))
                    .unzip();
                build(&b).map(|a| (a, p))
            })
            .as_ref()
            .map(|(a, p)| (a, p))
    }

    /// The compiled set for these identifiers: the cached one, or a new one
    /// (cached, the oldest dropped).
    fn get(items: &[Identifier], charsets: &[String]) -> Arc<Compiled> {
        let same = |c: &Compiled| c.items == items && c.charsets == charsets;
        {
            let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = cache.iter().position(|c| same(c)) {
                let c = cache.remove(i).expect("found");
                cache.push_front(c.clone());
                return c;
            }
        }
        let c = Arc::new(Compiled::new(items, charsets));
        let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        cache.push_front(c.clone());
        cache.truncate(CACHED);
        c
    }
}

impl Matcher {
    pub fn new(ids: Identifiers) -> Matcher {
        // The character sets only matter for identifiers that are not ASCII.
        let ascii = ids.items.iter().all(|i| i.value.is_ascii());
        let charsets: &[String] = if ascii { &[] } else { &ids.charsets };
        Matcher {
            compiled: Compiled::get(&ids.items, charsets),
            uids: Uids::new(ids.uids),
        }
    }

    /// Values shorter than this cannot hold an identifier.
    pub fn shortest(&self) -> usize {
        let uid = if self.uids.len() > 0 {
            super::identifiers::MIN_UID
        } else {
            usize::MAX
        };
        self.compiled.shortest.min(uid)
    }

    pub fn is_empty(&self) -> bool {
        self.compiled.ac.is_none() && self.uids.len() == 0
    }

    /// Every identifier in `hay[span]` at word edges (the bytes either side
    /// of the span are read for the edges): the patterns, and the original
    /// UIDs as whole runs of digits and dots. `pixels`: only the patterns
    /// allowed in encapsulated pixel data.
    pub fn find(&self, hay: &[u8], span: Range<usize>, pixels: bool, mut f: impl FnMut(Found)) {
        if span.is_empty() {
            return;
        }
        let c = &self.compiled;
        let automaton = if pixels {
            c.pixels()
        } else {
            c.ac.as_ref().map(|a| (a, &c.patterns))
        };
        if let Some((ac, patterns)) = automaton {
            for m in ac.find_overlapping_iter(Input::new(hay).span(span.clone())) {
                let p = patterns[m.pattern().as_usize()];
                let (s, e) = (m.start(), m.end());
                if edge(hay[s], s.checked_sub(1).map(|i| hay[i]))
                    && edge(hay[e - 1], hay.get(e).copied())
                {
                    f(Found {
                        pattern: p,
                        at: s..e,
                    });
                }
            }
        }
        if !pixels && self.uids.len() > 0 {
            self.find_uids(hay, span, f);
        }
    }

    /// The original UIDs in `hay[span]`: maximal runs of digits and dots
    /// (one final dot ends a sentence) equal to one of them.
    fn find_uids(&self, hay: &[u8], span: Range<usize>, mut f: impl FnMut(Found)) {
        let uid_byte = |b: u8| b.is_ascii_digit() || b == b'.';
        let mut i = span.start;
        while i < span.end {
            if !uid_byte(hay[i]) {
                i += 1;
                continue;
            }
            let s = i;
            while i < hay.len() && uid_byte(hay[i]) {
                i += 1;
            }
            let before = s.checked_sub(1).map(|p| hay[p]);
            let mut e = i;
            if hay[e - 1] == b'.' {
                e -= 1;
            }
            if before.is_some_and(uid_byte) || e - s < super::identifiers::MIN_UID {
                continue;
            }
            if self.uids.contains(&hay[s..e]) {
                f(Found {
                    pattern: Pattern {
                        kind: Kind::Uid,
                        in_pixels: false,
                    },
                    at: s..e,
                });
            }
        }
    }

    /// The original UIDs among the values of a UI element (`hay[value]`,
    /// backslash-separated, padded).
    pub fn find_uid_values(&self, hay: &[u8], value: Range<usize>, mut f: impl FnMut(Found)) {
        if self.uids.len() == 0 {
            return;
        }
        let mut s = value.start;
        for part in hay[value.clone()].split(|b| *b == b'\\') {
            let start = s;
            s += part.len() + 1;
            let end = start + part.len();
            let trimmed = part
                .iter()
                .rposition(|b| !matches!(b, b'\0' | b' '))
                .map_or(start, |p| start + p + 1);
            if trimmed > start && self.uids.contains(&hay[start..trimmed]) {
                f(Found {
                    pattern: Pattern {
                        kind: Kind::Uid,
                        in_pixels: false,
                    },
                    at: start..trimmed.min(end),
                });
            }
        }
    }

    /// The first identifier found in `text` (decoded text: a recognizer's
    /// reading of a label, a value already decoded from its character set).
    pub fn find_in_text(&self, text: &str) -> Option<Kind> {
        let mut first = None;
        self.find(text.as_bytes(), 0..text.len(), false, |f| {
            first.get_or_insert(f.pattern.kind);
        });
        first
    }
}

/// Whether a match edge whose byte is `own` may have `neighbour` next to
/// it: letters not next to letters, digits not next to digits. Bytes above
/// 0x7F count as letters next to a Latin letter (an accented letter
/// continues the word); a pattern edge that is itself above 0x7F (CJK,
/// Cyrillic...) needs no edge.
fn edge(own: u8, neighbour: Option<u8>) -> bool {
    let Some(n) = neighbour else {
        return true;
    };
    if own.is_ascii_digit() {
        !n.is_ascii_digit()
    } else if own.is_ascii_alphabetic() {
        !(n.is_ascii_alphabetic() || n >= 0x80)
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(items: &[(Kind, &str)]) -> Matcher {
        Matcher::new(Identifiers::from_values(items))
    }

    #[test]
    fn names_match_whole_words_in_any_case() {
        let m = m(&[(Kind::PatientName, "Roe"), (Kind::PatientName, "Jane")]);
        assert_eq!(m.find_in_text("CT for JANE roe"), Some(Kind::PatientName));
        assert_eq!(m.find_in_text("Roe^Jane"), Some(Kind::PatientName));
        assert_eq!(m.find_in_text("Roentgen of the janeiro"), None);
    }

    #[test]
    fn numbers_do_not_match_inside_longer_numbers() {
        let m = m(&[(Kind::PatientId, "123456")]);
        assert_eq!(m.find_in_text("MRN 123456."), Some(Kind::PatientId));
        assert_eq!(m.find_in_text("ID123456"), Some(Kind::PatientId));
        assert_eq!(m.find_in_text("91234567"), None);
    }

    #[test]
    fn uids_do_not_match_inside_longer_uids() {
        let m = m(&[(Kind::Uid, "1.2.826.0.1.3680043.2.1")]);
        assert_eq!(m.find_in_text("1.2.826.0.1.3680043.2.1"), Some(Kind::Uid));
        assert_eq!(m.find_in_text("1.2.826.0.1.3680043.2.11"), None);
        assert_eq!(m.find_in_text("1.2.826.0.1.3680043.2.1.5"), None);
        assert_eq!(m.find_in_text("9.1.2.826.0.1.3680043.2.1"), None);
    }

    #[test]
    fn non_ascii_names_match_in_their_character_set() {
        let mut ids = Identifiers::from_values(&[(Kind::PatientName, "Jérôme")]);
        ids.charsets = vec!["ISO_IR 100".into()];
        let m = Matcher::new(ids);
        // Latin-1 bytes of "JÉRÔME" (upper case) inside other text.
        let latin1: Vec<u8> = b"seen by J\xC9R\xD4ME today".to_vec();
        let mut hits = 0;
        m.find(&latin1, 0..latin1.len(), false, |_| hits += 1);
        assert_eq!(hits, 1);
        assert_eq!(m.find_in_text("jérôme"), Some(Kind::PatientName));
    }
}
