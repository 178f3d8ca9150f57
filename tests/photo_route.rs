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
            deidgate::dicom::text(&o, tags::PHOTOMETRIC_INTERPRETATION),
            "RGB"
        );
        assert!(dcmdump(out).0);
        if deidgate::dicom::text(&o, tags::ROWS) == "512" && out_matches_rgb(&o, &original) {
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
    let uid = deidgate::dicom::text(
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
fn a_graphic_annotation_over_the_face_is_kept_bit_identical() {
    use deidgate::models::photo::{replace_faces, Mtcnn, ReplaceConfig, RgbImage};
    use dicom_core::value::{DataSetSequence, PrimitiveValue};
    use dicom_core::{DataElement, VR};
    use dicom_object::InMemDicomObject;

    let tmp = tempfile::tempdir().unwrap();
    let source = data_dir().join("derived/vl_photo_face_rgb.dcm");
    let mut obj = dicom_object::open_file(&source).unwrap();
    let original = pixel_bytes(&obj);
    let text = |t| deidgate::dicom::text(&obj, t).parse::<u32>().unwrap();
    let (w, h) = (text(tags::COLUMNS), text(tags::ROWS));
    let img = RgbImage::new(w, h, original[..(w * h * 3) as usize].to_vec()).unwrap();
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/photo/mtcnn.safetensors");
    let faces = Mtcnn::load(&weights, &candle_core::Device::Cpu)
        .unwrap()
        .detect(&img)
        .unwrap();
    assert_eq!(faces.len(), 1);
    let [fx0, fy0, fx1, fy1] = faces[0].bbox;
    let (fw, fh) = (fx1 - fx0, fy1 - fy0);
    // A lesion outlined on the left cheek, in the middle of the face:
    // a closed polyline in PIXEL units (column\row pairs).
    let (lx0, ly0) = ((fx0 + 0.25 * fw).round(), (fy0 + 0.45 * fh).round());
    let (lx1, ly1) = ((fx0 + 0.45 * fw).round(), (fy0 + 0.65 * fh).round());
    let graphic = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::GRAPHIC_ANNOTATION_UNITS,
            VR::CS,
            PrimitiveValue::from("PIXEL"),
        ),
        DataElement::new(tags::GRAPHIC_DIMENSIONS, VR::US, PrimitiveValue::from(2u16)),
        DataElement::new(
            tags::NUMBER_OF_GRAPHIC_POINTS,
            VR::US,
            PrimitiveValue::from(5u16),
        ),
        DataElement::new(
            tags::GRAPHIC_DATA,
            VR::FL,
            PrimitiveValue::F32(
                [lx0, ly0, lx1, ly0, lx1, ly1, lx0, ly1, lx0, ly0]
                    .into_iter()
                    .collect(),
            ),
        ),
        DataElement::new(tags::GRAPHIC_TYPE, VR::CS, PrimitiveValue::from("POLYLINE")),
        DataElement::new(tags::GRAPHIC_FILLED, VR::CS, PrimitiveValue::from("N")),
    ]);
    let annotation = InMemDicomObject::from_element_iter([
        DataElement::new(tags::GRAPHIC_LAYER, VR::CS, PrimitiveValue::from("LESION")),
        DataElement::new(
            tags::GRAPHIC_OBJECT_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![graphic]),
        ),
    ]);
    obj.put(DataElement::new(
        tags::GRAPHIC_ANNOTATION_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![annotation]),
    ));
    let annotated = tmp.path().join("annotated.dcm");
    obj.write_to_file(&annotated).unwrap();

    let in_lesion = |x: u32, y: u32| {
        (lx0 as u32..lx1 as u32).contains(&x) && (ly0 as u32..ly1 as u32).contains(&y)
    };
    // Without the annotation those pixels would be replaced.
    let mut plain = img.clone();
    replace_faces(&mut plain, &faces, &ReplaceConfig::default());
    let changed = |a: &[u8], b: &[u8], pick: &dyn Fn(u32, u32) -> bool| {
        let (mut n, mut diff) = (0, 0);
        for y in 0..h {
            for x in 0..w {
                if pick(x, y) {
                    let i = ((y * w + x) * 3) as usize;
                    n += 1;
                    diff += (a[i..i + 3] != b[i..i + 3]) as usize;
                }
            }
        }
        (diff, n)
    };
    let (d, n) = changed(&original, &plain.data, &in_lesion);
    assert!(
        d > n * 9 / 10,
        "{d} of {n} lesion pixels replaced without the keep"
    );

    let g = Gateway::start(tmp.path(), "");
    send(&g, tmp.path(), &[annotated]);
    let outs = outputs(&g);
    assert_eq!(outs.len(), 1, "{}", g.log());
    let out = dicom_object::open_file(&outs[0]).unwrap();
    assert!(method_codes(&out).contains(&"113102".to_string()));
    assert!(g.log().contains("annotation_boxes=1"), "{}", g.log());
    let de = pixel_bytes(&out);
    let (d, n) = changed(&original, &de, &in_lesion);
    assert_eq!(d, 0, "{d} of {n} outlined pixels changed");
    assert!(n > 200, "the outline covers {n} pixels");
    // The rest of the face's centre (outside the outline and its 2 px
    // margin) is replaced.
    let rest_of_face = |x: u32, y: u32| {
        let (xf, yf) = (x as f32, y as f32);
        let inner = xf >= fx0 + 0.2 * fw
            && xf < fx1 - 0.2 * fw
            && yf >= fy0 + 0.2 * fh
            && yf < fy1 - 0.2 * fh;
        let near = xf >= lx0 - 3.0 && xf < lx1 + 3.0 && yf >= ly0 - 3.0 && yf < ly1 + 3.0;
        inner && !near
    };
    let (d, n) = changed(&original, &de, &rest_of_face);
    assert!(d > n * 9 / 10, "only {d} of {n} other face pixels changed");
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
