//! Plant identifying values of every kind into real files and check that none
//! survives, that dates move consistently, and that the markers tell the truth.

mod common;

use common::*;
use deidgate::dicom::parse;
use deidgate::keystore::KeyStore;
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};

/// Values that must not survive anywhere.
const PLANTED: &[&str] = &[
    "ZETAPLANTED",
    "QUENTINPLANTED",
    "PHI-ID-998877",
    "OTHER-ID-445566",
    "17 Rue Imaginaire",
    "+33 4 55 66 77 88",
    "Hopital Fictif Saint-Planted",
    "Avenue du Faux 42",
    "REFERRERPLANTED",
    "PERFORMERPLANTED",
    "OPERATORPLANTED",
    "ACC-PLANTED-77",
    "PRIV-SECRET-ZETA",
    "NESTED-PRIV-SECRET",
    "REQ-PLANTED-5544",
    "SCHEDPHYSPLANTED",
    "UNKNOWN-PLANTED-VALUE",
    "STATION-PLANTED",
    "19380412",
    "SERIAL-PLANTED-0099",
];

fn el(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

/// Top-level identifying values planted into the real file.
const TOP_LEVEL: &[(Tag, VR, &str)] = &[
    (
        tags::PATIENT_NAME,
        VR::PN,
        "ZetaPlanted^QuentinPlanted^Marlowe",
    ),
    (tags::PATIENT_ID, VR::LO, "PHI-ID-998877"),
    (tags::ISSUER_OF_PATIENT_ID, VR::LO, "HOSPITAL-A"),
    // Other Patient IDs: retired, still in Table E.1-1.
    (Tag(0x0010, 0x1000), VR::LO, "OTHER-ID-445566"),
    (tags::PATIENT_ADDRESS, VR::LO, "17 Rue Imaginaire, Lyon"),
    (tags::PATIENT_TELEPHONE_NUMBERS, VR::SH, "+33 4 55 66 77 88"),
    (
        tags::INSTITUTION_NAME,
        VR::LO,
        "Hopital Fictif Saint-Planted",
    ),
    (tags::INSTITUTION_ADDRESS, VR::ST, "Avenue du Faux 42, Lyon"),
    (
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        "ReferrerPlanted^Anna",
    ),
    (
        tags::PERFORMING_PHYSICIAN_NAME,
        VR::PN,
        "PerformerPlanted^Bob",
    ),
    (tags::OPERATORS_NAME, VR::PN, "OperatorPlanted^Carl"),
    (tags::ACCESSION_NUMBER, VR::SH, "ACC-PLANTED-77"),
    (tags::STATION_NAME, VR::SH, "STATION-PLANTED"),
    (tags::DEVICE_SERIAL_NUMBER, VR::LO, "SERIAL-PLANTED-0099"),
    (tags::PATIENT_BIRTH_DATE, VR::DA, "19380412"),
    (tags::STUDY_DATE, VR::DA, "20200229"),
    (tags::SERIES_DATE, VR::DA, "20200301"),
    (
        tags::ACQUISITION_DATE_TIME,
        VR::DT,
        "20200229113000.25+0100",
    ),
    (tags::PATIENT_AGE, VR::AS, "081Y"),
    (
        tags::IMAGE_COMMENTS,
        VR::LT,
        "QuentinPlanted ZetaPlanted called from +33455667788",
    ),
    (
        tags::PATIENT_COMMENTS,
        VR::LT,
        "ZetaPlanted lives at 17 Rue Imaginaire",
    ),
    (
        tags::ADDITIONAL_PATIENT_HISTORY,
        VR::LT,
        "History of QuentinPlanted",
    ),
    // An unknown public element (in neither the table nor the dictionary).
    (Tag(0x0042, 0x9999), VR::LO, "UNKNOWN-PLANTED-VALUE"),
];

fn plant(mut obj: DefaultDicomObject) -> DefaultDicomObject {
    for (tag, vr, value) in TOP_LEVEL {
        obj.put(el(*tag, *vr, value));
    }
    // A private block with a plain element and a private sequence.
    obj.put(el(Tag(0x0029, 0x0010), VR::LO, "PLANTED CREATOR"));
    obj.put(el(Tag(0x0029, 0x1001), VR::LO, "PRIV-SECRET-ZETA"));
    let nested_priv = InMemDicomObject::from_element_iter([
        el(Tag(0x0029, 0x0010), VR::LO, "PLANTED CREATOR"),
        el(Tag(0x0029, 0x1002), VR::LO, "NESTED-PRIV-SECRET"),
    ]);
    obj.put(DataElement::new(
        Tag(0x0029, 0x1003),
        VR::SQ,
        DataSetSequence::new(vec![nested_priv], Length::UNDEFINED),
    ));
    // A nested public sequence two levels deep.
    let scheduled = InMemDicomObject::from_element_iter([el(
        tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME,
        VR::PN,
        "SchedPhysPlanted^Dora",
    )]);
    let request = InMemDicomObject::from_element_iter([
        el(tags::REQUESTED_PROCEDURE_ID, VR::SH, "REQ-PLANTED-5544"),
        el(tags::PATIENT_NAME, VR::PN, "ZetaPlanted^QuentinPlanted"),
        DataElement::new(
            tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE,
            VR::SQ,
            DataSetSequence::new(vec![scheduled], Length::UNDEFINED),
        ),
    ]);
    obj.put(DataElement::new(
        tags::REQUEST_ATTRIBUTES_SEQUENCE,
        VR::SQ,
        DataSetSequence::new(vec![request], Length::UNDEFINED),
    ));
    obj
}

fn source() -> DefaultDicomObject {
    let bytes = std::fs::read(data_dir().join("dicom/mr/MR_small.dcm")).unwrap();
    plant(parse(&bytes).unwrap())
}

#[test]
fn no_planted_value_survives_and_markers_are_truthful() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime(tmp.path(), "");
    let input = source();
    let mut in_bytes = Vec::new();
    input.write_all(&mut in_bytes).unwrap();
    // The scanner can fail: every planted value is found in the input.
    let in_text = all_text(&input.clone().into_inner()).to_uppercase();
    for p in PLANTED {
        assert!(
            survives(p, &in_bytes, &String::from_utf8_lossy(&in_bytes))
                || in_text.contains(&p.to_uppercase()),
            "scanner misses planted {p} in the input"
        );
    }
    let orig_sop = deidgate::dicom::text(&input, tags::SOP_INSTANCE_UID);
    let d = rt.deid.deidentify(input, &[]).unwrap();
    let mut out = Vec::new();
    d.object.write_all(&mut out).unwrap();
    let out_text = all_text(&parse(&out).unwrap().into_inner()).to_uppercase();
    let out_upper = String::from_utf8_lossy(&out).to_uppercase();
    for p in PLANTED {
        let p = p.to_uppercase();
        assert!(
            !out_upper.contains(&p) && !out_text.contains(&p),
            "planted {p} survived"
        );
    }
    assert!(
        !out_upper.contains(&orig_sop.to_uppercase()),
        "original SOP Instance UID survived"
    );
    let o = d.object;
    let t = |tag| deidgate::dicom::text(&o, tag);
    // Pseudonyms and markers.
    assert_eq!(t(tags::PATIENT_ID), d.patient_pseudonym);
    assert_eq!(t(tags::PATIENT_ID).len(), 16);
    assert!(t(tags::PATIENT_NAME).starts_with(&d.patient_pseudonym));
    assert_eq!(t(tags::ACCESSION_NUMBER).len(), 16);
    assert_eq!(t(tags::PATIENT_IDENTITY_REMOVED), "YES");
    assert_eq!(
        t(tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED),
        "MODIFIED"
    );
    let codes: Vec<String> = o
        .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .iter()
        .map(|i| deidgate::dicom::text(i, tags::CODE_VALUE))
        .collect();
    assert_eq!(
        codes,
        ["113100", "113107", "113108"],
        "exactly the applied options, no pixel claim"
    );
    // New SOP Instance UID in both the data set and the file meta.
    let sop = t(tags::SOP_INSTANCE_UID);
    assert!(sop.starts_with("2.25."));
    assert_eq!(
        o.meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0'),
        sop
    );
    assert_eq!(
        o.meta().transfer_syntax().trim_end_matches('\0'),
        "1.2.840.10008.1.2.1"
    );
    // Dates move by one per-patient shift; the DT keeps its time and offset.
    let study = chrono::NaiveDate::parse_from_str(&t(tags::STUDY_DATE), "%Y%m%d").unwrap();
    let series = chrono::NaiveDate::parse_from_str(&t(tags::SERIES_DATE), "%Y%m%d").unwrap();
    let orig_study = chrono::NaiveDate::from_ymd_opt(2020, 2, 29).unwrap();
    let shift = (study - orig_study).num_days();
    assert!((-3650..=-365).contains(&shift), "shift {shift}");
    assert_eq!((series - study).num_days(), 1, "intervals are kept");
    let dt = t(tags::ACQUISITION_DATE_TIME);
    assert!(dt.ends_with("113000.25+0100"), "{dt}");
    assert_eq!(&dt[..8], &t(tags::STUDY_DATE));
    // Birth date shifted with the same offset; age kept (81 < 90).
    let birth = chrono::NaiveDate::parse_from_str(&t(tags::PATIENT_BIRTH_DATE), "%Y%m%d");
    assert!(
        birth.is_err() || t(tags::PATIENT_BIRTH_DATE).is_empty(),
        "Basic Profile empties the birth date"
    );
    assert_eq!(t(tags::PATIENT_AGE), "081Y");
    // The unknown public element was removed and counted; private blocks gone.
    assert_eq!(d.report.unknown_removed.get(&(0x0042, 0x9999)), Some(&1));
    assert!(o.get(Tag(0x0029, 0x0010)).is_none() && o.get(Tag(0x0029, 0x1001)).is_none());
    // The key store can reverse the pseudonym.
    let rec = rt.store.get_patient(&d.patient_pseudonym).unwrap().unwrap();
    assert_eq!(rec.patient_id, "PHI-ID-998877");
    assert_eq!(rec.issuer.as_deref(), Some("HOSPITAL-A"));
    assert_eq!(
        rt.store.get_uid(&sop).unwrap().as_deref(),
        Some(orig_sop.as_str())
    );
    // The output is valid: dciodvfy adds no error to the planted input.
    let dir = tmp.path();
    std::fs::write(dir.join("in.dcm"), &in_bytes).unwrap();
    std::fs::write(dir.join("out.dcm"), &out).unwrap();
    let before = dciodvfy_errors(&dir.join("in.dcm"));
    let new: Vec<_> = dciodvfy_errors(&dir.join("out.dcm"))
        .into_iter()
        .filter(|e| !before.contains(e))
        .collect();
    assert!(new.is_empty(), "new dciodvfy errors: {new:#?}");
    assert!(dcmdump(&dir.join("out.dcm")).0);
}

#[test]
fn same_secret_same_output_other_secret_other_pseudonyms() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let rt_a = runtime(a.path(), "");
    let run = |rt: &deidgate::runtime::Runtime| {
        let d = rt.deid.deidentify(source(), &[]).unwrap();
        let mut v = Vec::new();
        d.object.write_all(&mut v).unwrap();
        (v, d.patient_pseudonym, d.sop_instance_uid)
    };
    let (x1, p1, s1) = run(&rt_a);
    let (x2, p2, s2) = run(&rt_a);
    assert_eq!(
        x1, x2,
        "byte-identical output for the same input and secret"
    );
    assert_eq!((p1.clone(), s1.clone()), (p2, s2));
    // A restart with the same secrets file gives the same result.
    drop(rt_a);
    let rt_a2 = runtime(a.path(), "");
    assert_eq!(run(&rt_a2).0, x1);
    let rt_b = runtime(b.path(), "");
    let (y, pb, sb) = run(&rt_b);
    assert_ne!(p1, pb);
    assert_ne!(s1, sb);
    assert_ne!(x1, y);
}

#[test]
fn ages_over_89_are_aggregated_and_birth_date_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime(
        tmp.path(),
        "[deid.options]\nretain_longitudinal_modified_dates = true\n[deid.overrides]\nPatientBirthDate = \"keep\"\n",
    );
    let mut obj = source();
    obj.put(el(tags::PATIENT_AGE, VR::AS, "093Y"));
    obj.put(el(tags::PATIENT_BIRTH_DATE, VR::DA, "19270110"));
    let d = rt.deid.deidentify(obj, &[]).unwrap();
    let t = |tag| deidgate::dicom::text(&d.object, tag);
    assert_eq!(t(tags::PATIENT_AGE), "090Y");
    assert_eq!(t(tags::PATIENT_BIRTH_DATE), "");
}

#[test]
fn options_and_overrides_change_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime(
        tmp.path(),
        "[deid.options]\nretain_uids = true\nretain_institution_identity = true\nclean_descriptors = true\n\
         [deid.overrides]\nStationName = { replace = \"SCANNER-1\" }\n",
    );
    let input = source();
    let orig_sop = deidgate::dicom::text(&input, tags::SOP_INSTANCE_UID);
    let d = rt.deid.deidentify(input, &[]).unwrap();
    let t = |tag| deidgate::dicom::text(&d.object, tag);
    assert_eq!(t(tags::SOP_INSTANCE_UID), orig_sop, "Retain UIDs");
    assert_eq!(
        t(tags::INSTITUTION_NAME),
        "Hopital Fictif Saint-Planted",
        "Retain Institution Identity"
    );
    assert_eq!(t(tags::STATION_NAME), "SCANNER-1", "override");
    // Clean Descriptors keeps the text but scrubs what identifies.
    let c = t(tags::IMAGE_COMMENTS);
    assert!(c.contains("called from"), "{c}");
    assert!(
        !c.to_uppercase().contains("QUENTINPLANTED") && !c.contains("33455667788"),
        "{c}"
    );
    let codes: Vec<String> = d
        .object
        .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .iter()
        .map(|i| deidgate::dicom::text(i, tags::CODE_VALUE))
        .collect();
    assert_eq!(
        codes,
        ["113100", "113105", "113107", "113108", "113110", "113112"]
    );
}
