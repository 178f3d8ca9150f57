//! Every DICOM file in ../shared/data goes through the engine. Each output
//! must be readable by dcmdump, add no dciodvfy error, and contain no original
//! instance UID, PatientID or patient name; what cannot be done safely must be
//! in quarantine with a reason.

mod common;

use common::*;
use deidgate::dicom::parse;
use deidgate::pipeline::instance::{FileOutcome, Stage};
use deidgate::pipeline::quarantine::Quarantine;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use std::collections::BTreeMap;

/// UIDs the Basic Profile replaces (U in Table E.1-1) must not survive.
fn is_instance_uid_tag(p: &deidgate::deid::Profile, tag: Tag, vr: VR) -> bool {
    vr == VR::UI
        && matches!(
            p.table_action(tag),
            Some((_, deidgate::deid::action::Action::ReplaceUid))
        )
}

/// The chest radiographs of the corpus (CR/DX with a chest body part): the
/// chest route's files. Other CR/DX files (RG3_J2KI, an extremity; the
/// DICOMDIR's cervical spines) are not chest and pass untouched; the chest
/// CRs among the charset samples have no Pixel Data and pass too.
const CHEST_RADIOGRAPHS: [&str; 4] = [
    "dicom/cr_dx/RG1_J2KI.dcm",
    "dicom/cr_dx/RG1_J2KR.dcm",
    "dicom/cr_dx/RG1_UNCR.dcm",
    "dicom/cr_dx/cat.dcm",
];

/// `input`, or a copy of it inflated by dcmconv when its data set is
/// deflated (dciodvfy stops at the first deflated byte).
fn readable_by_dciodvfy(input: &std::path::Path, dir: &std::path::Path) -> std::path::PathBuf {
    let deflated = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(input)
        .map(|o| o.meta().transfer_syntax().trim_end_matches('\0') == "1.2.840.10008.1.2.1.99")
        .unwrap_or(false);
    if !deflated {
        return input.to_path_buf();
    }
    let out = dir.with_extension("inflated.dcm");
    let ok = std::process::Command::new(tool("dcmconv"))
        .args(["+te"])
        .arg(input)
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "dcmconv could not inflate {}", input.display());
    out
}

#[test]
fn every_file_is_deidentified_or_quarantined_with_a_reason() {
    let data = data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime(&tmp.path().join("data"), "");
    let out_root = tmp.path().join("out");
    let q = Quarantine::new(rt.quarantine_dir());
    let mut inputs = files_under(&data.join("dicom"));
    inputs.extend(files_under(&data.join("derived")));
    let mut failures: Vec<String> = Vec::new();
    let mut replaced: Vec<String> = Vec::new();
    let mut searched: Vec<String> = Vec::new();
    let mut written = 0;
    let mut quarantined = BTreeMap::new();
    let mut scanned_ids = 0usize;
    // Head MR goes through the MRI route as whole series, as in batch mode.
    let (series, rest) = deidgate::pipeline::series::batch::partition(&rt, inputs);
    let mut outcomes: Vec<(std::path::PathBuf, FileOutcome)> = Vec::new();
    for files in series.values() {
        let done =
            deidgate::pipeline::series::batch::run_series(&rt, files, &out_root, &q, &rt.claims)
                .unwrap_or_else(|e| panic!("head MR series: {e:#}"));
        outcomes.extend(done.into_iter().map(|(n, o)| (files[n].clone(), o)));
    }
    // Lazily, so each output is checked before a later input with the same
    // SOP Instance UID (the transfer-syntax variants) overwrites it.
    let singles = rest.into_iter().map(|input| {
        let name = input.strip_prefix(&data).unwrap().display().to_string();
        let bytes = std::fs::read(&input).unwrap();
        let outcome = Stage {
            deid: &rt.deid,
            filter: &rt.config.filter,
            routes: &rt.routes,
            out_root: &out_root,
            quarantine: &q,
            durable: false,
            claims: &rt.claims,
        }
        .process(&bytes, &name)
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        (input, outcome)
    });
    for (input, outcome) in outcomes.into_iter().chain(singles) {
        let input = &input;
        let name = input.strip_prefix(&data).unwrap().display().to_string();
        let bytes = std::fs::read(input).unwrap();
        let path = match outcome {
            FileOutcome::Written { path, .. } => path,
            FileOutcome::Quarantined { id, reason } => {
                let dir = q.dir().join(&id);
                assert!(
                    dir.join("object.dcm").exists() && dir.join("reason.txt").exists(),
                    "{name}"
                );
                quarantined.insert(name, reason);
                continue;
            }
        };
        written += 1;
        // 1. dcmdump reads it.
        let (ok, dump) = dcmdump(&path);
        if !ok {
            failures.push(format!(
                "{name}: dcmdump failed:\n{}",
                dump.lines()
                    .filter(|l| l.contains("E:"))
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        // 2. dciodvfy reports no new error. It cannot read a deflated data
        //    set, so a deflated file is inflated by dcmconv first.
        let before = dciodvfy_errors(&readable_by_dciodvfy(input, &tmp.path().join("in")));
        let after = dciodvfy_errors(&readable_by_dciodvfy(&path, &tmp.path().join("out")));
        let new: Vec<&String> = after.iter().filter(|e| !before.contains(e)).collect();
        if !new.is_empty() {
            failures.push(format!("{name}: new dciodvfy errors: {new:#?}"));
        }
        // 3. Pixels and transfer syntax untouched, unless a pixel route
        //    replaced faces (and says so with code 113102) or searched the
        //    pixels for burned-in text (code 113101, BurnedInAnnotation NO).
        let original_file = parse(&bytes).unwrap();
        let output_file = parse(&std::fs::read(&path).unwrap()).unwrap();
        let codes: Vec<String> = output_file
            .element(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
            .ok()
            .and_then(|e| e.items().map(|i| i.to_vec()))
            .unwrap_or_default()
            .iter()
            .map(|i| deidgate::dicom::text(i, tags::CODE_VALUE))
            .collect();
        let faces_replaced = codes.iter().any(|c| c == "113102");
        let text_searched = codes.iter().any(|c| c == "113101");
        if faces_replaced {
            replaced.push(name.clone());
        }
        if text_searched {
            searched.push(name.clone());
            if deidgate::dicom::text(&output_file, tags::BURNED_IN_ANNOTATION) != "NO" {
                failures.push(format!(
                    "{name}: text searched but BurnedInAnnotation is not NO"
                ));
            }
        }
        let pixels_cleaned = faces_replaced || text_searched;
        if !pixels_cleaned
            && original_file.meta().transfer_syntax() != output_file.meta().transfer_syntax()
        {
            failures.push(format!("{name}: transfer syntax changed"));
        }
        let pixels = |o: &dicom_object::DefaultDicomObject| {
            o.get(Tag(0x7FE0, 0x0010)).map(|e| match e.value() {
                dicom_core::value::Value::PixelSequence(s) => s.fragments().concat(),
                v => v.to_bytes().map(|b| b.to_vec()).unwrap_or_default(),
            })
        };
        if !pixels_cleaned && pixels(&original_file) != pixels(&output_file) {
            failures.push(format!("{name}: pixel data changed"));
        }
        // 4. No original instance UID, PatientID or name in the output.
        let original = original_file.into_inner();
        let profile = rt.deid.profile();
        let mut needles = values_of(&original, &|t, vr| is_instance_uid_tag(profile, t, vr));
        needles.extend(values_of(&original, &|t, _| {
            t == Tag(0x0010, 0x0020) || t == Tag(0x0010, 0x0010)
        }));
        needles.retain(|n| !n.starts_with("1.2.840.10008."));
        needles.sort();
        needles.dedup();
        let out_bytes = scannable_bytes(&path);
        let out_text = all_text(&parse(&std::fs::read(&path).unwrap()).unwrap().into_inner());
        for n in &needles {
            scanned_ids += 1;
            if survives(n, &out_bytes, &out_text) {
                failures.push(format!(
                    "{name}: original identifier survives (length {})",
                    n.len()
                ));
            }
        }
    }
    eprintln!(
        "{written} written, {} quarantined, {scanned_ids} identifiers scanned",
        quarantined.len()
    );
    for (n, r) in &quarantined {
        eprintln!("  quarantined {n}: {r}");
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(written >= 100, "only {written} files written");
    // The photo route replaced the faces of exactly the two VL photographs;
    // the chest route deformed exactly the chest radiographs when its
    // weights are installed (models/chest), and quarantined them otherwise.
    let chest_loaded = rt.routes.status("chest").unwrap().loaded;
    let mut want_replaced = vec![
        "derived/vl_photo_face_jpeg.dcm",
        "derived/vl_photo_face_rgb.dcm",
    ];
    if chest_loaded {
        want_replaced.extend(CHEST_RADIOGRAPHS);
    }
    // The 88-slice head series: every slice written by the MRI route, with
    // a remodeled face (113102).
    let head: Vec<String> = (1..=88)
        .map(|i| format!("derived/head_mr_t1_sag_lowres/IM{i:04}.dcm"))
        .collect();
    want_replaced.extend(head.iter().map(String::as_str));
    want_replaced.sort();
    replaced.sort();
    assert_eq!(replaced, want_replaced);
    for n in CHEST_RADIOGRAPHS {
        let reason = quarantined.get(n);
        if chest_loaded {
            assert!(reason.is_none(), "{n} quarantined: {reason:?}");
        } else {
            assert!(
                reason.is_some_and(|r| r.contains("no trained weights")),
                "{n} not quarantined for missing chest weights: {reason:?}"
            );
        }
    }
    // Every ultrasound image was searched for burned-in text and written,
    // whatever its BurnedInAnnotation said (GREYSCALE_IMAGE says YES, one
    // JPEG lossless file says NO although its pixels hold text).
    let us: Vec<String> = files_under(&data.join("dicom/us"))
        .iter()
        .map(|p| p.strip_prefix(&data).unwrap().display().to_string())
        .collect();
    for n in &us {
        assert!(searched.contains(n), "{n} was not searched for text");
    }
    // Only these files may be quarantined, each for its known reason.
    let mut expected = vec![
        ("dicom/photo_sc/OT-PAL-8-face.dcm", "cannot parse"), // no Part 10 header
        ("dicom/mr/philips_mprage.dcm.gz", "cannot parse"),   // gzip, not DICOM
        ("dicom/dicomdir/DICOMDIR", "DICOMDIR"),              // media directory
        ("dicom/charset/chrSQEncoding.dcm", "no SOP Class UID"), // charset fragment, not an instance
        ("dicom/charset/chrSQEncoding1.dcm", "no SOP Class UID"),
        // A 12-bit JPEG extended image the decoder of this build cannot
        // read: the text route cannot search it. (JPEG-LS is decoded by
        // CharLS and searched like the rest.)
        (
            "dicom/ts/JPGExtended.dcm",
            "text route: cannot decode the pixel data",
        ),
        (
            "dicom/ts/SC_rgb_rle_32bit_2frame.dcm",
            "cannot decode the pixel data",
        ),
        ("dicom/ts/SC_rgb_rle_16bit_2frame.dcm", "only single-frame"),
        // A face in palette colour: no palette path in the photo route yet.
        ("derived/OT-PAL-8-face_part10.dcm", "only 8-bit colour"),
        // Native YBR_FULL_422 is not upsampled by the decoder.
        (
            "dicom/ts/SC_ybr_full_422_uncompressed.dcm",
            "shorter than the image",
        ),
        // Head MR (issue 6): whole series through the MRI route. One
        // Enhanced MR instance of 10 frames (five transfer syntaxes of the
        // same instance) carries no plane position at all; a single mosaic
        // slice is too few.
        (
            "dicom/mr/emri_small.dcm",
            "head MR series: geometry: no usable ImagePositionPatient",
        ),
        (
            "dicom/mr/emri_small_RLE.dcm",
            "head MR series: geometry: no usable ImagePositionPatient",
        ),
        (
            "dicom/mr/emri_small_big_endian.dcm",
            "head MR series: geometry: no usable ImagePositionPatient",
        ),
        (
            "dicom/mr/emri_small_jpeg_2k_lossless.dcm",
            "head MR series: geometry: no usable ImagePositionPatient",
        ),
        (
            "dicom/mr/emri_small_jpeg_ls_lossless.dcm",
            "head MR series: geometry: no usable ImagePositionPatient",
        ),
        (
            "dicom/mr/siemens_mosaic_0.dcm",
            "head MR series: too few slices: 1",
        ),
        // The brain MRA study on the DICOMDIR media: 7 projections and
        // 3-plane localizers (series of 1 to 7 images) are head MR too.
        ("dicom/dicomdir/98892003/", "head MR series: too few slices"),
    ];
    if !chest_loaded {
        expected.extend(CHEST_RADIOGRAPHS.map(|n| (n, "no trained weights")));
    }
    for (n, r) in &quarantined {
        let ok = expected.iter().any(|(en, er)| {
            (en == n || (en.ends_with('/') && n.starts_with(en))) && r.contains(er)
        });
        assert!(ok, "unexpected quarantine of {n}: {r}");
    }
}
