//! The scan of one encoded output: where the matcher may look, which of its
//! matches count, and the words that name where a counted one lies.

use super::walk::{parts, Body, Elem, Part};
use crate::deid::action::Action;
use crate::deid::phi::matcher::{Found, Matcher};
use crate::deid::phi::Kind;
use crate::deid::profile::{Profile, Source};
use dicom_core::dictionary::DataDictionary;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use std::borrow::Cow;
use std::ops::Range;

/// One identifier found in an output: what it is and where (never the
/// value).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    pub kind: Kind,
    /// The element: "(0008,1030) StudyDescription", "private block
    /// (0029,xx10) ...", "pixel data (7FE0,0010)", with its sequences.
    pub location: String,
    /// The tag of the element, when it is known.
    pub tag: Option<Tag>,
}

/// Every counted hit of `m`'s identifiers in `encoded`, a Part 10 object.
pub fn scan(m: &Matcher, profile: &Profile, encoded: &[u8]) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    if m.is_empty() {
        return hits;
    }
    let Some(parts) = parts(encoded) else {
        // Not walkable: the whole file, every match counts.
        m.find(encoded, 0..encoded.len(), false, |f| {
            hits.push(Hit {
                kind: f.pattern.kind,
                location: "the object (its encoding could not be walked)".into(),
                tag: None,
            })
        });
        hits.sort();
        hits.dedup();
        return hits;
    };
    for part in &parts {
        let b: &[u8] = &part.bytes;
        let mut found: Vec<(Found, Option<usize>)> = Vec::new();
        // The text values, copied end to end with a NUL between them (no
        // identifier spans one, and it is a word edge), are read in one
        // call: a call costs as much as a few hundred bytes.
        let mut text: Vec<u8> = Vec::with_capacity(4096);
        let mut from: Vec<(usize, usize, usize)> = Vec::new(); // (in text, in part, element)
        for (i, e) in part.elems.iter().enumerate() {
            if e.body != Body::Value || e.value.len() < m.shortest() {
                continue;
            }
            if e.vr == VR::UI {
                m.find_uid_values(b, e.value.clone(), |f| found.push((f, Some(i))));
                continue;
            }
            if !(e.implicit || !numeric(e.vr) || e.tag == tags::PATIENT_BIRTH_DATE)
                || (e.vr == VR::CS && e.tag.group() % 2 == 0)
            {
                // Numbers, dates, times; and the standard's code strings:
                // defined terms of at most 16 upper-case characters.
                continue;
            }
            from.push((text.len(), e.value.start, i));
            text.extend_from_slice(&b[e.value.clone()]);
            text.push(0);
        }
        m.find(&text, 0..text.len(), false, |mut f| {
            let k = from.partition_point(|(t, _, _)| *t <= f.at.start) - 1;
            let (t, at, i) = from[k];
            f.at = f.at.start - t + at..f.at.end - t + at;
            found.push((f, Some(i)));
        });
        for frag in &part.fragments {
            for (r, comment) in super::walk::frame_text(b, frag.clone()) {
                let Some(i) = part.element_at(&r) else {
                    continue;
                };
                m.find(b, r, !comment, |f| found.push((f, Some(i))));
            }
        }
        for (f, i) in found {
            let i = i.or_else(|| part.element_at(&f.at));
            if let Some(h) = judge(m, profile, part, i, &f) {
                if !hits.contains(&h) {
                    hits.push(h);
                }
            }
        }
    }
    hits.sort();
    hits
}

/// VRs that hold numbers, dates and times: an identifier there is a
/// coincidence (a shifted date, an ImagePosition digit run), except the
/// birth date in PatientBirthDate itself.
fn numeric(vr: VR) -> bool {
    matches!(
        vr,
        VR::AS
            | VR::DA
            | VR::DT
            | VR::TM
            | VR::DS
            | VR::IS
            | VR::US
            | VR::SS
            | VR::UL
            | VR::SL
            | VR::UV
            | VR::SV
            | VR::FL
            | VR::FD
            | VR::AT
            | VR::OF
            | VR::OD
            | VR::OL
            | VR::OV
    )
}

/// Coded entries: their values are terms of a coding scheme.
const VOCABULARY: [Tag; 4] = [
    tags::CODE_VALUE,
    tags::CODING_SCHEME_DESIGNATOR,
    tags::CODE_MEANING,
    tags::LONG_CODE_VALUE,
];

/// Whether the match covers a whole value (or a whole component of one:
/// values, and PN components, are separated by `\`, `^`, `=`).
fn whole_component(bytes: &[u8], value: &Range<usize>, f: &Found) -> bool {
    let sep = |b: u8| matches!(b, b'\\' | b'^' | b'=');
    let pad = |b: u8| matches!(b, b' ' | b'\0');
    let before = &bytes[value.start..f.at.start];
    let after = &bytes[f.at.end..value.end];
    let ok_before = before
        .iter()
        .rev()
        .find(|b| !pad(**b))
        .is_none_or(|b| sep(*b));
    let ok_after = after.iter().find(|b| !pad(**b)).is_none_or(|b| sep(*b));
    ok_before && ok_after
}

/// Whether a match counts, and where it is.
fn judge(
    m: &Matcher,
    profile: &Profile,
    part: &Part<'_>,
    el: Option<usize>,
    f: &Found,
) -> Option<Hit> {
    let kind = f.pattern.kind;
    let hit = |tag: Option<Tag>, location: String| {
        Some(Hit {
            kind,
            location,
            tag,
        })
    };
    let Some(i) = el else {
        return hit(None, "the file outside any element".into());
    };
    let e = &part.elems[i];
    let tag = e.tag;
    let vr = e.vr();
    if e.body == Body::Encapsulated {
        return hit(Some(tag), "pixel data (7FE0,0010)".into());
    }
    // The gateway's own markers: fixed code values and method text.
    if tag == tags::DEIDENTIFICATION_METHOD
        || ancestors(part, i).any(|a| a.tag == tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
    {
        return None;
    }
    if vr == VR::UI {
        // UIDs: only an original UID, as a whole value (the edges saw to
        // that), counts. Anything else inside a UID is a coincidence of the
        // digits of a pseudonymous UID, or a UID the profile retains.
        if kind != Kind::Uid {
            return None;
        }
        return hit(Some(tag), name(part, i, m));
    }
    if numeric(vr) && !(kind == Kind::BirthDate && tag == tags::PATIENT_BIRTH_DATE) {
        return None;
    }
    // Code strings and coded entries hold the terms of the standard and of
    // coding schemes ("PERFUSION", CodeMeaning "Head"): a name part equal
    // to one is the term.
    if matches!(
        kind,
        Kind::PatientName | Kind::Physician | Kind::Institution
    ) && (vr == VR::CS || VOCABULARY.contains(&tag))
    {
        return None;
    }
    if tag.group() % 2 == 1 {
        return hit(Some(tag), name(part, i, m));
    }
    let (action, source) = profile.public_action(tag);
    match action {
        // The pseudonym itself: an identifier inside it is a coincidence of
        // its characters. The original value in its place is not.
        Action::PatientPseudonym | Action::PseudonymName | Action::Hash
            if source != Source::Override && !whole_component(&part.bytes, &e.value, f) =>
        {
            return None;
        }
        // An institution's or physician's name inside an element the
        // standard profile itself keeps (InstitutionName "TOSHIBA" in
        // Manufacturer "TOSHIBA_MEC") is the profile's choice: those are
        // equipment and procedure attributes. Kept by an override, it counts.
        Action::Keep
            if matches!(kind, Kind::Institution | Kind::Physician)
                && source != Source::Override =>
        {
            return None;
        }
        _ => {}
    }
    hit(Some(tag), name(part, i, m))
}

fn ancestors<'p>(part: &'p Part<'_>, i: usize) -> impl Iterator<Item = &'p Elem> {
    std::iter::successors(part.elems[i].parent, |p| part.elems[*p].parent).map(|p| &part.elems[p])
}

fn tag_text(t: Tag) -> String {
    format!("({:04X},{:04X})", t.group(), t.element())
}

/// "(0040,A730) > (0040,A160) TextValue", "private block (0029,xx10) of
/// creator "ACME 1.0"". The creator is named only when it holds no
/// identifier itself.
fn name(part: &Part<'_>, i: usize, m: &Matcher) -> String {
    let e = &part.elems[i];
    let mut path: Vec<String> = ancestors(part, i).map(|a| tag_text(a.tag)).collect();
    path.reverse();
    let t = e.tag;
    let last = if t.group() % 2 == 1 {
        let block = (t.element() >> 8) as u8;
        let creator = (t.element() >= 0x1000)
            .then(|| {
                part.elems
                    .iter()
                    .find(|c| c.parent == e.parent && c.tag == Tag(t.group(), u16::from(block)))
            })
            .flatten()
            .map(|c| {
                String::from_utf8_lossy(&part.bytes[c.value.clone()])
                    .trim_end_matches(['\0', ' '])
                    .trim()
                    .to_string()
            })
            .filter(|c| !c.is_empty() && c.is_ascii() && m.find_in_text(c).is_none());
        let mut s = if t.element() >= 0x1000 {
            format!(
                "private block ({:04X},xx{:02X})",
                t.group(),
                t.element() & 0xFF
            )
        } else {
            format!("private block creator {}", tag_text(t))
        };
        if let Some(c) = creator {
            s.push_str(&format!(" of creator {c:?}"));
        }
        s
    } else if t == tags::PIXEL_DATA {
        "pixel data (7FE0,0010)".into()
    } else {
        let kw: Cow<'_, str> = StandardDataDictionary
            .by_tag(t)
            .map(|d| Cow::Borrowed(d.alias))
            .unwrap_or(Cow::Borrowed(""));
        format!("{} {kw}", tag_text(t)).trim_end().to_string()
    };
    path.push(last);
    path.join(" > ")
}
