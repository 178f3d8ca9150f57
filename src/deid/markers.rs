//! The truthful de-identification markers: PatientIdentityRemoved,
//! LongitudinalTemporalInformationModified, DeidentificationMethod and its
//! code sequence (CID 7050), listing exactly what was applied.

use super::options::Options;
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::InMemDicomObject;

pub const PATIENT_IDENTITY_REMOVED: Tag = Tag(0x0012, 0x0062);
pub const DEIDENTIFICATION_METHOD: Tag = Tag(0x0012, 0x0063);
pub const DEIDENTIFICATION_METHOD_CODE_SEQUENCE: Tag = Tag(0x0012, 0x0064);
pub const LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED: Tag = Tag(0x0028, 0x0303);

/// A CID 7050 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodCode {
    pub value: &'static str,
    pub meaning: &'static str,
}

pub const BASIC_PROFILE: MethodCode = MethodCode {
    value: "113100",
    meaning: "Basic Application Confidentiality Profile",
};
pub const CLEAN_PIXEL_DATA: MethodCode = MethodCode {
    value: "113101",
    meaning: "Clean Pixel Data Option",
};
pub const CLEAN_RECOGNIZABLE_VISUAL_FEATURES: MethodCode = MethodCode {
    value: "113102",
    meaning: "Clean Recognizable Visual Features Option",
};
const CLEAN_GRAPHICS: MethodCode = MethodCode {
    value: "113103",
    meaning: "Clean Graphics Option",
};
const CLEAN_STRUCTURED_CONTENT: MethodCode = MethodCode {
    value: "113104",
    meaning: "Clean Structured Content Option",
};
const CLEAN_DESCRIPTORS: MethodCode = MethodCode {
    value: "113105",
    meaning: "Clean Descriptors Option",
};
const RETAIN_FULL_DATES: MethodCode = MethodCode {
    value: "113106",
    meaning: "Retain Longitudinal Temporal Information Full Dates Option",
};
const RETAIN_MODIFIED_DATES: MethodCode = MethodCode {
    value: "113107",
    meaning: "Retain Longitudinal Temporal Information Modified Dates Option",
};
const RETAIN_PATIENT_CHARACTERISTICS: MethodCode = MethodCode {
    value: "113108",
    meaning: "Retain Patient Characteristics Option",
};
const RETAIN_DEVICE_IDENTITY: MethodCode = MethodCode {
    value: "113109",
    meaning: "Retain Device Identity Option",
};
const RETAIN_UIDS: MethodCode = MethodCode {
    value: "113110",
    meaning: "Retain UIDs Option",
};
const RETAIN_SAFE_PRIVATE: MethodCode = MethodCode {
    value: "113111",
    meaning: "Retain Safe Private Option",
};
const RETAIN_INSTITUTION_IDENTITY: MethodCode = MethodCode {
    value: "113112",
    meaning: "Retain Institution Identity Option",
};

/// The codes of the profile and the options that were applied, in code order.
/// Pixel codes (113101, 113102) are added only by a pixel route that ran.
pub fn method_codes(o: &Options, pixel_codes: &[MethodCode]) -> Vec<MethodCode> {
    let mut codes = vec![BASIC_PROFILE];
    codes.extend_from_slice(pixel_codes);
    let opt = [
        (o.clean_graphics, CLEAN_GRAPHICS),
        (o.clean_structured_content, CLEAN_STRUCTURED_CONTENT),
        (o.clean_descriptors, CLEAN_DESCRIPTORS),
        (o.retain_longitudinal_full_dates, RETAIN_FULL_DATES),
        (o.retain_longitudinal_modified_dates, RETAIN_MODIFIED_DATES),
        (
            o.retain_patient_characteristics,
            RETAIN_PATIENT_CHARACTERISTICS,
        ),
        (o.retain_device_identity, RETAIN_DEVICE_IDENTITY),
        (o.retain_uids, RETAIN_UIDS),
        (o.retain_safe_private, RETAIN_SAFE_PRIVATE),
        (o.retain_institution_identity, RETAIN_INSTITUTION_IDENTITY),
    ];
    codes.extend(opt.iter().filter(|(on, _)| *on).map(|(_, c)| *c));
    codes.sort_by_key(|c| c.value);
    codes.dedup();
    codes
}

/// Write the markers into the top-level data set.
pub fn apply(obj: &mut InMemDicomObject, o: &Options, pixel_codes: &[MethodCode]) {
    let codes = method_codes(o, pixel_codes);
    obj.put(DataElement::new(
        PATIENT_IDENTITY_REMOVED,
        VR::CS,
        PrimitiveValue::from("YES"),
    ));
    let temporal = if o.retain_longitudinal_full_dates {
        "UNMODIFIED"
    } else if o.retain_longitudinal_modified_dates {
        "MODIFIED"
    } else {
        "REMOVED"
    };
    obj.put(DataElement::new(
        LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
        VR::CS,
        PrimitiveValue::from(temporal),
    ));
    // DeidentificationMethod is LO (64 chars) with VM 1-n: one value per code.
    let mut method: Vec<String> = vec![format!("deidgate {}", env!("CARGO_PKG_VERSION"))];
    method.extend(codes.iter().map(|c| c.meaning.chars().take(64).collect()));
    obj.put(DataElement::new(
        DEIDENTIFICATION_METHOD,
        VR::LO,
        PrimitiveValue::Strs(method.into_iter().collect()),
    ));
    let items: Vec<InMemDicomObject> = codes
        .iter()
        .map(|c| {
            InMemDicomObject::from_element_iter([
                DataElement::new(Tag(0x0008, 0x0100), VR::SH, PrimitiveValue::from(c.value)),
                DataElement::new(Tag(0x0008, 0x0102), VR::SH, PrimitiveValue::from("DCM")),
                DataElement::new(Tag(0x0008, 0x0104), VR::LO, PrimitiveValue::from(c.meaning)),
            ])
        })
        .collect();
    obj.put(DataElement::new(
        DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::new(items, Length::UNDEFINED),
    ));
}

/// Append a free-text value to DeidentificationMethod after [`apply`]: a
/// pixel route says there what it did (e.g. which MRI face mode ran).
/// LO holds 64 characters and no backslash.
pub fn add_method_note(obj: &mut InMemDicomObject, note: &str) {
    let mut values: Vec<String> = obj
        .get(DEIDENTIFICATION_METHOD)
        .and_then(|e| e.value().to_multi_str().ok())
        .map(|v| v.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    values.push(note.replace('\\', "/").chars().take(64).collect());
    obj.put(DataElement::new(
        DEIDENTIFICATION_METHOD,
        VR::LO,
        PrimitiveValue::Strs(values.into_iter().collect()),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_give_exactly_three_codes() {
        let v: Vec<_> = method_codes(&Options::default(), &[])
            .iter()
            .map(|c| c.value)
            .collect();
        assert_eq!(v, ["113100", "113107", "113108"]);
    }

    #[test]
    fn pixel_codes_only_when_given() {
        let v: Vec<_> = method_codes(&Options::default(), &[CLEAN_RECOGNIZABLE_VISUAL_FEATURES])
            .iter()
            .map(|c| c.value)
            .collect();
        assert_eq!(v, ["113100", "113102", "113107", "113108"]);
        assert!(!v.contains(&CLEAN_PIXEL_DATA.value));
    }
}
