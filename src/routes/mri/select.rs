//! Which objects are head MR for the face route.
//!
//! The rule, from the files in ../shared/data (see the tests):
//! 1. MR image SOP classes only (MR, Enhanced MR, Legacy Converted Enhanced MR).
//! 2. BodyPartExamined, when present, decides: a head term (HEAD, BRAIN,
//!    SKULL, HEADNECK, FACE, ...) is head, anything else (ABDOMEN,
//!    SHOULDER, ...) is not.
//! 3. Without BodyPartExamined, a head word in SeriesDescription,
//!    ProtocolName or StudyDescription makes it head: HEAD, BRAIN, NEURO,
//!    SKULL, CRANI-, CEREBR- (substrings, upper-cased).
//!
//! Sequence names (MPRAGE, IR-SPGR) are not used: they are not anatomy, and
//! dicom/mr_tag_tests/dcm_qa_deident_fruit (a "SAG IR-SPGR" series without
//! BodyPartExamined) holds no head. Files seen: decubitus_dicom (BRAIN),
//! head_mr_t1_sag_lowres and emri_small* (HEAD), siemens_mosaic_0 (no body
//! part, StudyDescription "CBU^Neuroimaging") are head; MR_small* (no body
//! part, no description), MR2_J2KI (SHOULDER), WithOverlays (ABDOMEN) and
//! seg3d_cardiac are not.

use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

pub const MR_CLASSES: &[&str] = &[
    uids::MR_IMAGE_STORAGE,
    uids::ENHANCED_MR_IMAGE_STORAGE,
    uids::LEGACY_CONVERTED_ENHANCED_MR_IMAGE_STORAGE,
];

/// BodyPartExamined values whose images contain the face.
const HEAD_PARTS: &[&str] = &[
    "HEAD",
    "BRAIN",
    "SKULL",
    "HEADNECK",
    "HEAD_NECK",
    "FACE",
    "ORBIT",
    "NOSE",
    "JAW",
    "TMJ",
    "SINUS",
    "CEREBRUM",
    "CEREBELLUM",
    "IAC",
    "EAR",
    "SELLA",
    "PITUITARY",
    "NASOPHARYNX",
];

/// Words in the descriptions that say head.
const HEAD_WORDS: &[&str] = &["HEAD", "BRAIN", "NEURO", "SKULL", "CRANI", "CEREBR"];

/// Whether `obj` (a data set with its SOP class) is head MR.
pub fn is_head_mr(obj: &InMemDicomObject, sop_class: &str) -> bool {
    if !MR_CLASSES.contains(&sop_class.trim_end_matches(['\0', ' '])) {
        return false;
    }
    let text = |t| crate::dicom::text(obj, t).to_ascii_uppercase();
    let part = text(tags::BODY_PART_EXAMINED);
    if !part.is_empty() {
        return HEAD_PARTS.contains(&part.as_str());
    }
    [
        tags::SERIES_DESCRIPTION,
        tags::PROTOCOL_NAME,
        tags::STUDY_DESCRIPTION,
    ]
    .iter()
    .map(|t| text(*t))
    .any(|d| HEAD_WORDS.iter().any(|w| d.contains(w)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, Tag, VR};

    fn obj(items: &[(Tag, &str)]) -> InMemDicomObject {
        InMemDicomObject::from_element_iter(
            items
                .iter()
                .map(|(t, v)| DataElement::new(*t, VR::LO, dicom_core::PrimitiveValue::from(*v))),
        )
    }

    #[test]
    fn body_part_decides_then_descriptions() {
        let mr = uids::MR_IMAGE_STORAGE;
        assert!(is_head_mr(&obj(&[(tags::BODY_PART_EXAMINED, "BRAIN")]), mr));
        assert!(is_head_mr(&obj(&[(tags::BODY_PART_EXAMINED, "head")]), mr));
        assert!(!is_head_mr(
            &obj(&[
                (tags::BODY_PART_EXAMINED, "ABDOMEN"),
                (tags::STUDY_DESCRIPTION, "brain")
            ]),
            mr
        ));
        assert!(!is_head_mr(
            &obj(&[(tags::SERIES_DESCRIPTION, "Accelerated SAG IR-SPGR")]),
            mr
        ));
        assert!(is_head_mr(
            &obj(&[(tags::STUDY_DESCRIPTION, "MR HEAD WO")]),
            mr
        ));
        assert!(!is_head_mr(
            &obj(&[(tags::PROTOCOL_NAME, "T1W/SE/1024")]),
            mr
        ));
        assert!(!is_head_mr(
            &obj(&[(tags::BODY_PART_EXAMINED, "BRAIN")]),
            uids::CT_IMAGE_STORAGE
        ));
        assert!(is_head_mr(
            &obj(&[(tags::BODY_PART_EXAMINED, "HEAD")]),
            uids::ENHANCED_MR_IMAGE_STORAGE
        ));
    }
}
