//! The accept / quarantine decision taken before de-identification.

use crate::config::FilterConfig;
use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;

/// Why an object is not forwarded. Reasons name attributes, never values.
pub fn check(obj: &DefaultDicomObject, cfg: &FilterConfig) -> Result<(), String> {
    let get = |t| crate::deid::engine::text(obj, t);
    let sop_class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0');
    if sop_class == uids::MEDIA_STORAGE_DIRECTORY_STORAGE {
        return Err(
            "DICOMDIR (media storage directory): its records point at the original files; \
                    regenerate it from the de-identified files instead"
                .into(),
        );
    }
    if cfg.quarantine_burned_in_annotation
        && get(tags::BURNED_IN_ANNOTATION).eq_ignore_ascii_case("YES")
    {
        return Err(
            "BurnedInAnnotation=YES: the pixels carry identifying text and no pixel route \
                    cleans them"
                .into(),
        );
    }
    Ok(())
}
