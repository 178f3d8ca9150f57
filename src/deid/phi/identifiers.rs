//! The identifiers the guard looks for, read from the original object before
//! de-identification consumes it: a few top-level reads and one pass over
//! its elements (UIDs, accession numbers and names can sit in sequences).
//! Values stay in memory; nothing here is ever logged or written.

use crate::deid::action::Action;
use crate::deid::profile::Profile;
use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// A numeric identifier (PatientID, OtherPatientIDs, AccessionNumber with
/// no letter) shorter than this is not looked for. Shorter numbers stand
/// alone in ordinary content too often: counts, sizes, kVp, series and
/// instance numbers written into descriptions, CID code values. From 6
/// digits on, a number that stands alone (not inside a longer digit run,
/// a UID, a numeric element or the pixels, all excluded below) is rarely
/// anything but the identifier.
pub const MIN_NUMERIC_ID: usize = 6;
/// An identifier with a letter in it, at least this long.
pub const MIN_ALNUM_ID: usize = 4;
/// Name components (family, given, middle name) of patients and physicians.
pub const MIN_NAME_PART: usize = 3;
/// Words inside a name component that has several ("Mary Ann", "van Dijk").
pub const MIN_NAME_WORD: usize = 4;
/// The institution's name, as a whole.
pub const MIN_INSTITUTION: usize = 4;
/// Original UIDs shorter than this are not looked for.
pub const MIN_UID: usize = 8;

/// What kind of identifier was found: named in the quarantine reason
/// instead of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    PatientId,
    OtherPatientId,
    PatientName,
    BirthDate,
    Accession,
    Uid,
    Institution,
    Physician,
}

impl Kind {
    /// Words for the reason and the log (never the value).
    pub fn describe(self) -> &'static str {
        match self {
            Kind::PatientId => "the patient's ID",
            Kind::OtherPatientId => "another ID of the patient",
            Kind::PatientName => "the patient's name",
            Kind::BirthDate => "the patient's birth date",
            Kind::Accession => "the accession number",
            Kind::Uid => "an original UID",
            Kind::Institution => "the institution's name",
            Kind::Physician => "a physician's name",
        }
    }
}

/// One identifier: its kind and its value as text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identifier {
    pub kind: Kind,
    pub value: String,
}

impl std::fmt::Debug for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value, even in a debug print.
        write!(f, "{:?}({} chars)", self.kind, self.value.chars().count())
    }
}

/// Every identifier of one object, and the character sets its text is
/// written in (the output keeps the input's Specific Character Set).
#[derive(Default, Clone, PartialEq, Eq, Hash)]
pub struct Identifiers {
    /// The patient's, the study's, the institution's: the same for every
    /// instance of a study (the matcher over them is reused).
    pub items: Vec<Identifier>,
    /// The defined terms of (0008,0005), in order.
    pub charsets: Vec<String>,
    /// The original UIDs: different in every instance, looked up as whole
    /// UID-shaped runs rather than matched as patterns.
    pub uids: Vec<String>,
}

impl std::fmt::Debug for Identifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identifiers")
            .field("items", &self.items)
            .field("charsets", &self.charsets)
            .field("uids", &self.uids.len())
            .finish()
    }
}

/// Other Patient IDs (0010,1000): retired, still written by many systems.
const OTHER_PATIENT_IDS: Tag = Tag(0x0010, 0x1000);

/// Physicians' names the guard looks for unless the profile keeps the
/// element (an override "keep"; no Annex E option retains them).
const PHYSICIAN_TAGS: [Tag; 6] = [
    tags::REFERRING_PHYSICIAN_NAME,
    tags::PHYSICIANS_OF_RECORD,
    tags::PERFORMING_PHYSICIAN_NAME,
    tags::NAME_OF_PHYSICIANS_READING_STUDY,
    tags::REQUESTING_PHYSICIAN,
    tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME,
];

/// Values that stand for no one: placeholders written instead of an
/// identifier (the engine's own dummy is "ANONYMIZED").
fn placeholder(v: &str) -> bool {
    const WORDS: [&str; 19] = [
        "anonymous",
        "anonymized",
        "anonymised",
        "anon",
        "unknown",
        "none",
        "null",
        "nil",
        "n/a",
        "removed",
        "deidentified",
        "de-identified",
        "patient",
        "test",
        "phantom",
        "name",
        "pseudonym",
        "other",
        "not available",
    ];
    let v = v.trim();
    if WORDS.iter().any(|w| w.eq_ignore_ascii_case(v)) {
        return true;
    }
    // One character repeated ("0000000", "XXXX", "11111111").
    let mut chars = v
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '/' | ' '))
        .map(|c| c.to_ascii_lowercase());
    let first = chars.next();
    first.is_some_and(|f| chars.all(|c| c == f))
}

impl Identifiers {
    /// The identifiers of `obj` that its output must not contain, given what
    /// `profile` keeps on purpose: institution and physicians' names kept by
    /// an option or an override, and UIDs under Retain UIDs (or kept by an
    /// override), are not looked for. The patient's own identifiers always
    /// are: no Annex E option retains them, and an override that keeps one
    /// is exactly the configuration error the guard exists to catch.
    pub fn collect(obj: &InMemDicomObject, profile: &Profile) -> Identifiers {
        let mut c = Collector {
            profile,
            out: Identifiers::default(),
            replaced_uids: Vec::new(),
            kept_uids: Vec::new(),
        };
        c.out.charsets = crate::dicom::text(obj, tags::SPECIFIC_CHARACTER_SET)
            .split('\\')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        c.walk(obj, 0);
        let Collector {
            mut out,
            replaced_uids,
            kept_uids,
            ..
        } = c;
        for u in replaced_uids {
            if !kept_uids.contains(&u) {
                out.push(Kind::Uid, &u);
            }
        }
        out
    }

    /// An identifier list from plain values (tests, a recognizer's caller).
    pub fn from_values(items: &[(Kind, &str)]) -> Identifiers {
        let mut out = Identifiers::default();
        for (k, v) in items {
            out.push(*k, v);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.uids.is_empty()
    }

    /// Add `value` as `kind` if it is long enough to look for, not a
    /// placeholder and not there already.
    fn push(&mut self, kind: Kind, value: &str) {
        let v = value.trim_end_matches(['\0', ' ']).trim();
        let min = match kind {
            Kind::PatientId | Kind::OtherPatientId | Kind::Accession => {
                if v.chars().any(char::is_alphabetic) {
                    MIN_ALNUM_ID
                } else {
                    MIN_NUMERIC_ID
                }
            }
            Kind::PatientName | Kind::Physician => MIN_NAME_PART,
            Kind::Institution => MIN_INSTITUTION,
            Kind::Uid => MIN_UID,
            Kind::BirthDate => 8,
        };
        // Byte length first: it is at least the character count.
        if v.len() < min || v.chars().count() < min {
            return;
        }
        if kind == Kind::Uid {
            if !self.uids.iter().any(|u| u == v) {
                self.uids.push(v.to_string());
            }
            return;
        }
        if kind != Kind::BirthDate && placeholder(v) {
            return;
        }
        if !self.items.iter().any(|i| i.kind == kind && i.value == v) {
            self.items.push(Identifier {
                kind,
                value: v.to_string(),
            });
        }
    }

    /// Family, given and middle name of every component group of a PN value
    /// (alphabetic, ideographic, phonetic), and the longer words of a
    /// component that has several. Prefixes and suffixes ("Dr", "III") are
    /// not names.
    fn push_name(&mut self, kind: Kind, pn: &str) {
        for person in pn.split('\\') {
            for group in person.split('=') {
                for part in group.split('^').take(3) {
                    let part = part.trim();
                    if part.is_empty() {
                        continue;
                    }
                    self.push(kind, part);
                    let separated = |c: char| c.is_whitespace() || c == ',';
                    if part.contains(separated) {
                        for w in part.split(separated) {
                            if w.len() >= MIN_NAME_WORD && w.chars().count() >= MIN_NAME_WORD {
                                self.push(kind, w);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The birth date as written in DICOM and in the usual text formats.
    fn push_birth_date(&mut self, da: &str) {
        let d = da.trim();
        if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) || d == "19000101" {
            return;
        }
        let (y, m, day) = (&d[0..4], &d[4..6], &d[6..8]);
        for f in [
            d.to_string(),
            format!("{y}-{m}-{day}"),
            format!("{day}.{m}.{y}"),
            format!("{m}/{day}/{y}"),
            format!("{day}/{m}/{y}"),
        ] {
            self.push(Kind::BirthDate, &f);
        }
    }
}

struct Collector<'a> {
    profile: &'a Profile,
    out: Identifiers,
    replaced_uids: Vec<String>,
    kept_uids: Vec<String>,
}

impl Collector<'_> {
    fn walk(&mut self, obj: &InMemDicomObject, depth: usize) {
        for e in obj {
            let tag = e.tag();
            let p = match e.value() {
                Value::Sequence(s) => {
                    for item in s.items() {
                        self.walk(item, depth + 1);
                    }
                    continue;
                }
                Value::Primitive(p) => p,
                Value::PixelSequence(_) => continue,
            };
            // Private values are not read: the engine keeps or removes them
            // whole, it never pseudonymises them.
            if tag.group() % 2 == 1 {
                continue;
            }
            let text = || p.to_str();
            match tag {
                tags::PATIENT_ID => {
                    let kind = if depth == 0 {
                        Kind::PatientId
                    } else {
                        Kind::OtherPatientId
                    };
                    self.out.push(kind, &text());
                }
                OTHER_PATIENT_IDS => {
                    let t = text();
                    for v in t.split('\\') {
                        self.out.push(Kind::OtherPatientId, v);
                    }
                }
                tags::PATIENT_NAME if depth == 0 => self.out.push_name(Kind::PatientName, &text()),
                tags::PATIENT_BIRTH_DATE if depth == 0 => self.out.push_birth_date(&text()),
                tags::ACCESSION_NUMBER => self.out.push(Kind::Accession, &text()),
                tags::INSTITUTION_NAME if !self.kept(tag) => {
                    self.out.push(Kind::Institution, &text());
                }
                t if PHYSICIAN_TAGS.contains(&t) && !self.kept(tag) => {
                    self.out.push_name(Kind::Physician, &text());
                }
                _ if e.vr() == VR::UI => self.uids(tag, &text()),
                _ => {}
            }
        }
    }

    /// Whether the profile keeps `tag` (an option, or an override).
    fn kept(&self, tag: Tag) -> bool {
        self.profile.public_action(tag).0 == Action::Keep
    }

    /// UIDs the engine replaces here (not the standard's own) are looked
    /// for, unless the profile keeps the same UID in another element.
    fn uids(&mut self, tag: Tag, v: &str) {
        let values: Vec<&str> = v
            .split('\\')
            .map(|u| u.trim_end_matches(['\0', ' ']).trim())
            .filter(|u| u.len() >= MIN_UID && !u.starts_with("1.2.840.10008."))
            .collect();
        if values.is_empty() {
            return;
        }
        let into = match self.profile.public_action(tag).0 {
            Action::ReplaceUid | Action::Dummy | Action::Clean => &mut self.replaced_uids,
            Action::Remove | Action::Empty => return,
            _ => &mut self.kept_uids,
        };
        for u in values {
            if !into.iter().any(|x| x == u) {
                into.push(u.to_string());
            }
        }
    }
}
