//! The ten options of PS3.15 Annex E, as switches in the configuration.

use serde::{Deserialize, Serialize};

/// Option columns of Table E.1-1, in the order of `annex_e::Row::options`.
pub const OPTION_COLUMNS: [&str; 10] = [
    "retain_safe_private",
    "retain_uids",
    "retain_device_identity",
    "retain_institution_identity",
    "retain_patient_characteristics",
    "retain_longitudinal_full_dates",
    "retain_longitudinal_modified_dates",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
];

/// Which Annex E options are applied. The default is what research archives
/// ask for: Basic Profile + Retain Longitudinal Modified Dates + Retain Patient
/// Characteristics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    pub retain_safe_private: bool,
    pub retain_uids: bool,
    pub retain_device_identity: bool,
    pub retain_institution_identity: bool,
    pub retain_patient_characteristics: bool,
    pub retain_longitudinal_full_dates: bool,
    pub retain_longitudinal_modified_dates: bool,
    pub clean_descriptors: bool,
    pub clean_structured_content: bool,
    pub clean_graphics: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retain_safe_private: false,
            retain_uids: false,
            retain_device_identity: false,
            retain_institution_identity: false,
            retain_patient_characteristics: true,
            retain_longitudinal_full_dates: false,
            retain_longitudinal_modified_dates: true,
            clean_descriptors: false,
            clean_structured_content: false,
            clean_graphics: false,
        }
    }
}

impl Options {
    /// The switches in `OPTION_COLUMNS` order.
    pub fn columns(&self) -> [bool; 10] {
        [
            self.retain_safe_private,
            self.retain_uids,
            self.retain_device_identity,
            self.retain_institution_identity,
            self.retain_patient_characteristics,
            self.retain_longitudinal_full_dates,
            self.retain_longitudinal_modified_dates,
            self.clean_descriptors,
            self.clean_structured_content,
            self.clean_graphics,
        ]
    }

    /// Options that contradict each other are a configuration error.
    pub fn validate(&self) -> Result<(), String> {
        if self.retain_longitudinal_full_dates && self.retain_longitudinal_modified_dates {
            return Err(
                "retain_longitudinal_full_dates and retain_longitudinal_modified_dates \
                        exclude each other: choose one"
                    .into(),
            );
        }
        Ok(())
    }
}
