//! The MTCNN face detector on real photographs: the astronaut portrait and
//! the derived VL Photographic instance. The weights are required: without
//! them these tests fail and say how to fetch them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::Device;
use deidgate::models::photo::{
    replace_faces, restore, Face, KeepRegion, Mtcnn, ReplaceConfig, RgbImage, DEFAULT_WEIGHTS,
};
use dicom_dictionary_std::tags;

fn data_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(d.is_dir(), "shared test data not found at {}", d.display());
    d
}

fn detector() -> &'static Mtcnn {
    static DET: OnceLock<Mtcnn> = OnceLock::new();
    DET.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_WEIGHTS);
        assert!(
            path.is_file(),
            "MTCNN weights missing at {}: run scripts/fetch-weights.sh first",
            path.display()
        );
        Mtcnn::load(&path, &Device::Cpu).expect("load MTCNN weights")
    })
}

fn load_png(path: &Path) -> RgbImage {
    let img = image::open(path).expect("decode image").to_rgb8();
    RgbImage::new(img.width(), img.height(), img.into_raw()).unwrap()
}

/// Pixels of an uncompressed 8-bit RGB DICOM photo (interleaved or planar).
fn load_dicom_rgb(path: &Path) -> RgbImage {
    let obj = dicom_object::open_file(path).expect("open DICOM");
    let num = |tag| obj.element(tag).unwrap().to_int::<u32>().unwrap();
    let (rows, cols) = (num(tags::ROWS), num(tags::COLUMNS));
    assert_eq!(num(tags::SAMPLES_PER_PIXEL), 3);
    assert_eq!(num(tags::BITS_ALLOCATED), 8);
    let planar = obj
        .element_opt(tags::PLANAR_CONFIGURATION)
        .unwrap()
        .map(|e| e.to_int::<u32>().unwrap())
        .unwrap_or(0);
    let raw = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    let n = (rows * cols) as usize;
    let raw = &raw[..n * 3];
    let data = if planar == 1 {
        (0..n)
            .flat_map(|i| [raw[i], raw[n + i], raw[2 * n + i]])
            .collect()
    } else {
        raw.to_vec()
    };
    RgbImage::new(cols, rows, data).unwrap()
}

/// Landmarks that make sense for an upright face: eyes above nose above
/// mouth, left before right, all inside the (slightly grown) box.
fn assert_plausible(face: &Face) {
    let [x1, y1, x2, y2] = face.bbox;
    let (w, h) = (x2 - x1, y2 - y1);
    assert!(w > 20.0 && h > 20.0, "tiny box {:?}", face.bbox);
    let [le, re, nose, ml, mr] = face.landmarks;
    for (x, y) in face.landmarks {
        assert!(
            x > x1 - 0.05 * w && x < x2 + 0.05 * w && y > y1 - 0.05 * h && y < y2 + 0.05 * h,
            "landmark ({x},{y}) outside box {:?}",
            face.bbox
        );
    }
    assert!(
        le.0 < re.0 && ml.0 < mr.0,
        "left/right swapped: {:?}",
        face.landmarks
    );
    let eye_y = (le.1 + re.1) / 2.0;
    let mouth_y = (ml.1 + mr.1) / 2.0;
    assert!(
        eye_y < nose.1 && nose.1 < mouth_y,
        "eyes/nose/mouth order: {:?}",
        face.landmarks
    );
    assert!(
        mouth_y - eye_y > 0.2 * h,
        "eyes and mouth too close: {:?}",
        face.landmarks
    );
}

#[test]
fn astronaut_has_exactly_one_face() {
    let img = load_png(&data_dir().join("images/astronaut.png"));
    let faces = detector().detect(&img).unwrap();
    assert_eq!(faces.len(), 1, "faces: {faces:?}");
    let f = &faces[0];
    assert!(f.score > 0.95, "score {}", f.score);
    assert_plausible(f);
    // The face is in the upper middle of the 512x512 portrait.
    let cx = (f.bbox[0] + f.bbox[2]) / 2.0;
    let cy = (f.bbox[1] + f.bbox[3]) / 2.0;
    assert!(
        cx > 150.0 && cx < 300.0 && cy > 50.0 && cy < 200.0,
        "box {:?}",
        f.bbox
    );
}

#[test]
fn vl_photo_has_a_face() {
    let img = load_dicom_rgb(&data_dir().join("derived/vl_photo_face_rgb.dcm"));
    let faces = detector().detect(&img).unwrap();
    assert!(!faces.is_empty(), "no face in the VL photo");
    assert_plausible(&faces[0]);
}

#[test]
fn astronaut_replaced_keeps_periocular_and_restores() {
    let original = load_png(&data_dir().join("images/astronaut.png"));
    let faces = detector().detect(&original).unwrap();
    let mut img = original.clone();
    let cfg = ReplaceConfig {
        keep: vec![KeepRegion::Periocular],
        seed: 7,
        ..ReplaceConfig::default()
    };
    let rep = replace_faces(&mut img, &faces, &cfg);
    assert_eq!(rep.regions.len(), 1);
    let eyes = rep.kept[0];
    for y in eyes.y..eyes.y + eyes.height {
        for x in eyes.x..eyes.x + eyes.width {
            assert_eq!(img.pixel(x, y), original.pixel(x, y));
        }
    }
    // The nose tip and mouth are replaced.
    for &(x, y) in &faces[0].landmarks[2..] {
        assert_ne!(
            img.pixel(x as u32, y as u32),
            original.pixel(x as u32, y as u32)
        );
    }
    restore(&mut img, &rep.regions).unwrap();
    assert_eq!(img, original);
}

#[test]
fn cpu_fast_path_matches_candle_reference() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_WEIGHTS);
    let reference = Mtcnn::load(&path, &Device::Cpu)
        .expect("load MTCNN weights (run scripts/fetch-weights.sh)")
        .without_cpu_fast_path();
    let img = load_png(&data_dir().join("images/astronaut.png"));
    let fast = detector().detect(&img).unwrap();
    let slow = reference.detect(&img).unwrap();
    assert_eq!(fast.len(), slow.len());
    for (a, b) in fast.iter().zip(&slow) {
        assert!((a.score - b.score).abs() < 1e-3);
        for (x, y) in a.bbox.iter().zip(&b.bbox) {
            assert!((x - y).abs() < 0.5, "{:?} vs {:?}", a.bbox, b.bbox);
        }
        for (p, q) in a.landmarks.iter().zip(&b.landmarks) {
            assert!((p.0 - q.0).abs() < 0.5 && (p.1 - q.1).abs() < 0.5);
        }
    }
}
