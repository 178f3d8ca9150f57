//! A walk over an encoded Part 10 object that records where every element's
//! value lies (no value is decoded): the guard scans what lies between the
//! bulk numeric data and, on a hit, names the element by its offset.
//! Explicit and implicit VR, little and big endian, sequences and items of
//! defined and undefined length, encapsulated pixel data; a deflated data set
//! is inflated first.

use dicom_core::dictionary::DataDictionary;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;

const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const UNDEFINED: u32 = 0xFFFF_FFFF;
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
/// Nesting deeper than this is not a real object.
const MAX_DEPTH: usize = 64;

/// What an element's value is, for the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Value,
    Sequence,
    /// Encapsulated pixel data: compressed frames (their fragments are in
    /// [`Part::fragments`]).
    Encapsulated,
    /// Native pixel data, overlay planes, waveform, curve and LUT samples:
    /// numbers, not text; not scanned.
    Bulk,
}

/// One element: its tag, VR, where its value lies, its sequence.
#[derive(Debug, Clone)]
pub struct Elem {
    pub tag: Tag,
    pub vr: VR,
    pub value: Range<usize>,
    /// Index of the sequence element whose item holds it.
    pub parent: Option<usize>,
    pub body: Body,
    /// Implicit VR: `vr` is UN, the dictionary's VR comes from [`Elem::vr`]
    /// (looked up only for the rare match).
    pub implicit: bool,
}

impl Elem {
    /// The element's VR, from the dictionary for implicit VR.
    pub fn vr(&self) -> VR {
        if self.implicit {
            implicit_vr(self.tag)
        } else {
            self.vr
        }
    }
}

/// A stretch of bytes (the file, or its inflated data set) and its elements.
pub struct Part<'a> {
    pub bytes: Cow<'a, [u8]>,
    /// Where scanning starts (after the preamble).
    pub start: usize,
    pub elems: Vec<Elem>,
    /// The compressed frames' fragments (not the offset tables).
    pub fragments: Vec<Range<usize>>,
}

impl Part<'_> {
    /// The innermost element whose value holds `at`.
    pub fn element_at(&self, at: &Range<usize>) -> Option<usize> {
        let mut found = None;
        for (i, e) in self.elems.iter().enumerate() {
            if e.value.start > at.start {
                break;
            }
            if at.end <= e.value.end {
                found = Some(i);
            }
        }
        found
    }
}

/// Numeric sample data, never text.
fn is_bulk(t: Tag) -> bool {
    let (g, e) = (t.group(), t.element());
    matches!(
        (g, e),
        (0x7FE0, 0x0008..=0x0010)
            | (0x5400, 0x1010)
            | (0x5600, 0x0020)
            | (0x0028, 0x1201..=0x1204)
            | (0x0028, 0x1221..=0x1223)
            | (0x0028, 0x3006)
    ) || ((0x6000..=0x60FF).contains(&g) || (0x5000..=0x50FF).contains(&g)) && e == 0x3000
}

/// The parts of an encoded object: one, or the file meta and the inflated
/// data set. `None` when the bytes cannot be walked (the caller scans them
/// whole).
pub fn parts(buf: &[u8]) -> Option<Vec<Part<'_>>> {
    let start = if buf.len() >= 132 && &buf[128..132] == b"DICM" {
        132
    } else {
        return None;
    };
    let mut w = Walker {
        b: buf,
        elems: Vec::with_capacity(256),
        fragments: Vec::new(),
    };
    let le = Enc {
        explicit: true,
        big: false,
    };
    // The file meta: explicit VR little endian, group 0002 only.
    let mut p = start;
    while let Some(tag) = w.tag(p, false).filter(|t| t.group() == 0x0002) {
        p = w.element(tag, p, buf.len(), le, None, 0)?;
    }
    let ts = w
        .elems
        .iter()
        .find(|e| e.tag == Tag(0x0002, 0x0010))
        .map(|e| {
            String::from_utf8_lossy(&buf[e.value.clone()])
                .trim_end_matches(['\0', ' '])
                .to_string()
        })
        .unwrap_or_default();
    if ts == DEFLATED {
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&buf[p..])
            .read_to_end(&mut inflated)
            .ok()?;
        let meta = Part {
            bytes: Cow::Borrowed(&buf[..p]),
            start,
            elems: w.elems,
            fragments: w.fragments,
        };
        let mut d = Walker {
            b: &inflated,
            elems: Vec::with_capacity(256),
            fragments: Vec::new(),
        };
        d.dataset(0, inflated.len(), le, None, false, 0)?;
        let (elems, fragments) = (d.elems, d.fragments);
        return Some(vec![
            meta,
            Part {
                bytes: Cow::Owned(inflated),
                start: 0,
                elems,
                fragments,
            },
        ]);
    }
    let enc = Enc {
        explicit: ts != "1.2.840.10008.1.2",
        big: ts == "1.2.840.10008.1.2.2",
    };
    w.dataset(p, buf.len(), enc, None, false, 0)?;
    Some(vec![Part {
        bytes: Cow::Borrowed(buf),
        start,
        elems: w.elems,
        fragments: w.fragments,
    }])
}

#[derive(Clone, Copy)]
struct Enc {
    explicit: bool,
    big: bool,
}

struct Walker<'b> {
    b: &'b [u8],
    elems: Vec<Elem>,
    fragments: Vec<Range<usize>>,
}

impl Walker<'_> {
    fn u16(&self, p: usize, big: bool) -> Option<u16> {
        let x: [u8; 2] = self.b.get(p..p.checked_add(2)?)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(x)
        } else {
            u16::from_le_bytes(x)
        })
    }

    fn u32(&self, p: usize, big: bool) -> Option<u32> {
        let x: [u8; 4] = self.b.get(p..p.checked_add(4)?)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(x)
        } else {
            u32::from_le_bytes(x)
        })
    }

    fn tag(&self, p: usize, big: bool) -> Option<Tag> {
        Some(Tag(self.u16(p, big)?, self.u16(p + 2, big)?))
    }

    /// The elements of one data set from `p` to `end`, or (`delimited`) to
    /// its item delimiter; returns where it ends.
    fn dataset(
        &mut self,
        mut p: usize,
        end: usize,
        enc: Enc,
        parent: Option<usize>,
        delimited: bool,
        depth: usize,
    ) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        while p < end {
            let tag = self.tag(p, enc.big)?;
            if tag == ITEM_END {
                return Some(p + 8);
            }
            if tag.group() == 0xFFFE {
                return None;
            }
            p = self.element(tag, p, end, enc, parent, depth)?;
        }
        (!delimited).then_some(p)
    }

    /// One element at `p`; returns where the next one starts.
    fn element(
        &mut self,
        tag: Tag,
        p: usize,
        end: usize,
        enc: Enc,
        parent: Option<usize>,
        depth: usize,
    ) -> Option<usize> {
        let (vr, len, header) = if enc.explicit {
            let vr = vr_of(*self.b.get(p + 4)?, *self.b.get(p + 5)?)?;
            if matches!(
                vr,
                VR::OB
                    | VR::OD
                    | VR::OF
                    | VR::OL
                    | VR::OV
                    | VR::OW
                    | VR::SQ
                    | VR::SV
                    | VR::UC
                    | VR::UN
                    | VR::UR
                    | VR::UT
                    | VR::UV
            ) {
                (vr, self.u32(p + 8, enc.big)?, 12)
            } else {
                (vr, u32::from(self.u16(p + 6, enc.big)?), 8)
            }
        } else {
            (VR::UN, self.u32(p + 4, enc.big)?, 8)
        };
        let vs = p + header;
        let idx = self.elems.len();
        self.elems.push(Elem {
            tag,
            vr,
            value: vs..vs,
            parent,
            body: Body::Value,
            implicit: !enc.explicit,
        });
        if len == UNDEFINED {
            let (body, ve) = if tag == PIXEL_DATA && vr != VR::SQ {
                (Body::Encapsulated, self.fragments(vs, end, enc.big)?)
            } else {
                // UN of undefined length holds implicit VR little endian.
                let inner = if vr == VR::UN {
                    Enc {
                        explicit: false,
                        big: false,
                    }
                } else {
                    enc
                };
                (
                    Body::Sequence,
                    self.items(vs, end, inner, idx, true, depth)?,
                )
            };
            self.elems[idx].value = vs..ve;
            self.elems[idx].body = body;
            return Some(ve);
        }
        let ve = vs.checked_add(len as usize)?;
        if ve > end {
            return None;
        }
        self.elems[idx].value = vs..ve;
        if vr == VR::SQ {
            self.items(vs, ve, enc, idx, false, depth)?;
            self.elems[idx].body = Body::Sequence;
        } else if !enc.explicit
            && len >= 8
            && tag != PIXEL_DATA
            && self.tag(vs, enc.big) == Some(ITEM)
        {
            // Implicit VR: a value that starts with an item is a sequence
            // (private ones are not in the dictionary); if it does not parse
            // as one it stays a value.
            if self.items(vs, ve, enc, idx, false, depth).is_some() {
                self.elems[idx].body = Body::Sequence;
            } else {
                self.elems.truncate(idx + 1);
            }
        } else if is_bulk(tag) {
            self.elems[idx].body = Body::Bulk;
        }
        Some(ve)
    }

    /// The items of a sequence; returns where it ends.
    fn items(
        &mut self,
        mut p: usize,
        end: usize,
        enc: Enc,
        seq: usize,
        delimited: bool,
        depth: usize,
    ) -> Option<usize> {
        loop {
            if !delimited && p >= end {
                return Some(p);
            }
            let tag = self.tag(p, enc.big)?;
            let len = self.u32(p + 4, enc.big)?;
            if tag == SEQUENCE_END {
                return Some(p + 8);
            }
            if tag != ITEM {
                return None;
            }
            if len == UNDEFINED {
                p = self.dataset(p + 8, end, enc, Some(seq), true, depth + 1)?;
            } else {
                let ie = (p + 8).checked_add(len as usize)?;
                if ie > end {
                    return None;
                }
                self.dataset(p + 8, ie, enc, Some(seq), false, depth + 1)?;
                p = ie;
            }
        }
    }

    /// The fragments of encapsulated pixel data (recorded, the offset
    /// table left out); returns where they end.
    fn fragments(&mut self, mut p: usize, end: usize, big: bool) -> Option<usize> {
        let mut first = true;
        loop {
            let tag = self.tag(p, big)?;
            let len = self.u32(p + 4, big)?;
            if tag == SEQUENCE_END {
                return Some(p + 8);
            }
            if tag != ITEM {
                return None;
            }
            let e = (p + 8).checked_add(len as usize)?;
            if e > end {
                return None;
            }
            if !first {
                self.fragments.push(p + 8..e);
            }
            first = false;
            p = e;
        }
    }
}

/// A VR from its two characters (the dictionary's `from_binary` costs
/// several times more, once per element).
fn vr_of(a: u8, b: u8) -> Option<VR> {
    Some(match [a, b] {
        [b'A', b'E'] => VR::AE,
        [b'A', b'S'] => VR::AS,
        [b'A', b'T'] => VR::AT,
        [b'C', b'S'] => VR::CS,
        [b'D', b'A'] => VR::DA,
        [b'D', b'S'] => VR::DS,
        [b'D', b'T'] => VR::DT,
        [b'F', b'L'] => VR::FL,
        [b'F', b'D'] => VR::FD,
        [b'I', b'S'] => VR::IS,
        [b'L', b'O'] => VR::LO,
        [b'L', b'T'] => VR::LT,
        [b'O', b'B'] => VR::OB,
        [b'O', b'D'] => VR::OD,
        [b'O', b'F'] => VR::OF,
        [b'O', b'L'] => VR::OL,
        [b'O', b'V'] => VR::OV,
        [b'O', b'W'] => VR::OW,
        [b'P', b'N'] => VR::PN,
        [b'S', b'H'] => VR::SH,
        [b'S', b'L'] => VR::SL,
        [b'S', b'Q'] => VR::SQ,
        [b'S', b'S'] => VR::SS,
        [b'S', b'T'] => VR::ST,
        [b'S', b'V'] => VR::SV,
        [b'T', b'M'] => VR::TM,
        [b'U', b'C'] => VR::UC,
        [b'U', b'I'] => VR::UI,
        [b'U', b'L'] => VR::UL,
        [b'U', b'N'] => VR::UN,
        [b'U', b'R'] => VR::UR,
        [b'U', b'S'] => VR::US,
        [b'U', b'T'] => VR::UT,
        [b'U', b'V'] => VR::UV,
        _ => return None,
    })
}

/// The VR of an implicit VR element: the dictionary's, or UN.
fn implicit_vr(tag: Tag) -> VR {
    if tag.group() % 2 == 1 {
        return if tag.element() <= 0x00FF && tag.element() >= 0x0010 {
            VR::LO
        } else {
            VR::UN
        };
    }
    if tag.element() == 0x0000 {
        return VR::UL;
    }
    StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.vr.relaxed())
        .unwrap_or(VR::UN)
}

/// Where text can sit in one compressed frame's first fragment: the APPn
/// and COM segments of a JPEG or JPEG-LS frame header, the COM segments of
/// a JPEG 2000 main header; `true` for a comment (text), `false` for an
/// APPn segment (EXIF, ICC, a thumbnail: binary as often as text). Other
/// fragments (RLE, continuations, video) hold samples only.
pub fn frame_text(b: &[u8], frag: Range<usize>) -> Vec<(Range<usize>, bool)> {
    let mut out = Vec::new();
    let f = &b[frag.clone()];
    let be16 = |p: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes(
            f.get(p..p + 2)?.try_into().ok()?,
        )))
    };
    // (markers that end the header, markers whose segment is text)
    let (stop, text): (&[u8], fn(u8) -> bool) = match f {
        [0xFF, 0xD8, ..] => (&[0xDA, 0xD9], |m| (0xE0..=0xEF).contains(&m) || m == 0xFE),
        [0xFF, 0x4F, ..] => (&[0x90, 0x93, 0xD9], |m| m == 0x64),
        _ => return out,
    };
    let mut p = 2;
    while p + 4 <= f.len() {
        if f[p] != 0xFF {
            break;
        }
        let m = f[p + 1];
        if m == 0xFF {
            p += 1; // fill byte
            continue;
        }
        if stop.contains(&m) {
            break;
        }
        if m == 0x01 || (0xD0..=0xD7).contains(&m) {
            p += 2;
            continue;
        }
        let Some(len) = be16(p + 2) else { break };
        let (s, e) = (p + 4, (p + 2 + len).min(f.len()));
        if len >= 2 && text(m) && s < e {
            let comment = m == 0xFE || m == 0x64;
            out.push((frag.start + s..frag.start + e, comment));
        }
        p += 2 + len.max(2);
    }
    out
}
