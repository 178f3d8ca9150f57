//! The head MR route through a running gateway, with DCMTK storescu: every
//! slice of each real head series comes back once, with its geometry and
//! bit depth, the posterior half of the head bit-identical, the face
//! changed and code 113102 set; a restart in the middle of a series loses
//! and doubles nothing; a series too short for the model is quarantined.
//!
//! The gateway runs the trained remodeler (models/mri, reface mode). The
//! checks hold for any model that changes only the face: changed voxels > 0,
//! all of them in the anterior half of the field of view (LPS y below its
//! middle), nothing else changed.

mod common;

use common::gateway::*;
use common::*;
use deidgate::dicom::text as tag_text;
use dicom_dictionary_std::tags;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MRI_TOML: &str = "[mri]\nquiet_secs = 3\n";

fn series_dirs() -> Vec<PathBuf> {
    let d = data_dir();
    let mut v: Vec<PathBuf> = ["HFS", "HFP", "HFDL", "HFDR"]
        .iter()
        .map(|s| d.join("mri/decubitus_dicom").join(s))
        .collect();
    v.push(d.join("derived/head_mr_t1_sag_lowres"));
    v
}

fn numbers(o: &dicom_object::DefaultDicomObject, t: dicom_core::Tag) -> Vec<f64> {
    tag_text(o, t)
        .split('\\')
        .map(|v| v.trim().parse().unwrap())
        .collect()
}

/// Patient y (LPS, anterior is negative) of pixel (column i, row j).
fn patient_y(o: &dicom_object::DefaultDicomObject, i: usize, j: usize) -> f64 {
    let (p, r, s) = (
        numbers(o, tags::IMAGE_POSITION_PATIENT),
        numbers(o, tags::IMAGE_ORIENTATION_PATIENT),
        numbers(o, tags::PIXEL_SPACING),
    );
    p[1] + r[1] * s[1] * i as f64 + r[4] * s[0] * j as f64
}

/// Output file name (pseudonymous SOP UID) -> input file.
fn by_output_name(g: &Gateway, inputs: &[PathBuf]) -> BTreeMap<String, PathBuf> {
    inputs
        .iter()
        .map(|f| {
            let name = expected_names(g, std::slice::from_ref(f));
            (name.into_iter().next().unwrap(), f.clone())
        })
        .collect()
}

/// Checks one series' outputs against its inputs; returns changed voxels.
fn check_series(g: &Gateway, inputs: &[PathBuf], outs: &[PathBuf]) -> usize {
    let map = by_output_name(g, inputs);
    let mine: Vec<&PathBuf> = outs
        .iter()
        .filter(|p| map.contains_key(&p.file_name().unwrap().to_string_lossy().to_string()))
        .collect();
    assert_eq!(mine.len(), inputs.len(), "every slice comes back once");
    // Middle of the field of view along y, over all slices' corners.
    let originals: Vec<_> = inputs
        .iter()
        .map(|f| dicom_object::open_file(f).unwrap())
        .collect();
    let ys: Vec<f64> = originals
        .iter()
        .flat_map(|o| {
            let (c, r) = (
                tag_text(o, tags::COLUMNS).parse::<usize>().unwrap(),
                tag_text(o, tags::ROWS).parse::<usize>().unwrap(),
            );
            [(0, 0), (c - 1, 0), (0, r - 1), (c - 1, r - 1)].map(|(i, j)| patient_y(o, i, j))
        })
        .collect();
    let mid_y = (ys.iter().cloned().fold(f64::MAX, f64::min)
        + ys.iter().cloned().fold(f64::MIN, f64::max))
        / 2.0;
    let mut series_uids = std::collections::BTreeSet::new();
    let mut changed = 0usize;
    for out in mine {
        let input = &map[&out.file_name().unwrap().to_string_lossy().to_string()];
        let (a, b) = (
            dicom_object::open_file(input).unwrap(),
            dicom_object::open_file(out).unwrap(),
        );
        series_uids.insert(tag_text(&b, tags::SERIES_INSTANCE_UID));
        for t in [
            tags::IMAGE_POSITION_PATIENT,
            tags::IMAGE_ORIENTATION_PATIENT,
            tags::PIXEL_SPACING,
            tags::SLICE_THICKNESS,
            tags::ROWS,
            tags::COLUMNS,
            tags::BITS_ALLOCATED,
            tags::BITS_STORED,
            tags::HIGH_BIT,
            tags::PIXEL_REPRESENTATION,
            tags::PHOTOMETRIC_INTERPRETATION,
        ] {
            assert_eq!(tag_text(&a, t), tag_text(&b, t), "{t} of {}", out.display());
        }
        assert!(method_codes(&b).contains(&"113102".to_string()));
        let method = tag_text(&b, tags::DEIDENTIFICATION_METHOD);
        assert!(method.contains("MR face reface"), "{method}");
        assert!(dcmdump(out).0, "{}", out.display());
        let (pa, pb) = (pixel_bytes(&a), pixel_bytes(&b));
        assert_eq!(pa.len(), pb.len());
        let cols: usize = tag_text(&a, tags::COLUMNS).parse().unwrap();
        for (n, (x, y)) in pa.chunks(2).zip(pb.chunks(2)).enumerate() {
            if x != y {
                changed += 1;
                let (i, j) = (n % cols, n / cols);
                assert!(
                    patient_y(&a, i, j) < mid_y,
                    "a posterior voxel changed in {} at ({i}, {j})",
                    out.display()
                );
            }
        }
    }
    assert_eq!(series_uids.len(), 1, "one output series");
    assert!(changed > 0, "the face region differs");
    changed
}

#[test]
fn head_series_come_back_remodeled_slice_by_slice() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start(tmp.path(), MRI_TOML);
    let series: Vec<Vec<PathBuf>> = series_dirs().iter().map(|d| files_under(d)).collect();
    let all: Vec<PathBuf> = series.iter().flatten().cloned().collect();
    assert_eq!(all.len(), 4 * 35 + 88);
    send(&g, tmp.path(), &all);
    let outs = wait_for_outputs(&g, &expected_names(&g, &all));
    assert_eq!(outs.len(), all.len(), "{}", g.log());
    for (dir, inputs) in series_dirs().iter().zip(&series) {
        let changed = check_series(&g, inputs, &outs);
        eprintln!(
            "{}: {} slices, {changed} voxels changed",
            dir.display(),
            inputs.len()
        );
    }
    assert!(dir_is_empty(&g.data.join("series/open")));
    assert!(dir_is_empty(&g.data.join("series/claimed")));
    assert!(dir_is_empty(&g.data.join("quarantine")));
}

#[test]
fn a_restart_in_the_middle_of_a_series_outputs_every_slice_once() {
    let tmp = tempfile::tempdir().unwrap();
    // A half series alone is too short: if it were processed on its own,
    // it would land in quarantine and the test would see it.
    let mut g = Gateway::start(tmp.path(), "[mri]\nquiet_secs = 10\nmin_slices = 20\n");
    let inputs = files_under(&data_dir().join("mri/decubitus_dicom/HFS"));
    let (first, second) = inputs.split_at(inputs.len() / 2);
    send(&g, tmp.path(), first);
    g.kill9();
    g.restart();
    send(&g, tmp.path(), second);
    let outs = wait_for_outputs(&g, &expected_names(&g, &inputs));
    assert_eq!(outs.len(), inputs.len());
    check_series(&g, &inputs, &outs);
    assert!(dir_is_empty(&g.data.join("quarantine")), "{}", g.log());
    assert!(dir_is_empty(&g.data.join("series/open")));
}

#[test]
fn a_series_too_short_for_the_model_is_quarantined_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start(tmp.path(), "[mri]\nquiet_secs = 1\n");
    let inputs: Vec<PathBuf> = files_under(&data_dir().join("mri/decubitus_dicom/HFP"))
        .into_iter()
        .take(5)
        .collect();
    send(&g, tmp.path(), &inputs);
    poll("the short series in quarantine", &g, || {
        quarantine_reasons(&g.data).len() == 5
    });
    for reason in quarantine_reasons(&g.data) {
        assert!(
            reason.contains("head MR series: too few slices: 5"),
            "{reason}"
        );
    }
    assert!(outputs(&g).is_empty());
}

#[test]
fn batch_mode_processes_head_series_as_series() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime(&tmp.path().join("data"), MRI_TOML);
    let out = tmp.path().join("out");
    let input = data_dir().join("derived/head_mr_t1_sag_lowres");
    let s = deidgate::pipeline::batch::run(&rt, &input, &out, 1).unwrap();
    assert_eq!(
        (s.files, s.written, s.quarantined),
        (88, 88, 0),
        "{:?}",
        s.reasons
    );
    // Without a model, the whole series is kept back with the reason.
    let rt = runtime(
        &tmp.path().join("data2"),
        "[mri]\nweights = \"/nonexistent/mri-model\"\n",
    );
    let s = deidgate::pipeline::batch::run(&rt, &input, &tmp.path().join("out2"), 1).unwrap();
    assert_eq!((s.written, s.quarantined), (0, 88));
    assert!(s.reasons[0].0.contains("MRI route"), "{:?}", s.reasons);
}

#[test]
fn a_slice_sent_again_under_a_new_uid_comes_back_remodeled() {
    // The same slice (position, echo) twice with two SOP Instance UIDs: the
    // volume holds it once, and both instances get the same face.
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime(&tmp.path().join("data"), "[mri]\nmodel = \"box\"\n");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let files = files_under(&data_dir().join("derived/head_mr_t1_sag_lowres"));
    for f in &files {
        std::fs::copy(f, input.join(f.file_name().unwrap())).unwrap();
    }
    let mut dup = dicom_object::open_file(&files[40]).unwrap();
    let first_uid = tag_text(&dup, tags::SOP_INSTANCE_UID);
    let uid = "1.2.826.0.1.3680043.9.7777.40";
    dup.put(dicom_core::DataElement::new(
        tags::SOP_INSTANCE_UID,
        dicom_core::VR::UI,
        dicom_core::value::PrimitiveValue::from(uid),
    ));
    dup.update_meta(|m| m.media_storage_sop_instance_uid = uid.to_string());
    dup.write_to_file(input.join("dup.dcm")).unwrap();
    let out = tmp.path().join("out");
    let s = deidgate::pipeline::batch::run(&rt, &input, &out, 1).unwrap();
    assert_eq!(
        (s.files, s.written, s.quarantined),
        (89, 89, 0),
        "{:?}",
        s.reasons
    );
    let output = |sop: &str| {
        let name = format!("{}.dcm", rt.deid.pseudonymizer().uid(sop));
        let p = files_under(&out)
            .into_iter()
            .find(|p| p.file_name().unwrap().to_string_lossy() == name)
            .expect("an output per instance");
        dicom_object::open_file(p).unwrap()
    };
    let (a, b) = (output(&first_uid), output(uid));
    assert_eq!(pixel_bytes(&a), pixel_bytes(&b));
    assert_ne!(
        pixel_bytes(&b),
        pixel_bytes(&dup),
        "the copy's face changed"
    );
}

/// A generator stand-in that gives the subject's own face back: the box
/// stand-in's region, the input values in it.
struct OwnFace;

impl deidgate::routes::mri::FaceModel for OwnFace {
    fn remodel(
        &self,
        vol: &deidgate::models::mri::Volume,
        mode: deidgate::models::mri::Mode,
    ) -> anyhow::Result<deidgate::models::mri::Remodeled> {
        let r = deidgate::routes::mri::box_model::BoxModel.remodel(vol, mode)?;
        Ok(deidgate::models::mri::Remodeled {
            data: vol.data.clone(),
            face: r.face,
            note: "own face".into(),
        })
    }
}

#[test]
fn generate_mode_refuses_a_face_too_close_to_the_subjects() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = "[mri]\nmode = \"generate\"\nmodel = \"box\"\n";
    let input = data_dir().join("derived/head_mr_t1_sag_lowres");
    let mut rt = runtime(&tmp.path().join("data"), toml);
    rt.routes
        .replace(Box::new(deidgate::routes::mri::MriRoute::with_model(
            &rt.config.mri,
            Box::new(OwnFace),
        )));
    let s = deidgate::pipeline::batch::run(&rt, &input, &tmp.path().join("out"), 1).unwrap();
    assert_eq!((s.written, s.quarantined), (0, 88), "{:?}", s.reasons);
    let reason = &s.reasons[0].0;
    assert!(
        reason.contains("generated face surface lies only 0.00 mm"),
        "{reason}"
    );
    // A face that moved (the box stand-in fills it) passes the same check.
    let rt = runtime(&tmp.path().join("data2"), toml);
    let s = deidgate::pipeline::batch::run(&rt, &input, &tmp.path().join("out2"), 1).unwrap();
    assert_eq!((s.written, s.quarantined), (88, 0), "{:?}", s.reasons);
}

fn send(g: &Gateway, dir: &Path, inputs: &[PathBuf]) {
    send_all(g, dir, "MRSCANNER", inputs);
}
