//! The photo route through the gateway: faces in VL photographs sent by
//! storescu are replaced, marked with 113102, valid for dciodvfy, and an
//! audited `reid photo` restores the original pixels exactly.

mod common;

use common::gateway::*;
use common::*;
use dicom_dictionary_std::tags;
use std::path::{Path, PathBuf};

#[test]
fn faces_in_photographs_are_replaced_and_restorable_with_an_audited_lookup() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start(tmp.path(), "");
    let derived = data_dir().join("derived");
    let rgb = derived.join("vl_photo_face_rgb.dcm");
    let inputs = vec![rgb.clone(), derived.join("vl_photo_face_jpeg.dcm")];
    send(&g, tmp.path(), &inputs);
    let outs = outputs(&g);
    assert_eq!(outs.len(), 2, "{}", g.log());
    let original = dicom_object::open_file(&rgb).unwrap();
    let mut rgb_out = None;
    for out in &outs {
        let o = dicom_object::open_file(out).unwrap();
        assert!(
            method_codes(&o).contains(&"113102".to_string()),
            "{}",
            out.display()
        );
        assert_eq!(
            o.meta().transfer_syntax().trim_end_matches('\0'),
            "1.2.840.10008.1.2.1"
        );
        assert_eq!(
            deidgate::deid::engine::text(&o, tags::PHOTOMETRIC_INTERPRETATION),
            "RGB"
        );
        assert!(dcmdump(out).0);
        if deidgate::deid::engine::text(&o, tags::ROWS) == "512" && out_matches_rgb(&o, &original) {
            rgb_out = Some(out.clone());
        }
    }
    // dciodvfy finds nothing new in the output of the uncompressed photo.
    let rgb_out = rgb_out.expect("the RGB photo's output");
    let before: std::collections::BTreeSet<_> = dciodvfy_errors(&rgb).into_iter().collect();
    let new: Vec<_> = dciodvfy_errors(&rgb_out)
        .into_iter()
        .filter(|e| !before.contains(e))
        .collect();
    assert!(new.is_empty(), "new dciodvfy errors: {new:?}");
    // A real part of the image changed, most of it did not.
    let (a, b) = (
        pixel_bytes(&original),
        pixel_bytes(&dicom_object::open_file(&rgb_out).unwrap()),
    );
    assert_eq!(a.len(), b.len());
    let changed = a.chunks(3).zip(b.chunks(3)).filter(|(x, y)| x != y).count();
    let total = a.len() / 3;
    assert!(
        changed > total / 50 && changed < total / 2,
        "{changed} of {total} pixels changed"
    );

    // Restore: needs a reason, is audited, gives the original bytes back.
    let uid = deidgate::deid::engine::text(
        &dicom_object::open_file(&rgb_out).unwrap(),
        tags::SOP_INSTANCE_UID,
    );
    let restored = tmp.path().join("restored.dcm");
    let args = |reason: &'static str| {
        vec![
            "reid".to_string(),
            "photo".into(),
            uid.clone(),
            "--input".into(),
            rgb_out.display().to_string(),
            "--output".into(),
            restored.display().to_string(),
            "--reason".into(),
            reason.into(),
        ]
    };
    let run = |a: Vec<String>| cli(&g.config, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(args(" "));
    assert!(!o.status.success());
    assert!(!restored.exists());
    let o = run(args("dermatology follow-up of the original photograph"));
    assert!(o.status.success(), "{}", text(&o));
    let back = dicom_object::open_file(&restored).unwrap();
    assert_eq!(
        pixel_bytes(&back),
        a,
        "restored pixels are the original ones"
    );
    let o = cli(&g.config, &["audit", "export"]);
    let log = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(log.contains("\"reid.photo\""), "{log}");
    assert!(log.contains(&uid));
}

/// Whether `out` is the de-identified copy of `original` (same geometry and
/// mostly the same pixels).
fn out_matches_rgb(
    out: &dicom_object::DefaultDicomObject,
    original: &dicom_object::DefaultDicomObject,
) -> bool {
    let (a, b) = (pixel_bytes(original), pixel_bytes(out));
    a.len() == b.len() && a.iter().zip(&b).filter(|(x, y)| x == y).count() > a.len() / 2
}

#[test]
fn without_weights_photographs_are_quarantined_not_passed() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        tmp.path(),
        "[photo]\nweights = \"/nonexistent/mtcnn.safetensors\"\n",
    );
    send(
        &g,
        tmp.path(),
        &[data_dir().join("derived/vl_photo_face_rgb.dcm")],
    );
    assert!(
        outputs(&g).is_empty(),
        "a photograph passed without its route"
    );
    let o = cli(&g.config, &["quarantine", "list"]);
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(list.contains("fetch-weights.sh"), "{list}");
    // The operator's status says the route is not loaded.
    assert!(g.log().contains("photo route unavailable"));
}

fn send(g: &Gateway, dir: &Path, inputs: &[PathBuf]) {
    send_all(g, dir, "CAMERA", inputs);
    poll("the spool to drain", g, || g.spool_drained());
}
