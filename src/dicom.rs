//! Generic DICOM value access shared by every layer: reading a Part 10
//! object from bytes and a top-level string value. Lives low in the module
//! tree so the config, engine, routes and transport can all use it without
//! importing each other.

use dicom_core::Tag;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};

/// Parse a Part 10 object from bytes (with or without the 128-byte preamble).
pub fn parse(bytes: &[u8]) -> Result<DefaultDicomObject, String> {
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .from_reader(bytes)
        .map_err(|e| format!("cannot parse as DICOM Part 10: {e}"))
}

/// The trimmed string value of a top-level element, or "".
pub fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.value().to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim_start().to_string())
        .unwrap_or_default()
}

/// The sender's AE title as recorded in the file meta (spool files carry it).
pub fn calling_ae(obj: &DefaultDicomObject) -> Option<String> {
    obj.meta()
        .source_application_entity_title()
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
}
