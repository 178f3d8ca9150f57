//! The de-identification profile: Table E.1-1 with the configured options,
//! the per-tag overrides and the built-in pseudonym rules folded into one
//! lookup from tag to action.

use super::action::{Action, ActionCode};
use super::annex_e::{self, Row};
use super::iod;
use super::options::Options;
use crate::config::{Config, OverrideAction, UnknownPublic};
use dicom_core::dictionary::DataDictionary;
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;
use std::collections::{HashMap, HashSet};

/// Why an element got its action; used for the per-file report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A configured per-tag override.
    Override,
    /// PatientID, PatientName, AccessionNumber: keyed pseudonyms.
    Pseudonym,
    /// A row of Table E.1-1 (after options and compound resolution).
    Table(ActionCode),
    /// A standard element not in the table: the standard keeps it.
    Dictionary,
    /// Group length: recomputed by the writer, so dropped.
    GroupLength,
    /// In neither the table nor the dictionary.
    Unknown,
}

/// Tags that get pseudonyms rather than the table's Z/D.
pub const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
pub const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
pub const ACCESSION_NUMBER: Tag = Tag(0x0008, 0x0050);

/// The compiled profile. Cheap to share across threads.
#[derive(Debug, Clone)]
pub struct Profile {
    options: Options,
    exact: HashMap<Tag, (ActionCode, Action)>,
    patterns: Vec<(Row, ActionCode, Action)>,
    overrides: HashMap<Tag, OverrideAction>,
    safe_private: HashSet<(String, u16, u8)>,
    unknown_public: UnknownPublic,
}

impl Profile {
    /// Build from a validated configuration.
    pub fn from_config(cfg: &Config) -> Result<Profile, String> {
        let mut p = Profile::new(cfg.deid.options, cfg.deid.unknown_public);
        p.overrides = cfg.overrides()?.into_iter().collect();
        p.safe_private = cfg.safe_private_tags()?.into_iter().collect();
        Ok(p)
    }

    /// The table under `options`, with no overrides.
    pub fn new(options: Options, unknown_public: UnknownPublic) -> Profile {
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for row in annex_e::ROWS.iter() {
            let code = effective_code(row.basic, &row.options, &options);
            let tag = Tag(row.group, row.element);
            let action = iod::resolve(code, tag);
            if row.group_mask == 0xFFFF && row.element_mask == 0xFFFF {
                exact.insert(tag, (code, action));
            } else {
                patterns.push((*row, code, action));
            }
        }
        Profile {
            options,
            exact,
            patterns,
            overrides: HashMap::new(),
            safe_private: HashSet::new(),
            unknown_public,
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The action for a public (even-group) element.
    pub fn public_action(&self, tag: Tag) -> (Action, Source) {
        if let Some(o) = self.overrides.get(&tag) {
            return (override_action(o), Source::Override);
        }
        match tag {
            PATIENT_ID => return (Action::PatientPseudonym, Source::Pseudonym),
            PATIENT_NAME => return (Action::PseudonymName, Source::Pseudonym),
            ACCESSION_NUMBER => return (Action::Hash, Source::Pseudonym),
            _ => {}
        }
        if let Some((code, action)) = self.table_action(tag) {
            return (action, Source::Table(code));
        }
        if tag.element() == 0x0000 {
            return (Action::Remove, Source::GroupLength);
        }
        if StandardDataDictionary.by_tag(tag).is_some() {
            return (Action::Keep, Source::Dictionary);
        }
        match self.unknown_public {
            UnknownPublic::Remove => (Action::Remove, Source::Unknown),
            UnknownPublic::Keep => (Action::Keep, Source::Unknown),
        }
    }

    /// The table's row for `tag`, if any, as (effective code, action).
    pub fn table_action(&self, tag: Tag) -> Option<(ActionCode, Action)> {
        if let Some((c, a)) = self.exact.get(&tag) {
            return Some((*c, a.clone()));
        }
        self.patterns
            .iter()
            .find(|(r, _, _)| {
                tag.group() & r.group_mask == r.group && tag.element() & r.element_mask == r.element
                    // Repeating groups 50xx and 60xx are even groups only.
                    && tag.group().is_multiple_of(2)
            })
            .map(|(_, c, a)| (*c, a.clone()))
    }

    /// Whether a private element is kept: Retain Safe Private is on and its
    /// creator and element are on the allow-list. An override on the exact tag
    /// wins, so a site can keep or drop one private element explicitly.
    pub fn private_action(&self, tag: Tag, creator: Option<&str>) -> Action {
        if let Some(o) = self.overrides.get(&tag) {
            return override_action(o);
        }
        let allowed = self.options.retain_safe_private
            && creator.is_some_and(|c| {
                self.safe_private.contains(&(
                    c.trim().to_string(),
                    tag.group(),
                    (tag.element() & 0xFF) as u8,
                ))
            });
        if allowed {
            Action::Keep
        } else {
            iod::resolve(annex_e::PRIVATE_BASIC, tag)
        }
    }
}

/// Apply enabled options to a row: an enabled option with an entry replaces
/// the Basic Profile action. When two enabled options disagree, a Retain (K)
/// wins over a Clean (C): the site asked explicitly to keep that information.
pub fn effective_code(
    basic: ActionCode,
    row_opts: &[Option<ActionCode>; 10],
    options: &Options,
) -> ActionCode {
    let mut chosen: Option<ActionCode> = None;
    for (on, code) in options.columns().iter().zip(row_opts.iter()) {
        if let (true, Some(c)) = (on, code) {
            chosen = match (chosen, c) {
                (Some(ActionCode::K), _) => Some(ActionCode::K),
                (_, c) => Some(*c),
            };
        }
    }
    chosen.unwrap_or(basic)
}

fn override_action(o: &OverrideAction) -> Action {
    match o {
        OverrideAction::Keep => Action::Keep,
        OverrideAction::Remove => Action::Remove,
        OverrideAction::Empty => Action::Empty,
        OverrideAction::Hash => Action::Hash,
        OverrideAction::Replace(v) => Action::Replace(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic() -> Profile {
        let none = Options {
            retain_patient_characteristics: false,
            retain_longitudinal_modified_dates: false,
            ..Options::default()
        };
        Profile::new(none, UnknownPublic::Remove)
    }

    #[test]
    fn table_has_every_row_of_the_source() {
        assert_eq!(annex_e::ROWS.len() + 1, annex_e::SOURCE_ROWS);
        assert_eq!(annex_e::SOURCE_ROWS, 621);
    }

    #[test]
    fn basic_profile_actions() {
        let p = basic();
        // Institution Name X/Z/D (optional): removed.
        assert_eq!(p.public_action(Tag(0x0008, 0x0080)).0, Action::Remove);
        // Referring Physician's Name Z.
        assert_eq!(p.public_action(Tag(0x0008, 0x0090)).0, Action::Empty);
        // Study Instance UID U.
        assert_eq!(p.public_action(Tag(0x0020, 0x000D)).0, Action::ReplaceUid);
        // Study Date Z in the Basic Profile.
        assert_eq!(p.public_action(Tag(0x0008, 0x0020)).0, Action::Empty);
        // Patient's Sex Z; Patient's Age X without Retain Patient Characteristics.
        assert_eq!(p.public_action(Tag(0x0010, 0x0040)).0, Action::Empty);
        assert_eq!(p.public_action(Tag(0x0010, 0x1010)).0, Action::Remove);
        // Rows, not in the table, in the dictionary: kept.
        assert_eq!(
            p.public_action(Tag(0x0028, 0x0010)),
            (Action::Keep, Source::Dictionary)
        );
        // An unknown public element: removed and reported as unknown.
        assert_eq!(
            p.public_action(Tag(0x0009 - 1, 0x7777)),
            (Action::Remove, Source::Unknown)
        );
        // Group length.
        assert_eq!(
            p.public_action(Tag(0x0008, 0x0000)),
            (Action::Remove, Source::GroupLength)
        );
        // Pseudonyms.
        assert_eq!(p.public_action(PATIENT_ID).0, Action::PatientPseudonym);
        assert_eq!(p.public_action(ACCESSION_NUMBER).0, Action::Hash);
    }

    #[test]
    fn overlays_and_curves_follow_the_repeating_rows() {
        let p = basic();
        assert_eq!(p.public_action(Tag(0x6000, 0x3000)).0, Action::Remove);
        assert_eq!(p.public_action(Tag(0x6002, 0x4000)).0, Action::Remove);
        assert_eq!(p.public_action(Tag(0x5000, 0x3000)).0, Action::Remove);
        // Overlay Rows is not in the table: kept.
        assert_eq!(p.public_action(Tag(0x6000, 0x0010)).0, Action::Keep);
        let g = Profile::new(
            Options {
                clean_graphics: true,
                ..Options::default()
            },
            UnknownPublic::Remove,
        );
        assert_eq!(g.public_action(Tag(0x6000, 0x3000)).0, Action::Clean);
    }

    #[test]
    fn options_switch_rows() {
        let dflt = Profile::new(Options::default(), UnknownPublic::Remove);
        // Modified dates: Study Date becomes C (shifted).
        assert_eq!(dflt.public_action(Tag(0x0008, 0x0020)).0, Action::Clean);
        // Patient characteristics: Patient's Age, Sex, Size, Weight kept.
        assert_eq!(dflt.public_action(Tag(0x0010, 0x1010)).0, Action::Keep);
        assert_eq!(dflt.public_action(Tag(0x0010, 0x1030)).0, Action::Keep);
        let all = Options {
            retain_uids: true,
            retain_device_identity: true,
            retain_institution_identity: true,
            clean_descriptors: true,
            ..Options::default()
        };
        let p = Profile::new(all, UnknownPublic::Remove);
        assert_eq!(p.public_action(Tag(0x0020, 0x000D)).0, Action::Keep);
        assert_eq!(p.public_action(Tag(0x0018, 0x1000)).0, Action::Keep);
        assert_eq!(p.public_action(Tag(0x0008, 0x0080)).0, Action::Keep);
        assert_eq!(p.public_action(Tag(0x0008, 0x1030)).0, Action::Clean);
        // Retain (K) beats Clean (C) when both options apply: Device Identity
        // keeps the calibration date that Modified Dates would shift.
        assert_eq!(p.public_action(Tag(0x0018, 0x1200)).0, Action::Keep);
    }

    #[test]
    fn private_elements_need_the_option_and_the_allow_list() {
        let mut p = Profile::new(
            Options {
                retain_safe_private: true,
                ..Options::default()
            },
            UnknownPublic::Remove,
        );
        p.safe_private.insert(("ACME 1.0".into(), 0x0029, 0x10));
        assert_eq!(
            p.private_action(Tag(0x0029, 0x1010), Some("ACME 1.0")),
            Action::Keep
        );
        assert_eq!(
            p.private_action(Tag(0x0029, 0x1011), Some("ACME 1.0")),
            Action::Remove
        );
        assert_eq!(
            p.private_action(Tag(0x0029, 0x1010), Some("OTHER")),
            Action::Remove
        );
        assert_eq!(p.private_action(Tag(0x0029, 0x1010), None), Action::Remove);
        p.options.retain_safe_private = false;
        assert_eq!(
            p.private_action(Tag(0x0029, 0x1010), Some("ACME 1.0")),
            Action::Remove
        );
    }

    #[test]
    fn overrides_win() {
        let mut p = basic();
        p.overrides
            .insert(Tag(0x0008, 0x1030), OverrideAction::Keep);
        p.overrides
            .insert(PATIENT_ID, OverrideAction::Replace("X".into()));
        assert_eq!(
            p.public_action(Tag(0x0008, 0x1030)),
            (Action::Keep, Source::Override)
        );
        assert_eq!(p.public_action(PATIENT_ID).0, Action::Replace("X".into()));
    }
}
