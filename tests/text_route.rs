//! The text route: burned-in text is found and filled in every frame before
//! anything leaves. The real ultrasound files of the shared data carry a
//! patient band, scanner labels and an institution name; they go through
//! `deidgate anonymize` and `deidgate serve` (to DCMTK storescp), and what
//! comes out is read back by programs nobody here wrote: dcmj2pnm renders
//! it, Tesseract tries to read the text, dciodvfy checks the IOD. The text
//! detector's weights come from `scripts/fetch-weights.sh` (the test
//! command runs it).

mod common;

use common::gateway::*;
use common::peers::*;
use common::*;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;
use std::path::{Path, PathBuf};
use std::process::Command;

fn us(name: &str) -> PathBuf {
    data_dir().join("dicom/us").join(name)
}

/// What Tesseract reads in `crop` (left, top, width, height) of frame
/// `frame` of `file`, rendered by dcmj2pnm (min-max window).
fn ocr(file: &Path, frame: u32, crop: (u32, u32, u32, u32), dir: &Path) -> String {
    let pnm = dir.join(format!(
        "ocr-{}-{frame}-{}-{}.pnm",
        file.file_name().unwrap().to_string_lossy(),
        crop.0,
        crop.1
    ));
    let (l, t, w, h) = crop;
    let o = Command::new(tool("dcmj2pnm"))
        .args(["+Wm", "+F", &(frame + 1).to_string(), "+C"])
        .args([l, t, w, h].map(|v| v.to_string()))
        .arg(file)
        .arg(&pnm)
        .output()
        .expect("run dcmj2pnm");
    assert!(
        o.status.success(),
        "dcmj2pnm {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(tool("tesseract"))
        .arg(&pnm)
        .args(["stdout", "--psm", "6"])
        .output()
        .expect("run tesseract");
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The tokens of `words` that Tesseract's text contains (case-blind).
fn legible(read: &str, words: &[&str]) -> Vec<String> {
    let read = read.to_ascii_uppercase();
    words
        .iter()
        .filter(|w| read.contains(&w.to_ascii_uppercase()))
        .map(|w| w.to_string())
        .collect()
}

/// Frame `f` of `obj` as decoded samples (any transfer syntax).
fn frame_bytes(obj: &DefaultDicomObject, f: u32) -> (usize, usize, usize, Vec<u8>) {
    use dicom_pixeldata::PixelDecoder;
    let d = obj.decode_pixel_data().expect("decodable");
    let px = d.samples_per_pixel() as usize * d.bits_allocated().div_ceil(8) as usize;
    (
        d.columns() as usize,
        d.rows() as usize,
        px,
        d.frame_data(f).unwrap().to_vec(),
    )
}

/// Share of pixels that differ, in the rectangle, between two frames.
fn changed(a: &(usize, usize, usize, Vec<u8>), b: &[u8], r: (usize, usize, usize, usize)) -> f64 {
    let (w, _, px, ref a) = *a;
    let (x0, y0, x1, y1) = r;
    let mut n = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            let at = (y * w + x) * px;
            n += usize::from(a[at..at + px] != b[at..at + px]);
        }
    }
    n as f64 / ((x1 - x0) * (y1 - y0)) as f64
}

/// The one output of `deidgate anonymize` on `input` with `toml`.
fn anonymize(dir: &Path, input: &Path, toml: &str) -> (Option<PathBuf>, String) {
    let run = anonymize_logged(dir, input, toml);
    (run.output, run.reasons)
}

/// Checks the text route's marks on an output.
fn assert_cleaned_marks(obj: &DefaultDicomObject, name: &str) {
    assert_eq!(
        deidgate::dicom::text(obj, tags::BURNED_IN_ANNOTATION),
        "NO",
        "{name}"
    );
    assert!(
        method_codes(obj).contains(&"113101".to_string()),
        "{name}: {:?}",
        method_codes(obj)
    );
}

/// A crop for dcmj2pnm (left, top, width, height).
type Crop = (u32, u32, u32, u32);
/// A pixel area (x0, y0, x1, y1).
type Area = (usize, usize, usize, usize);

#[test]
fn real_ultrasound_text_is_filled_and_the_image_kept() {
    let tmp = tempfile::tempdir().unwrap();
    // The institution's image again, JPEG-LS lossless as DCMTK writes it
    // (CharLS decodes it; before, it could only be quarantined).
    let jls = tmp.path().join("us1-jpeg-ls-input.dcm");
    let st = Command::new(tool("dcmcjpls"))
        .arg(us("US1_UNCR.dcm"))
        .arg(&jls)
        .status()
        .unwrap();
    assert!(st.success(), "dcmcjpls failed");
    let path = |name: &str| match name {
        "US1_JPEG-LS.dcm" => jls.clone(),
        _ => us(name),
    };
    // (file, a crop holding text, words in it, a crop of image content).
    let cases: [(&str, Crop, &[&str], Area); 4] = [
        // The patient band the flag admits to (BurnedInAnnotation YES).
        (
            "GREYSCALE_IMAGE.dcm",
            (0, 0, 1024, 24),
            &["PATIENT", "00079241539", "1951", "CCHS", "2017"],
            (200, 450, 800, 660),
        ),
        // The flag says NO; the scanner's labels are there anyway.
        (
            "JPGLosslessP14SV1_1s_1f_8b.dcm",
            (0, 20, 360, 100),
            &["Adult", "Echo", "Diam", "Index"],
            (300, 500, 700, 640),
        ),
        // No flag at all; the institution's name is on top.
        (
            "US1_UNCR.dcm",
            (0, 20, 640, 90),
            &["BAPTIST", "CINE", "MSCSKEL"],
            (120, 150, 300, 280),
        ),
        (
            "US1_JPEG-LS.dcm",
            (0, 20, 640, 90),
            &["BAPTIST", "CINE", "MSCSKEL"],
            (120, 150, 300, 280),
        ),
    ];
    for (name, crop, words, content) in cases {
        let input = path(name);
        let dir = tmp.path().join(name);
        let (out, reasons) = anonymize(&dir, &input, "");
        let out = out.unwrap_or_else(|| panic!("{name} quarantined: {reasons}"));
        let (a, b) = (
            dicom_object::open_file(&input).unwrap(),
            dicom_object::open_file(&out).unwrap(),
        );
        assert_cleaned_marks(&b, name);
        // Tesseract reads the words in the input (so the check can fail)
        // and none of them in the output.
        // (dcmj2pnm has no JPEG-LS decoder: the JPEG-LS case is read from
        // the file it was made from, losslessly.)
        let source = if name == "US1_JPEG-LS.dcm" {
            us("US1_UNCR.dcm")
        } else {
            input.clone()
        };
        let before = legible(&ocr(&source, 0, crop, &dir), words);
        assert!(
            !before.is_empty(),
            "{name}: Tesseract reads nothing in the input"
        );
        let after = legible(&ocr(&out, 0, crop, &dir), words);
        assert!(after.is_empty(), "{name}: still legible: {after:?}");
        // The ultrasound itself is untouched; the image as a whole changed
        // where the text was, and not much more.
        let (fa, fb) = (frame_bytes(&a, 0), frame_bytes(&b, 0));
        assert_eq!((fa.0, fa.1, fa.2), (fb.0, fb.1, fb.2), "{name}: geometry");
        assert_eq!(
            changed(&fa, &fb.3, content),
            0.0,
            "{name}: image content changed"
        );
        let all = changed(&fa, &fb.3, (0, 0, fa.0, fa.1));
        assert!(
            all > 0.005 && all < 0.25,
            "{name}: {:.1} % of the pixels changed",
            all * 100.0
        );
        let before = dciodvfy_errors(&input);
        let new: Vec<_> = dciodvfy_errors(&out)
            .into_iter()
            .filter(|e| !before.contains(e))
            .collect();
        assert!(new.is_empty(), "{name}: new dciodvfy errors: {new:?}");
    }
}

/// A screen capture of the US1 image: the same pixels as a Secondary
/// Capture Image (modality OT), as a workstation would export it.
fn screen_capture(dir: &Path) -> PathBuf {
    let mut obj = dicom_object::open_file(us("US1_UNCR.dcm")).unwrap();
    let uid = "2.25.209381231902318203981203981203";
    obj.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from(uids::SECONDARY_CAPTURE_IMAGE_STORAGE),
    ));
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(uid),
    ));
    obj.put(DataElement::new(
        tags::MODALITY,
        VR::CS,
        PrimitiveValue::from("OT"),
    ));
    obj.put(DataElement::new(
        tags::CONVERSION_TYPE,
        VR::CS,
        PrimitiveValue::from("WSD"),
    ));
    obj.update_meta(|m| {
        m.media_storage_sop_class_uid = uids::SECONDARY_CAPTURE_IMAGE_STORAGE.into();
        m.media_storage_sop_instance_uid = uid.into();
    });
    let p = dir.join("screen_capture.dcm");
    obj.write_to_file(&p).unwrap();
    p
}

#[test]
fn a_cine_and_a_screen_capture_reach_storescp_without_their_text() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let received = tmp.path().join("storescp");
    let _peer = storescp(&received, port);
    let g = Gateway::start(tmp.path(), &dicom_destination("pacs", "STORESCP", port));
    // A 30-frame YBR_FULL_422 JPEG baseline cine, and a screen capture.
    let cine = us("examples_ybr_color.dcm");
    let sc = screen_capture(tmp.path());
    send_all(&g, tmp.path(), "ECHOLAB", &[cine.clone(), sc.clone()]);
    let mut got = Vec::new();
    poll("both instances at storescp", &g, || {
        got = files_under(&received);
        // storescp creates each file before it has written all of it.
        got.len() >= 2 && got.iter().all(|p| dicom_object::open_file(p).is_ok())
    });
    let class_of =
        |p: &Path| deidgate::dicom::text(&dicom_object::open_file(p).unwrap(), tags::SOP_CLASS_UID);
    let find = |class: &str| got.iter().find(|p| class_of(p) == class).cloned().unwrap();
    let cine_out = find(uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE);
    let sc_out = find(uids::SECONDARY_CAPTURE_IMAGE_STORAGE);

    // The screen capture: the institution's name is gone, the image stays.
    let b = dicom_object::open_file(&sc_out).unwrap();
    assert_cleaned_marks(&b, "screen capture");
    let words = ["BAPTIST", "CINE", "MSCSKEL"];
    assert!(!legible(&ocr(&sc, 0, (0, 20, 640, 90), tmp.path()), &words).is_empty());
    let after = legible(&ocr(&sc_out, 0, (0, 20, 640, 90), tmp.path()), &words);
    assert!(after.is_empty(), "screen capture: still legible: {after:?}");
    let fa = frame_bytes(&dicom_object::open_file(&sc).unwrap(), 0);
    assert_eq!(
        changed(&fa, &frame_bytes(&b, 0).3, (120, 150, 300, 280)),
        0.0
    );

    // The cine: the same box filled in every frame (the labels do not move),
    // the heart moves on underneath.
    let a = dicom_object::open_file(&cine).unwrap();
    let b = dicom_object::open_file(&cine_out).unwrap();
    assert_cleaned_marks(&b, "cine");
    assert_eq!(
        deidgate::dicom::text(&b, tags::NUMBER_OF_FRAMES),
        deidgate::dicom::text(&a, tags::NUMBER_OF_FRAMES)
    );
    // "PLA" and "Gen THI" in the top-left corner of every frame.
    let label = (2, 2, 40, 20);
    for f in 0..30 {
        let (fa, fb) = (frame_bytes(&a, f), frame_bytes(&b, f));
        assert!(
            changed(&fa, &fb.3, label) > 0.5,
            "frame {f}: the corner label is untouched"
        );
        // A box is one colour: the label's pixels are filled, not blurred.
        let (w, px) = (fb.0, fb.2);
        let first = &fb.3[(4 * w + 6) * px..(4 * w + 6) * px + px];
        assert_eq!(
            &fb.3[(10 * w + 20) * px..(10 * w + 20) * px + px],
            first,
            "frame {f}"
        );
    }
    // The first and the last frame differ in the middle: the cine moves.
    let (f0, f29) = (frame_bytes(&b, 0), frame_bytes(&b, 29));
    assert!(changed(&f0, &f29.3, (100, 60, 220, 180)) > 0.2);
    // dciodvfy finds nothing in the outputs that it did not find in the
    // inputs (the screen capture inherits the US header's missing Laterality).
    for (input, out) in [(&cine, &cine_out), (&sc, &sc_out)] {
        let before = dciodvfy_errors(input);
        let new: Vec<_> = dciodvfy_errors(out)
            .into_iter()
            .filter(|e| !before.contains(e))
            .collect();
        assert!(new.is_empty(), "{}: {new:?}", out.display());
    }
    assert!(g.log().contains("text route"), "{}", g.log());
    let (_, metrics) = g.http_get("/metrics");
    assert!(
        metrics.contains("deidgate_pixel_route_loaded{route=\"text\"} 1"),
        "{metrics}"
    );
}

/// A copy of the JPEG lossless ultrasound whose JPEG stream says
/// "arithmetic coding" (SOF11): parseable DICOM, undecodable pixels.
fn undecodable(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(us("JPGLosslessP14SV1_1s_1f_8b.dcm")).unwrap();
    let at = find(&bytes, &[0xFF, 0xC3]).expect("a SOF3 marker");
    bytes[at + 1] = 0xCB;
    let p = dir.join("undecodable.dcm");
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn unsure_means_quarantine_never_pass_through() {
    let tmp = tempfile::tempdir().unwrap();
    // No detector: every claimed image waits in quarantine with the reason.
    let (out, reasons) = anonymize(
        &tmp.path().join("a"),
        &us("US1_UNCR.dcm"),
        "[text]\nweights = \"/nonexistent/text\"\n",
    );
    assert!(out.is_none());
    assert!(reasons.contains("no usable text detector"), "{reasons}");
    // Pixels the decoder cannot read.
    let bad = undecodable(tmp.path());
    let (out, reasons) = anonymize(&tmp.path().join("b"), &bad, "");
    assert!(out.is_none());
    assert!(
        reasons.contains("text route: cannot decode the pixel data"),
        "{reasons}"
    );
    // More frames than allowed.
    let (out, reasons) = anonymize(
        &tmp.path().join("c"),
        &us("examples_ybr_color.dcm"),
        "[text]\nmax_frames = 10\n",
    );
    assert!(out.is_none());
    assert!(
        reasons.contains("more than [text] max_frames = 10"),
        "{reasons}"
    );
    // The route switched off: a YES image is kept back, others pass as they
    // are (the explicit opt-out, logged).
    let off = "[text]\nenabled = false\n";
    let (out, reasons) = anonymize(&tmp.path().join("d"), &us("GREYSCALE_IMAGE.dcm"), off);
    assert!(out.is_none());
    assert!(reasons.contains("BurnedInAnnotation=YES"), "{reasons}");
    let (out, _) = anonymize(&tmp.path().join("e"), &us("US1_UNCR.dcm"), off);
    let out = dicom_object::open_file(out.expect("passes when switched off")).unwrap();
    let input = dicom_object::open_file(us("US1_UNCR.dcm")).unwrap();
    assert_eq!(pixel_bytes(&out), pixel_bytes(&input));
    // And the old rule still exists for sites that want it.
    let (out, reasons) = anonymize(
        &tmp.path().join("f"),
        &us("GREYSCALE_IMAGE.dcm"),
        "[filter]\nquarantine_burned_in_annotation = true\n",
    );
    assert!(out.is_none());
    assert!(reasons.contains("BurnedInAnnotation=YES"), "{reasons}");
}

/// Every line is read and compared with the header's identifiers; `[text]
/// keep` leaves allow-listed lines in place, except a line that holds an
/// identifier. GREYSCALE_IMAGE's band shows the birth date of its header
/// (19510829) as "DOB: 08/29/1951"; its second line reads "Adv Breast".
#[test]
fn lines_are_read_kept_by_the_allow_list_and_identifiers_always_filled() {
    let tmp = tempfile::tempdir().unwrap();
    let input = us("GREYSCALE_IMAGE.dcm");
    // Both lines are allow-listed; only the one without an identifier stays.
    let toml = "[text]\nkeep = [\"DOB: ?[0-9/]+\", \"Adv Breast\"]\n";
    let dir = tmp.path().join("keep");
    let run = anonymize_logged(&dir, &input, toml);
    let (log, config) = (&run.log, &run.config);
    assert!(
        log.contains("identifiers burned in: the patient's birth date"),
        "the leak is not reported: {log}"
    );
    // (Not a bare "1951": the log's timestamps can hold those digits.)
    const DOB: [&str; 4] = ["19510829", "08/29/1951", "1951-08-29", "29.08.1951"];
    for date in DOB {
        assert!(!log.contains(date), "the log holds the birth date: {log}");
    }
    // The finding is in the audit chain under the new instance UID.
    let audit = cli(config, &["audit", "export"]);
    assert!(audit.status.success(), "{}", text(&audit));
    let audit = text(&audit);
    assert!(
        audit.contains("pixels.identifiers_burned_in") && audit.contains("birth date"),
        "no audit record of the burned-in identifiers: {audit}"
    );
    // (Hashes and times in the export can hold the digits "1951".)
    for date in DOB {
        assert!(!audit.contains(date), "the audit holds the birth date");
    }
    let out = run
        .output
        .unwrap_or_else(|| panic!("quarantined: {}", run.reasons));
    assert_cleaned_marks(&dicom_object::open_file(&out).unwrap(), "GREYSCALE_IMAGE");
    let band = (0, 0, 1024, 22);
    let line2 = (0, 22, 400, 22);
    assert!(!legible(&ocr(&input, 0, band, &dir), &["1951"]).is_empty());
    assert!(
        legible(&ocr(&out, 0, band, &dir), &["1951", "08/29"]).is_empty(),
        "the birth date is legible although a keep pattern matches its line"
    );
    assert_eq!(
        legible(&ocr(&out, 0, line2, &dir), &["Breast"]),
        vec!["Breast"],
        "the allow-listed line was filled"
    );

    // The default keeps nothing: the same line is filled.
    let dir = tmp.path().join("default");
    let (out, reasons) = anonymize(&dir, &input, "");
    let out = out.unwrap_or_else(|| panic!("quarantined: {reasons}"));
    assert!(legible(&ocr(&out, 0, line2, &dir), &["Breast"]).is_empty());
}

/// Without the recogniser's weights the route still runs: every line found
/// is filled, none is read, and the log says so.
#[test]
fn without_the_recogniser_every_line_is_filled_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("text-models");
    std::fs::create_dir_all(&models).unwrap();
    let det = deidgate::models::text::DET_WEIGHTS;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/text");
    std::fs::copy(repo.join(det), models.join(det)).unwrap();
    let input = us("GREYSCALE_IMAGE.dcm");
    let dir = tmp.path().join("run");
    let toml = format!("[text]\nweights = \"{}\"\n", models.display());
    let run = anonymize_logged(&dir, &input, &toml);
    let log = &run.log;
    assert!(log.contains("no text recogniser"), "{log}");
    assert!(log.contains("0 lines read"), "{log}");
    let out = run
        .output
        .unwrap_or_else(|| panic!("quarantined: {}", run.reasons));
    assert_cleaned_marks(&dicom_object::open_file(&out).unwrap(), "GREYSCALE_IMAGE");
    assert!(legible(
        &ocr(&out, 0, (0, 0, 1024, 22), &dir),
        &["1951", "00079241539"]
    )
    .is_empty());
    assert!(legible(&ocr(&out, 0, (0, 22, 400, 22), &dir), &["Breast"]).is_empty());
}

/// "N lines read" in the route's log line.
fn lines_read(log: &str) -> usize {
    let at = log
        .find(" lines read")
        .expect("no text-route note in the log");
    log[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// With nothing to keep, a label in the same place in several searched
/// frames of a cine is read (and counted) once, although JPEG noise and
/// the detector's one-pixel jitter make each frame's crop a little
/// different. With a keep list every distinct crop is read, as a kept line
/// must be judged on what each frame shows.
#[test]
fn a_cine_label_is_read_once_not_once_per_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let cine = us("examples_ybr_color.dcm"); // 30 frames, 9 images searched
    let default = anonymize_logged(&tmp.path().join("default"), &cine, "");
    let keeping = anonymize_logged(
        &tmp.path().join("keep"),
        &cine,
        "[text]\nkeep = [\"NEVER-MATCHES-A-LINE\"]\n",
    );
    let (once, each) = (lines_read(&default.log), lines_read(&keeping.log));
    // One searched image holds 16 boxes (labels, scale marks, the bottom row).
    assert!(once <= 16, "{once} lines read: {}", default.log);
    assert!(
        once < each,
        "{once} lines read without a keep list, {each} with one"
    );
    assert!(default.output.is_some() && keeping.output.is_some());
}
