//! Write de-identified versions of the deepface photos for the identity
//! leakage evaluation (`scripts/eval_photo.sh`).
//!
//!   cargo run --release --example photo_deid_dump -- OUT_DIR
//!
//! For each labelled photo it writes, as PNG, under OUT_DIR (which must lie
//! outside the repository: these are derived from photos whose copyright is
//! not cleared): `orig/`, `ours/` (face replaced), `ours_eyes/` (periocular
//! kept), `ours_mouth/` (perioral kept), `blur/` (Gaussian blur σ 8 of the same area), `pixel/`
//! (8-pixel blocks), `blur_rel/` and `pixel_rel/` (the same scaled to the
//! face size), plus `faces.tsv` with the detected boxes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use deidgate::models::photo::{
    replace_faces, Face, KeepRegion, Mtcnn, ReplaceConfig, RgbImage, DEFAULT_WEIGHTS,
};

fn to_buf(img: &RgbImage) -> image::RgbImage {
    image::RgbImage::from_raw(img.width, img.height, img.data.clone()).expect("buffer")
}

/// Apply `f` to every face's replaced area only: the baselines change the
/// same pixels our method does, so the comparison is about the method.
fn within_faces(orig: &RgbImage, ours: &RgbImage, changed: &RgbImage) -> RgbImage {
    let mut out = orig.clone();
    for (i, (o, c)) in ours
        .data
        .chunks_exact(3)
        .zip(changed.data.chunks_exact(3))
        .enumerate()
    {
        if o != &orig.data[i * 3..i * 3 + 3] {
            out.data[i * 3..i * 3 + 3].copy_from_slice(c);
        }
    }
    out
}

fn pixelate(img: &RgbImage, block: u32) -> RgbImage {
    let mut out = img.clone();
    for by in (0..img.height).step_by(block as usize) {
        for bx in (0..img.width).step_by(block as usize) {
            let (x1, y1) = ((bx + block).min(img.width), (by + block).min(img.height));
            let mut acc = [0u64; 3];
            let n = ((x1 - bx) * (y1 - by)) as u64;
            for y in by..y1 {
                for x in bx..x1 {
                    for (a, v) in acc.iter_mut().zip(img.pixel(x, y)) {
                        *a += v as u64;
                    }
                }
            }
            for y in by..y1 {
                for x in bx..x1 {
                    let i = ((y * img.width + x) * 3) as usize;
                    for (o, a) in out.data[i..i + 3].iter_mut().zip(acc) {
                        *o = (a / n) as u8;
                    }
                }
            }
        }
    }
    out
}

fn main() -> Result<()> {
    let out: PathBuf = std::env::args()
        .nth(1)
        .context("usage: photo_deid_dump OUT_DIR")?
        .into();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize()?;
    std::fs::create_dir_all(&out)?;
    if out.canonicalize()?.starts_with(&repo) {
        bail!(
            "{} lies inside the repository; derived photos must not",
            out.display()
        );
    }
    let det = Mtcnn::load(repo.join(DEFAULT_WEIGHTS), &Device::Cpu)?;
    let data = repo.join("../shared/data/faces/deepface");
    let csv = std::fs::read_to_string(data.join("identities.csv"))?;
    for d in [
        "orig",
        "ours",
        "ours_eyes",
        "ours_mouth",
        "blur",
        "pixel",
        "blur_rel",
        "pixel_rel",
    ] {
        std::fs::create_dir_all(out.join(d))?;
    }
    let mut tsv = String::from("file\tidentity\tx1\ty1\tx2\ty2\n");
    for line in csv.lines().skip(1) {
        let mut cols = line.split(',');
        let (file, id) = (cols.next().unwrap_or(""), cols.next().unwrap_or(""));
        if file.is_empty() || id.is_empty() {
            continue;
        }
        let img = image::load_from_memory(&std::fs::read(data.join(file))?)?.to_rgb8();
        let img = RgbImage::new(img.width(), img.height(), img.into_raw())?;
        let faces: Vec<Face> = det.detect(&img)?;
        let Some(face) = faces.first() else { continue };
        // The labelled identity is the most prominent face.
        let faces = vec![face.clone()];
        let name = file
            .rsplit_once('.')
            .map(|p| p.0)
            .unwrap_or(file)
            .to_string()
            + ".png";
        let seed = 0x5EED;
        let mut ours = img.clone();
        replace_faces(
            &mut ours,
            &faces,
            &ReplaceConfig {
                seed,
                ..Default::default()
            },
        );
        let mut eyes = img.clone();
        replace_faces(
            &mut eyes,
            &faces,
            &ReplaceConfig {
                keep: vec![KeepRegion::Periocular],
                seed,
                ..Default::default()
            },
        );
        let mut mouth = img.clone();
        replace_faces(
            &mut mouth,
            &faces,
            &ReplaceConfig {
                keep: vec![KeepRegion::Perioral],
                seed,
                ..Default::default()
            },
        );
        let blurred = image::imageops::blur(&to_buf(&img), 8.0);
        let blurred = RgbImage::new(img.width, img.height, blurred.into_raw())?;
        let blur = within_faces(&img, &ours, &blurred);
        let pixel = within_faces(&img, &ours, &pixelate(&img, 8));
        // The same baselines scaled to the face: σ = face width / 16 and
        // about 10 blocks across the face, as strong on a 600-pixel face as
        // the fixed ones are on a 100-pixel one.
        let face_w = face.bbox[2] - face.bbox[0];
        let blurred = image::imageops::blur(&to_buf(&img), (face_w / 16.0).max(1.0));
        let blurred = RgbImage::new(img.width, img.height, blurred.into_raw())?;
        let blur_rel = within_faces(&img, &ours, &blurred);
        let block = ((face_w / 10.0).round() as u32).max(2);
        let pixel_rel = within_faces(&img, &ours, &pixelate(&img, block));
        for (dir, im) in [
            ("orig", &img),
            ("ours", &ours),
            ("ours_eyes", &eyes),
            ("ours_mouth", &mouth),
            ("blur", &blur),
            ("pixel", &pixel),
            ("blur_rel", &blur_rel),
            ("pixel_rel", &pixel_rel),
        ] {
            to_buf(im).save(out.join(dir).join(&name))?;
        }
        let [x1, y1, x2, y2] = face.bbox;
        tsv += &format!("{name}\t{id}\t{x1:.1}\t{y1:.1}\t{x2:.1}\t{y2:.1}\n");
    }
    std::fs::write(out.join("faces.tsv"), tsv)?;
    Ok(())
}
