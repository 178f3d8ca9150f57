//! Metadata de-identification: PS3.15 Annex E with keyed pseudonyms.

pub mod action;
pub mod annex_e;
pub mod dates;
pub mod engine;
pub mod iod;
pub mod markers;
pub mod options;
pub mod phi;
pub mod profile;
pub mod pseudonym;
pub mod report;
pub mod scrub;
pub mod tagspec;
pub mod values;

pub use engine::{DeidError, Deidentified, Deidentifier};
pub use options::Options;
pub use profile::Profile;
pub use report::Report;
