//! Which objects are chest radiographs.
//!
//! The rule: a projection radiograph (Modality CR or DX, or a CR/DX storage
//! SOP class) whose body part is the chest; when it states no body part at
//! all, a chest view (PA, AP, lateral, decubitus) is enough. A stated body
//! part that is not the chest (CSPINE, EXTREMITY…) wins over the view.
//! Body part means BodyPartExamined (free text in practice: CHEST, THORAX,
//! "Thorax pa", LUNG…) or a code of the AnatomicRegionSequence. When in doubt
//! the rule says "chest": the cost is a deformation (or a quarantine while
//! no weights are installed), never an identifiable image passed untouched.
//!
//! What the shared corpus carries: RG1_* (CR, CHEST, PA), cat.dcm (DX,
//! CHEST plus SNM3 T-D3000 "Chest", AP), the chr*Multi charset samples (CR,
//! CHEST, PA) are chest; RG3_J2KI (CR, EXTREMITY, AP) and the DICOMDIR CRs
//! (CSPINE, LL/AP) are not.

use crate::dicom::text;
use dicom_dictionary_std::{tags, uids};
use dicom_object::{DefaultDicomObject, InMemDicomObject};

const CLASSES: &[&str] = &[
    uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
];
const MODALITIES: &[&str] = &["CR", "DX"];
/// Fragments of BodyPartExamined meaning the chest (after upper-casing).
const PART_WORDS: &[&str] = &["CHEST", "THORA", "TORAX", "LUNG"];
/// Chest codes of the AnatomicRegionSequence: SNOMED CT (SCT) and the SNOMED
/// RT/SNM3 codes of older modalities.
const CHEST_CODES: &[&str] = &[
    "43799004",  // SCT Chest
    "51185008",  // SCT Thoracic structure
    "302551006", // SCT Entire thorax
    "39607008",  // SCT Lung structure
    "T-D3000",   // SRT/SNM3 Chest
    "T-28000",   // SRT/SNM3 Lung
];
const VIEWS: &[&str] = &["PA", "AP", "LL", "RL", "LLD", "RLD", "LATERAL", "LAT"];
/// ViewCodeSequence meanings of chest views (e.g. "antero-posterior").
const VIEW_WORDS: &[&str] = &["ANTERO-POSTERIOR", "POSTERO-ANTERIOR", "LATERAL"];

/// Whether `obj` is a chest radiograph for the chest route.
pub fn is_chest_radiograph(obj: &DefaultDicomObject) -> bool {
    let class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0');
    let modality = text(obj, tags::MODALITY).to_ascii_uppercase();
    if !CLASSES.contains(&class) && !MODALITIES.contains(&modality.as_str()) {
        return false;
    }
    match body_part_is_chest(obj) {
        Some(chest) => chest,
        None => chest_view(obj),
    }
}

/// `None` when no body part is stated; otherwise whether any statement says
/// chest.
fn body_part_is_chest(obj: &InMemDicomObject) -> Option<bool> {
    let mut stated = false;
    let part = text(obj, tags::BODY_PART_EXAMINED).to_ascii_uppercase();
    if !part.trim().is_empty() {
        stated = true;
        if PART_WORDS.iter().any(|w| part.contains(w)) {
            return Some(true);
        }
    }
    for item in items(obj, tags::ANATOMIC_REGION_SEQUENCE) {
        let code = text(item, tags::CODE_VALUE);
        let meaning = text(item, tags::CODE_MEANING).to_ascii_uppercase();
        if code.trim().is_empty() && meaning.trim().is_empty() {
            continue;
        }
        stated = true;
        if CHEST_CODES.contains(&code.trim()) || PART_WORDS.iter().any(|w| meaning.contains(w)) {
            return Some(true);
        }
    }
    stated.then_some(false)
}

fn chest_view(obj: &InMemDicomObject) -> bool {
    let view = text(obj, tags::VIEW_POSITION).trim().to_ascii_uppercase();
    VIEWS.contains(&view.as_str())
        || items(obj, tags::VIEW_CODE_SEQUENCE).iter().any(|i| {
            let m = text(i, tags::CODE_MEANING).to_ascii_uppercase();
            VIEW_WORDS.iter().any(|w| m.contains(w))
        })
}

fn items(obj: &InMemDicomObject, tag: dicom_core::Tag) -> &[InMemDicomObject] {
    obj.element(tag).ok().and_then(|e| e.items()).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::value::{DataSetSequence, PrimitiveValue};
    use dicom_core::{DataElement, Length, VR};
    use dicom_object::meta::FileMetaTableBuilder;

    fn obj(class: &str, modality: &str, part: &str, view: &str) -> DefaultDicomObject {
        let mut o = InMemDicomObject::new_empty();
        let mut put = |t, v: &str| {
            if !v.is_empty() {
                o.put(DataElement::new(t, VR::CS, PrimitiveValue::from(v)));
            }
        };
        put(tags::MODALITY, modality);
        put(tags::BODY_PART_EXAMINED, part);
        put(tags::VIEW_POSITION, view);
        o.with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(class)
                .media_storage_sop_instance_uid("1.2.3")
                .transfer_syntax("1.2.840.10008.1.2.1"),
        )
        .unwrap()
    }

    const CR: &str = uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE;
    const SC: &str = uids::SECONDARY_CAPTURE_IMAGE_STORAGE;

    #[test]
    fn body_part_decides_then_view() {
        assert!(is_chest_radiograph(&obj(CR, "CR", "CHEST", "PA")));
        assert!(is_chest_radiograph(&obj(CR, "CR", "Thorax pa", "")));
        assert!(is_chest_radiograph(&obj(SC, "DX", "CHEST", "")));
        assert!(is_chest_radiograph(&obj(CR, "", "LUNG", "")));
        // No body part: a chest view is enough.
        assert!(is_chest_radiograph(&obj(CR, "CR", "", "AP")));
        // A contrary body part wins over the view.
        assert!(!is_chest_radiograph(&obj(CR, "CR", "EXTREMITY", "AP")));
        assert!(!is_chest_radiograph(&obj(CR, "CR", "CSPINE", "LL")));
        // Neither a chest part nor a view.
        assert!(!is_chest_radiograph(&obj(CR, "CR", "", "")));
        // Not a projection radiograph.
        assert!(!is_chest_radiograph(&obj(SC, "CT", "CHEST", "PA")));
    }

    #[test]
    fn anatomic_region_code_counts() {
        let mut o = obj(CR, "DX", "", "");
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::CODE_VALUE,
            VR::SH,
            PrimitiveValue::from("43799004"),
        ));
        o.put(DataElement::new(
            tags::ANATOMIC_REGION_SEQUENCE,
            VR::SQ,
            DataSetSequence::new(vec![item], Length::UNDEFINED),
        ));
        assert!(is_chest_radiograph(&o));
        // A non-chest code with a chest view is not chest.
        let mut o = obj(CR, "DX", "", "PA");
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::CODE_VALUE,
            VR::SH,
            PrimitiveValue::from("T-15460"),
        ));
        item.put(DataElement::new(
            tags::CODE_MEANING,
            VR::LO,
            PrimitiveValue::from("Knee"),
        ));
        o.put(DataElement::new(
            tags::ANATOMIC_REGION_SEQUENCE,
            VR::SQ,
            DataSetSequence::new(vec![item], Length::UNDEFINED),
        ));
        assert!(!is_chest_radiograph(&o));
    }
}
