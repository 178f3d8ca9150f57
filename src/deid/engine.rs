//! The de-identification engine: walks every element at every depth and
//! applies the profile, the pseudonyms and the date shift, then writes the
//! markers and a new file meta group.

use super::action::Action;
use super::dates;
use super::markers::{self, MethodCode};
use super::profile::{Profile, Source, ACCESSION_NUMBER, PATIENT_ID, PATIENT_NAME};
use super::pseudonym::{patient_key, Pseudonymizer};
use super::report::Report;
use super::scrub::Scrubber;
use super::values::{dummy, is_string, is_text, max_len, strings, truncate_chars};
use crate::config::Config;
use crate::dicom::text;
use crate::keystore::{KeyStore, PatientRecord};
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject};
use std::collections::HashMap;
use std::sync::Arc;

/// Our implementation class UID (a fixed UUID-derived OID) and version name.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.257513838397316391624305813386437541245";
pub const IMPLEMENTATION_VERSION_NAME: &str = "DEIDGATE_0_1";

/// UIDs defined by the standard (SOP classes, transfer syntaxes, coding
/// schemes...) identify nobody and must survive: they start with this root.
const DICOM_UID_ROOT: &str = "1.2.840.10008.";

/// Why an object could not be de-identified. Messages never carry PHI.
#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    #[error("the data set has no SOP Class UID")]
    NoSopClass,
    #[error("the data set has no SOP Instance UID")]
    NoSopInstance,
    #[error("key store: {0}")]
    KeyStore(String),
    #[error("cannot build the file meta group: {0}")]
    Meta(String),
}

/// The result of de-identifying one object.
pub struct Deidentified {
    pub object: DefaultDicomObject,
    /// The patient pseudonym: safe to log.
    pub patient_pseudonym: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub report: Report,
}

/// Settings of the engine that are not the profile itself.
#[derive(Debug, Clone)]
pub struct Settings {
    pub date_shift_min_days: i64,
    pub date_shift_max_days: i64,
    pub max_age_years: u32,
}

/// De-identifies objects. Share one per process: it is `Send + Sync`.
#[derive(Clone)]
pub struct Deidentifier {
    profile: Profile,
    pseudo: Pseudonymizer,
    settings: Settings,
    store: Option<Arc<dyn KeyStore>>,
    /// The output guard's settings (`[guard]`), for the stage.
    guard: crate::config::GuardConfig,
}

impl Deidentifier {
    pub fn new(
        profile: Profile,
        pseudo: Pseudonymizer,
        settings: Settings,
        store: Option<Arc<dyn KeyStore>>,
    ) -> Self {
        Deidentifier {
            profile,
            pseudo,
            settings,
            store,
            guard: crate::config::GuardConfig::default(),
        }
    }

    /// The same engine with the output guard set to `guard`.
    pub fn with_guard(mut self, guard: crate::config::GuardConfig) -> Self {
        self.guard = guard;
        self
    }

    /// The output guard's settings.
    pub fn guard(&self) -> &crate::config::GuardConfig {
        &self.guard
    }

    /// Build from the configuration, the pseudonym key and a key store.
    pub fn from_config(
        cfg: &Config,
        pseudonym_key: [u8; 32],
        store: Option<Arc<dyn KeyStore>>,
    ) -> Result<Self, String> {
        let profile = Profile::from_config(cfg)?;
        let pseudo = Pseudonymizer::new(pseudonym_key, &cfg.deid.patient_id_prefix);
        let settings = Settings {
            date_shift_min_days: cfg.deid.date_shift_min_days,
            date_shift_max_days: cfg.deid.date_shift_max_days,
            max_age_years: cfg.deid.max_age_years,
        };
        Ok(Self::new(profile, pseudo, settings, store).with_guard(cfg.guard.clone()))
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The key store the reverse map is written to, if any.
    pub fn store(&self) -> Option<&Arc<dyn KeyStore>> {
        self.store.as_ref()
    }

    pub fn pseudonymizer(&self) -> &Pseudonymizer {
        &self.pseudo
    }

    /// De-identify a whole file object. `pixel_codes` are the CID 7050 codes
    /// of pixel routes that already ran on this object.
    pub fn deidentify(
        &self,
        file: DefaultDicomObject,
        pixel_codes: &[MethodCode],
    ) -> Result<Deidentified, DeidError> {
        let ts = file
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        let obj = file.into_inner();
        let top = |t: Tag| text(&obj, t);
        let sop_class = top(tags::SOP_CLASS_UID);
        if sop_class.is_empty() {
            return Err(DeidError::NoSopClass);
        }
        if top(tags::SOP_INSTANCE_UID).is_empty() {
            return Err(DeidError::NoSopInstance);
        }
        let (pid, issuer, name, birth) = (
            top(PATIENT_ID),
            top(tags::ISSUER_OF_PATIENT_ID),
            top(PATIENT_NAME),
            top(tags::PATIENT_BIRTH_DATE),
        );
        let key = patient_key(&pid, &issuer, &name, &birth, &top(tags::STUDY_INSTANCE_UID));
        let pseudonym = self.pseudo.patient(&key);
        let shift = self.pseudo.date_shift(
            &key,
            self.settings.date_shift_min_days,
            self.settings.date_shift_max_days,
        );
        let age_source = AgeSource::capture(&obj);

        let mut walk = Walk {
            profile: &self.profile,
            pseudo: &self.pseudo,
            shift,
            top_pid: pid.clone(),
            pseudonym: pseudonym.clone(),
            scrub: Scrubber::default(),
            report: Report::default(),
            uids: HashMap::new(),
            accession: None,
        };
        walk.learn(&obj);
        walk.scrub.seal();
        let mut out = walk.dataset(obj, 0);
        let mut report = walk.report;
        age_source.apply(&mut out, self.settings.max_age_years, &mut report);
        markers::apply(&mut out, self.profile.options(), pixel_codes);

        if let Some(store) = &self.store {
            let ks = |e: anyhow::Error| DeidError::KeyStore(e.to_string());
            let rec = PatientRecord {
                patient_id: pid,
                issuer: non_empty(issuer),
                name: non_empty(name),
                birth_date: non_empty(birth),
            };
            store.put_patient(&pseudonym, &rec).map_err(ks)?;
            for (new, orig) in &walk.uids {
                store.put_uid(new, orig).map_err(ks)?;
            }
            if let Some((new, orig)) = &walk.accession {
                store.put_accession(new, orig).map_err(ks)?;
            }
        }

        let sop_instance_uid = text(&out, tags::SOP_INSTANCE_UID);
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(sop_class)
            .media_storage_sop_instance_uid(sop_instance_uid.clone())
            .transfer_syntax(ts)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
            .build()
            .map_err(|e| DeidError::Meta(e.to_string()))?;
        Ok(Deidentified {
            study_uid: text(&out, tags::STUDY_INSTANCE_UID),
            series_uid: text(&out, tags::SERIES_INSTANCE_UID),
            sop_instance_uid,
            object: out.with_exact_meta(meta),
            patient_pseudonym: pseudonym,
            report,
        })
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// State of one object's walk.
struct Walk<'a> {
    profile: &'a Profile,
    pseudo: &'a Pseudonymizer,
    shift: i64,
    top_pid: String,
    pseudonym: String,
    scrub: Scrubber,
    report: Report,
    /// new UID -> original, for the key store.
    uids: HashMap<String, String>,
    accession: Option<(String, String)>,
}

impl Walk<'_> {
    /// Gather every text value the profile would not keep: the scrubber erases
    /// them wherever they reappear in text that is cleaned rather than removed.
    fn learn(&mut self, obj: &InMemDicomObject) {
        for e in obj {
            let tag = e.tag();
            match e.value() {
                Value::Sequence(seq) => seq.items().iter().for_each(|i| self.learn(i)),
                Value::Primitive(_) if is_text(e.vr()) && tag.group() % 2 == 0 => {
                    let (action, _) = self.profile.public_action(tag);
                    if !matches!(action, Action::Keep | Action::Clean) {
                        if let Ok(s) = e.value().to_str() {
                            self.scrub.learn(&s);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// De-identify one data set (the top level or a sequence item).
    fn dataset(&mut self, obj: InMemDicomObject, depth: usize) -> InMemDicomObject {
        let creators = private_creators(&obj);
        let dropped_overlays = self.removed_overlay_groups(&obj);
        let mut used_blocks: Vec<(u16, u8)> = Vec::new();
        let mut out: Vec<InMemElement> = Vec::new();
        for e in obj {
            let tag = e.tag();
            if tag.group() == 0x0002 || tag.group() == 0xFFFE {
                // File meta inside a data set, or stray item tags: never valid here.
                self.report.removed += 1;
                continue;
            }
            if dropped_overlays.contains(&tag.group()) {
                // An overlay whose data is removed goes whole: its remaining
                // attributes would describe a plane that is not there.
                self.report.removed += 1;
                continue;
            }
            if tag.group() % 2 == 1 {
                if is_private_creator(tag) {
                    out.push(e); // kept only if a block element survives (below)
                    continue;
                }
                let block = (tag.element() >> 8) as u8;
                let creator = creators.get(&(tag.group(), block)).map(String::as_str);
                let action =
                    if tag.group() <= 0x0007 || tag.group() == 0xFFFF || tag.element() < 0x1000 {
                        Action::Remove // groups 1,3,5,7,FFFF and elements outside a block are not private data
                    } else {
                        self.profile.private_action(tag, creator)
                    };
                if action == Action::Remove {
                    self.report.private_removed += 1;
                    continue;
                }
                self.report.private_kept += 1;
                if let Some(e) = self.apply(e, action, depth) {
                    used_blocks.push((tag.group(), block));
                    out.push(e);
                }
                continue;
            }
            let (action, source) = self.profile.public_action(tag);
            match source {
                Source::Unknown if action == Action::Remove => {
                    *self
                        .report
                        .unknown_removed
                        .entry((tag.group(), tag.element()))
                        .or_default() += 1;
                    continue;
                }
                Source::Override => self.report.overridden += 1,
                _ => {}
            }
            if let Some(e) = self.apply(e, action, depth) {
                out.push(e);
            }
        }
        // A private creator survives only if its block still holds an element.
        out.retain(|e| {
            let t = e.tag();
            !is_private_creator(t) || used_blocks.contains(&(t.group(), t.element() as u8))
        });
        InMemDicomObject::from_element_iter(out)
    }

    /// Overlay groups (60xx) whose Overlay Data the profile removes.
    fn removed_overlay_groups(&self, obj: &InMemDicomObject) -> Vec<u16> {
        obj.iter()
            .map(|e| e.tag())
            .filter(|t| {
                (0x6000..=0x601E).contains(&t.group())
                    && t.group() % 2 == 0
                    && t.element() == 0x3000
            })
            .filter(|t| {
                matches!(
                    self.profile.public_action(*t).0,
                    Action::Remove | Action::Clean
                )
            })
            .map(|t| t.group())
            .collect()
    }

    /// Apply one action to one element; `None` removes it.
    fn apply(&mut self, e: InMemElement, action: Action, depth: usize) -> Option<InMemElement> {
        let (tag, vr) = (e.tag(), e.vr());
        let r = &mut self.report;
        match action {
            Action::Remove => {
                r.removed += 1;
                None
            }
            Action::Keep => {
                r.kept += 1;
                Some(self.recurse(e, depth))
            }
            Action::Empty => {
                r.emptied += 1;
                Some(empty(tag, vr))
            }
            Action::Dummy => {
                r.dummied += 1;
                if vr == VR::SQ {
                    return Some(self.recurse(e, depth));
                }
                if vr == VR::UI {
                    return self.replace_uids(e);
                }
                Some(match dummy(vr) {
                    Some(v) => DataElement::new(tag, vr, v),
                    None => empty(tag, vr),
                })
            }
            Action::ReplaceUid => match vr {
                VR::SQ => Some(self.recurse(e, depth)),
                _ => self.replace_uids(e),
            },
            Action::Clean => {
                r.cleaned += 1;
                self.clean(e, depth)
            }
            Action::Replace(v) => {
                r.replaced += 1;
                Some(DataElement::new(tag, vr, strings(&v)))
            }
            Action::Hash => {
                let Some(orig) = string_value(&e) else {
                    r.removed += 1;
                    return None;
                };
                if orig.is_empty() {
                    return Some(empty(tag, vr));
                }
                let domain = if tag == ACCESSION_NUMBER {
                    "accession"
                } else {
                    "override-hash"
                };
                let h = self
                    .pseudo
                    .hash(domain, &orig, max_len(vr).unwrap_or(64).min(16));
                if tag == ACCESSION_NUMBER && depth == 0 {
                    self.accession = Some((h.clone(), orig));
                }
                r.replaced += 1;
                Some(DataElement::new(tag, vr, PrimitiveValue::from(h)))
            }
            Action::PatientPseudonym => {
                r.replaced += 1;
                let orig = string_value(&e).unwrap_or_default();
                let p = if depth == 0 || orig == self.top_pid {
                    self.pseudonym.clone()
                } else if orig.is_empty() {
                    return Some(empty(tag, vr));
                } else {
                    self.pseudo.patient(&patient_key(&orig, "", "", "", ""))
                };
                Some(DataElement::new(tag, vr, PrimitiveValue::from(p)))
            }
            Action::PseudonymName => {
                r.replaced += 1;
                if depth == 0 {
                    let n = self.pseudo.patient_name(&self.pseudonym);
                    Some(DataElement::new(tag, vr, PrimitiveValue::from(n)))
                } else {
                    Some(DataElement::new(
                        tag,
                        vr,
                        dummy(VR::PN).expect("PN has a dummy"),
                    ))
                }
            }
        }
    }

    /// `C`: dates move by the patient's shift, times stay, free text is
    /// scrubbed, sequences are cleaned item by item, binary data is removed.
    fn clean(&mut self, e: InMemElement, depth: usize) -> Option<InMemElement> {
        let (tag, vr) = (e.tag(), e.vr());
        let shift = self.shift;
        let shifted = |f: fn(&str, i64) -> Option<String>| {
            let v = string_value(&e)?;
            dates::shift_multi(&v, shift, f)
        };
        match vr {
            VR::SQ => Some(self.recurse(e, depth)),
            VR::DA | VR::DT => {
                let f = if vr == VR::DA {
                    dates::shift_da
                } else {
                    dates::shift_dt
                };
                match shifted(f) {
                    Some(v) => {
                        self.report.dates_shifted += 1;
                        Some(DataElement::new(tag, vr, strings(&v)))
                    }
                    // An unparsable date is never passed through.
                    None => Some(empty(tag, vr)),
                }
            }
            VR::TM => Some(e),
            VR::UI => self.replace_uids(e),
            _ if is_text(vr) => {
                let v = string_value(&e)?;
                let c = self.scrub.clean(&v);
                let c = match max_len(vr) {
                    Some(n) => truncate_chars(&c, n),
                    None => c,
                };
                Some(DataElement::new(tag, vr, strings(&c)))
            }
            _ if is_string(vr) => Some(e),
            // Binary data (overlay planes, curves) cannot be read for text: remove.
            _ => {
                self.report.removed += 1;
                None
            }
        }
    }

    /// Replace every UID value of a UI element (standard UIDs survive).
    fn replace_uids(&mut self, e: InMemElement) -> Option<InMemElement> {
        let (tag, vr) = (e.tag(), e.vr());
        let Some(v) = string_value(&e) else {
            self.report.removed += 1;
            return None;
        };
        let mapped: Vec<String> = v
            .split('\\')
            .map(|u| {
                let u = u.trim_end_matches(['\0', ' ']).trim();
                if u.is_empty() || u.starts_with(DICOM_UID_ROOT) {
                    u.to_string()
                } else {
                    let n = self.pseudo.uid(u);
                    self.uids.insert(n.clone(), u.to_string());
                    self.report.uids_replaced += 1;
                    n
                }
            })
            .collect();
        let vr = if vr == VR::UN { VR::UI } else { vr };
        Some(DataElement::new(tag, vr, strings(&mapped.join("\\"))))
    }

    /// Process the items of a sequence; other elements pass unchanged.
    fn recurse(&mut self, e: InMemElement, depth: usize) -> InMemElement {
        let (header, value) = e.into_parts();
        match value {
            Value::Sequence(seq) => {
                let items: Vec<InMemDicomObject> = seq
                    .into_items()
                    .into_iter()
                    .map(|i| self.dataset(i, depth + 1))
                    .collect();
                DataElement::new(
                    header.tag,
                    VR::SQ,
                    DataSetSequence::new(items, Length::UNDEFINED),
                )
            }
            other => DataElement::new(header.tag, header.vr, other),
        }
    }
}

/// The string value of an element, trimmed of padding; `None` if the value
/// is not text (binary or UN that does not decode).
fn string_value(e: &InMemElement) -> Option<String> {
    match e.value() {
        Value::Primitive(PrimitiveValue::Empty) => Some(String::new()),
        Value::Primitive(p) if is_string(e.vr()) || e.vr() == VR::UN => {
            let s = match p {
                PrimitiveValue::U8(b) if e.vr() == VR::UN => String::from_utf8(b.to_vec()).ok()?,
                _ => p.to_str().into_owned(),
            };
            Some(s.trim_end_matches(['\0', ' ']).to_string())
        }
        _ => None,
    }
}

/// A zero-length element (an empty sequence for SQ).
fn empty(tag: Tag, vr: VR) -> InMemElement {
    if vr == VR::SQ {
        DataElement::new(tag, vr, DataSetSequence::<InMemDicomObject>::empty())
    } else {
        DataElement::new(tag, vr, PrimitiveValue::Empty)
    }
}

fn is_private_creator(t: Tag) -> bool {
    t.group() % 2 == 1 && (0x0010..=0x00FF).contains(&t.element())
}

/// (group, block) -> creator string, for the private blocks of one data set.
fn private_creators(obj: &InMemDicomObject) -> HashMap<(u16, u8), String> {
    obj.iter()
        .filter(|e| is_private_creator(e.tag()))
        .filter_map(|e| {
            let s = e.value().to_str().ok()?;
            Some((
                (e.tag().group(), e.tag().element() as u8),
                s.trim().to_string(),
            ))
        })
        .collect()
}

/// What the age rules need from the original data set.
struct AgeSource {
    birth: String,
    at: String,
}

impl AgeSource {
    fn capture(obj: &InMemDicomObject) -> Self {
        let at = [
            tags::STUDY_DATE,
            tags::SERIES_DATE,
            tags::ACQUISITION_DATE,
            tags::CONTENT_DATE,
        ]
        .iter()
        .map(|t| text(obj, *t))
        .find(|s| !s.is_empty())
        .unwrap_or_default();
        AgeSource {
            birth: text(obj, tags::PATIENT_BIRTH_DATE),
            at,
        }
    }

    /// Recompute PatientAge where it is kept but missing or unreadable,
    /// aggregate ages over the limit, and drop the birth date of anyone over
    /// it (the year of birth of a 90-year-old identifies).
    fn apply(&self, out: &mut InMemDicomObject, max_years: u32, report: &mut Report) {
        let Some(age_el) = out.get(tags::PATIENT_AGE) else {
            return;
        };
        let current = age_el
            .value()
            .to_str()
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut age = if dates::parse_age(&current).is_some() {
            current.clone()
        } else {
            dates::age_between(&self.birth, &self.at).unwrap_or_default()
        };
        let over = dates::age_in_years(&age).is_some_and(|y| y >= f64::from(max_years + 1))
            || dates::is_over(&self.birth, &self.at, max_years + 1).unwrap_or(false);
        if over {
            age = format!("{:03}Y", max_years + 1);
            if out.get(tags::PATIENT_BIRTH_DATE).is_some() {
                out.put(DataElement::new(
                    tags::PATIENT_BIRTH_DATE,
                    VR::DA,
                    PrimitiveValue::Empty,
                ));
            }
        }
        if age != current {
            report.ages_recomputed += 1;
            let v = if age.is_empty() {
                PrimitiveValue::Empty
            } else {
                PrimitiveValue::from(age)
            };
            out.put(DataElement::new(tags::PATIENT_AGE, VR::AS, v));
        }
    }
}
