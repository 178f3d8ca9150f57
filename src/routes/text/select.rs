//! Which objects the text route searches: every image of the configured
//! modalities and SOP classes, whatever BurnedInAnnotation says (the flag
//! is often wrong or missing), and every image that says YES.

use crate::config::TextConfig;
use crate::dicom::text;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

/// Whether `obj` has pixels the text route must search.
pub fn claims(obj: &DefaultDicomObject, cfg: &TextConfig) -> bool {
    if obj.get(tags::PIXEL_DATA).is_none() {
        return false;
    }
    let listed = |list: &[String], v: &str| list.iter().any(|x| x.trim().eq_ignore_ascii_case(v));
    let class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0');
    says_burned_in(obj)
        || listed(&cfg.modalities, &text(obj, tags::MODALITY))
        || listed(&cfg.sop_classes, class)
}

/// BurnedInAnnotation (0028,0301) = YES.
pub fn says_burned_in(obj: &DefaultDicomObject) -> bool {
    text(obj, tags::BURNED_IN_ANNOTATION).eq_ignore_ascii_case("YES")
}

/// Whether the text route also runs on `obj` after `route` cleaned it (see
/// `[text] after`).
pub fn follows(route: &str, obj: &DefaultDicomObject, cfg: &TextConfig) -> bool {
    if obj.get(tags::PIXEL_DATA).is_none() || !cfg.after.iter().any(|r| r == route) {
        return false;
    }
    if route != "mri" {
        return true;
    }
    let class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0');
    says_burned_in(obj) || cfg.sop_classes.iter().any(|c| c.trim() == class)
}
