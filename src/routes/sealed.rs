//! Sealed originals of any route, put back: the record says which route
//! wrote it (the text route's start with its magic; the photo route's are
//! the older, unmarked format).

use dicom_object::DefaultDicomObject;

/// Restores the pixels a route replaced, from its sealed record.
pub fn restore(obj: &mut DefaultDicomObject, record: &[u8]) -> Result<(), String> {
    if record.starts_with(super::text::sealed::MAGIC) {
        super::text::sealed::restore_object(obj, record)
    } else {
        super::photo::restore_photo(obj, record)
    }
}
