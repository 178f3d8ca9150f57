//! Build the committed 2 mm template files in `models/mri/` from the pydeface
//! template (MIT) in the shared data:
//!
//!   cargo run --release --example mri_make_template -- [SRC_DIR] [OUT_DIR] [PREVIEW.png]
//!
//! SRC_DIR defaults to ../shared/data/mri/pydeface_template, OUT_DIR to
//! models/mri. The brain mask is computed here from the template intensities
//! (Otsu threshold, erosion to cut the brain from scalp and eyes, largest
//! component, reconstruction, closing), so the runtime needs no skull
//! stripper. A preview PNG (mid-sagittal and axial slices with the face mask
//! in red and the brain mask in green) is written when asked for.

use anyhow::Result;
use deidgate::models::mri::mask;
use deidgate::models::mri::nifti::{read_nifti, write_nifti_u8_gz};
use deidgate::models::mri::template::{BRAIN_FILE, FACE_FILE, INTENSITY_FILE};
use deidgate::models::mri::Volume;
use std::path::PathBuf;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let src = PathBuf::from(
        args.first()
            .map(String::as_str)
            .unwrap_or("../shared/data/mri/pydeface_template"),
    );
    let out = PathBuf::from(args.get(1).map(String::as_str).unwrap_or("models/mri"));
    let t1 = read_nifti(&src.join("mean_reg2mean.nii.gz"))?;
    let fm = read_nifti(&src.join("facemask.nii.gz"))?;
    let ones = fm.data.iter().filter(|&&v| v >= 0.5).count();
    println!(
        "template {:?}, facemask ones {ones} of {}",
        t1.dims,
        fm.len()
    );
    // pydeface multiplies the image by its mask: 1 = keep, 0 = face.
    let face_full = Volume {
        data: fm
            .data
            .iter()
            .map(|&v| if v < 0.5 { 1.0 } else { 0.0 })
            .collect(),
        ..fm.clone()
    };
    let f = t1.factors_for(2.0);
    let t = t1.downsample(f);
    let face = face_full.downsample(f);
    let face = Volume {
        data: face.data.iter().map(|&v| (v >= 0.5) as u8 as f32).collect(),
        ..face
    };
    let brain = brain_mask(&t);
    let nb = brain.data.iter().filter(|&&v| v > 0.5).count();
    println!(
        "2 mm grid {:?}, brain voxels {nb} ({:.0} ml)",
        t.dims,
        nb as f64 * 8.0 / 1000.0
    );
    std::fs::create_dir_all(&out)?;
    write_nifti_u8_gz(&out.join(INTENSITY_FILE), &t)?;
    write_nifti_u8_gz(&out.join(FACE_FILE), &face)?;
    write_nifti_u8_gz(&out.join(BRAIN_FILE), &brain)?;
    if let Some(png) = args.get(2) {
        preview(&t, &face, &brain, png)?;
    }
    Ok(())
}

fn brain_mask(t: &Volume) -> Volume {
    let d = t.dims;
    let thr = mask::otsu(&t.data);
    let cand: Vec<bool> = t.data.iter().map(|&v| v > thr).collect();
    let r: usize = std::env::var("BRAIN_ERODE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let core = mask::largest_component(&mask::erode(&cand, d, [r, r, r]), d);
    let grown = mask::dilate(&core, d, [r, r, r]);
    let rec: Vec<bool> = grown.iter().zip(&cand).map(|(a, b)| *a && *b).collect();
    let closed = mask::erode(&mask::dilate(&rec, d, [2, 2, 2]), d, [2, 2, 2]);
    Volume {
        data: closed.iter().map(|&b| b as u8 as f32).collect(),
        dims: d,
        affine: t.affine,
    }
}

fn preview(t: &Volume, face: &Volume, brain: &Volume, png: &str) -> Result<()> {
    let [nx, ny, nz] = t.dims;
    let max = t.data.iter().cloned().fold(0.0f32, f32::max);
    let (w, h) = (ny + nx, nz.max(ny));
    let mut img = image::RgbImage::new(3 * w as u32, 3 * h as u32);
    let sc = 3u32;
    let mut put = |x: usize, y: usize, g: usize| {
        let v = (t.data[g] / max * 255.0) as u8;
        let mut px = [v, v, v];
        if face.data[g] > 0.5 {
            px[0] = 255;
        }
        if brain.data[g] > 0.5 {
            px[1] = px[1].saturating_add(90);
        }
        for dy in 0..sc {
            for dx in 0..sc {
                img.put_pixel(x as u32 * sc + dx, y as u32 * sc + dy, image::Rgb(px));
            }
        }
    };
    for k in 0..nz {
        for j in 0..ny {
            put(j, nz - 1 - k, t.idx(nx / 2, j, k));
        }
    }
    for j in 0..ny {
        for i in 0..nx {
            put(ny + i, ny - 1 - j, t.idx(i, j, nz * 2 / 5));
        }
    }
    img.save(png)?;
    Ok(())
}
