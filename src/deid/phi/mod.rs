//! The original identifiers of one object and the matcher that finds them
//! in text: the output guard looks for them in the encoded output
//! (`crate::pipeline::guard`), the text route in the lines it reads off the
//! pixels (`crate::routes::text`).
//!
//! - [`identifiers`]: what is looked for, read from the original object
//!   before de-identification (the patient's ID, other IDs, name components,
//!   birth date in five formats, accession number, original UIDs,
//!   institution and physicians' names that the profile does not keep);
//! - [`matcher`]: one Aho-Corasick matcher per object over those values, in
//!   UTF-8 and in the object's character sets, matched at word edges;
//!   decoded text (a line read off the pixels) goes through
//!   [`Matcher::find_in_text`], the same patterns.

pub mod identifiers;
pub mod matcher;

pub use identifiers::{Identifiers, Kind};
pub use matcher::Matcher;
