//! Which objects are photographs: the VL/ophthalmic photographic SOP
//! classes, XC/OP/ES/VL modalities, and secondary captures (SC/OT) whose
//! pixels are in colour (palette colour included).

use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;

/// SOP classes that are photographs whatever their content.
const PHOTO_CLASSES: &[&str] = &[
    uids::VL_PHOTOGRAPHIC_IMAGE_STORAGE,
    uids::VIDEO_PHOTOGRAPHIC_IMAGE_STORAGE,
    uids::OPHTHALMIC_PHOTOGRAPHY8_BIT_IMAGE_STORAGE,
    uids::OPHTHALMIC_PHOTOGRAPHY16_BIT_IMAGE_STORAGE,
    uids::VL_ENDOSCOPIC_IMAGE_STORAGE,
    "1.2.840.10008.5.1.4.1.1.77.1.4.1", // VL Photographic Image (external camera)
];
/// Secondary capture classes: photographs when their pixels are in colour.
const SC_CLASSES: &[&str] = &[
    uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE,
];
const PHOTO_MODALITIES: &[&str] = &["XC", "OP", "ES", "VL"];

/// Whether `obj` is a photograph for the photo route.
pub fn is_photograph(obj: &DefaultDicomObject) -> bool {
    let class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0');
    let text = |t| crate::dicom::text(obj, t);
    if PHOTO_CLASSES.contains(&class) || PHOTO_MODALITIES.contains(&text(tags::MODALITY).as_str()) {
        return true;
    }
    // Palette colour counts: a face stored as a palette image is still a
    // face (the route quarantines it, having no palette path yet).
    let colour = text(tags::SAMPLES_PER_PIXEL) == "3"
        || text(tags::PHOTOMETRIC_INTERPRETATION) == "PALETTE COLOR";
    colour && (SC_CLASSES.contains(&class) || ["SC", "OT"].contains(&text(tags::MODALITY).as_str()))
}
