//! Face-surface evaluation of the MRI face remodeling (issue 6):
//!
//!   cargo run --release --example mri_face_eval -- OUT_DIR [HEAD.nii[.gz] ...]
//!
//! For each head (default: the volunteer head, chris_t1, colin27 and the
//! template itself) it runs reface and deface, renders the skin surface of
//! input and outputs from the front as depth maps, and prints the mean
//! |depth difference| over the face rays (mm), the number of changed voxels
//! inside the warped brain mask (must be 0) and the CPU time per remodel. It
//! writes OUT_DIR/<name>.png: depth maps (top) and mid-sagittal slices
//! (bottom) for input | reface | deface.

use anyhow::Result;
use deidgate::models::mri::surface::{bounds, depth_map, mean_face_distance, DepthMap};
use deidgate::models::mri::volume::{apply, invert};
use deidgate::models::mri::{mask, nifti::read_nifti, FaceRemodeler, Mode, Volume};
use std::path::{Path, PathBuf};
use std::time::Instant;

const DEFAULT_HEADS: [&str; 4] = [
    "../shared/data/mri/decubitus_dicom/HFS_t1_fl2d_sag_derived.nii.gz",
    "../shared/data/mri/chris_rorden/chris_t1.nii.gz",
    "../shared/data/mri/colin27_spm/single_subj_T1.nii",
    "../shared/data/mri/pydeface_template/mean_reg2mean.nii.gz",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(
        args.first()
            .map(String::as_str)
            .unwrap_or("/tmp/mri_face_eval"),
    );
    std::fs::create_dir_all(&out)?;
    let heads: Vec<String> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        DEFAULT_HEADS.iter().map(|s| s.to_string()).collect()
    };
    let r = FaceRemodeler::load(Path::new("models/mri"))?;
    println!(
        "head\tdims\tmode\tseconds\tface_voxels\tbrain_changed\tface_rays\tmean_depth_diff_mm\tncc\tshape"
    );
    for h in &heads {
        let name = Path::new(h)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".nii.gz", "")
            .replace(".nii", "");
        let vol = read_nifti(Path::new(h))?;
        let thr = mask::air_threshold(&vol.data);
        let mut outs = Vec::new();
        let mut din: Option<DepthMap> = None;
        for mode in [Mode::Reface, Mode::Deface] {
            let t0 = Instant::now();
            let res = r.remodel_detailed(&vol, mode);
            let secs = t0.elapsed().as_secs_f64();
            let (rm, det) = match res {
                Ok(x) => x,
                Err(e) => {
                    println!(
                        "{name}\t{:?}\t{}\t{secs:.1}\tERR {e:#}",
                        vol.dims,
                        mode.name()
                    );
                    continue;
                }
            };
            let outside_changed = (0..vol.len())
                .filter(|&g| !rm.face[g] && rm.data[g].to_bits() != vol.data[g].to_bits())
                .count();
            assert_eq!(outside_changed, 0, "voxels outside the face region changed");
            let brain_changed = (0..vol.len())
                .filter(|&g| det.brain[g] && rm.data[g] != vol.data[g])
                .count();
            let din = din.get_or_insert_with(|| depth_map(&vol, &vol.data, thr, Some(&rm.face)));
            let dout = depth_map(&vol, &rm.data, thr, None);
            let (lo, hi) = bounds(&vol);
            let (d, n) = mean_face_distance(din, &dout, (hi[1] - lo[1]) as f32);
            println!(
                "{name}\t{:?}\t{}\t{secs:.1}\t{}\t{brain_changed}\t{n}\t{d:.2}\t{:.3}\t{}",
                vol.dims,
                mode.name(),
                rm.face.iter().filter(|&&b| b).count(),
                det.ncc,
                det.shape
                    .map(|s| format!("{:?}", s.scale))
                    .unwrap_or_else(|| "-".into())
            );
            if mode == Mode::Reface {
                describe(&name, din, &dout);
            }
            outs.push((dout, rm.data));
        }
        if outs.len() == 2 {
            let din = din.unwrap();
            let png = out.join(format!("{name}.png"));
            picture(&vol, &din, &outs, &png)?;
            println!("# wrote {}", png.display());
        }
    }
    Ok(())
}

/// One comment line on the refaced face in numbers: the most anterior face
/// point (nose tip) before/after (depth from the front plane and height),
/// and how the face rays moved (outward = towards the viewer).
fn describe(name: &str, din: &DepthMap, dout: &DepthMap) {
    let tip = |m: &DepthMap| {
        (0..m.depth.len())
            .filter(|&i| din.face[i] && m.depth[i].is_finite())
            .min_by(|&a, &b| m.depth[a].total_cmp(&m.depth[b]))
    };
    let (Some(a), Some(b)) = (tip(din), tip(dout)) else {
        return;
    };
    let (mut out, mut inw, mut n) = (0usize, 0usize, 0usize);
    for i in 0..din.depth.len() {
        if !din.face[i] || din.depth[i].is_nan() {
            continue;
        }
        n += 1;
        let d = dout.depth[i];
        if d.is_nan() || d > din.depth[i] + 1.0 {
            inw += 1;
        } else if d < din.depth[i] - 1.0 {
            out += 1;
        }
    }
    println!(
        "# {name} reface: most anterior face point at depth {:.1} mm, {:.0} mm below the top \
         -> {:.1} mm, {:.0} mm below the top; face rays moved outward > 1 mm {:.0}%, inward > 1 mm {:.0}%",
        din.depth[a],
        (a / din.w) as f64,
        dout.depth[b],
        (b / dout.w) as f64,
        100.0 * out as f64 / n.max(1) as f64,
        100.0 * inw as f64 / n.max(1) as f64
    );
}

/// Depth maps on top (near = bright), mid-sagittal slices below; columns
/// input | reface | deface.
fn picture(vol: &Volume, din: &DepthMap, outs: &[(DepthMap, Vec<f32>)], png: &Path) -> Result<()> {
    let (lo, hi) = bounds(vol);
    let (sw, sh) = (
        (hi[1] - lo[1]).ceil() as usize + 1,
        (hi[2] - lo[2]).ceil() as usize + 1,
    );
    let cw = din.w.max(sw);
    let (w, h) = (3 * cw, din.h + sh);
    let mut img = image::RgbImage::new(w as u32, h as u32);
    let maxd = (hi[1] - lo[1]) as f32;
    let maps = [din, &outs[0].0, &outs[1].0];
    for (c, m) in maps.iter().enumerate() {
        for r in 0..m.h {
            for x in 0..m.w {
                let d = m.depth[r * m.w + x];
                let v = if d.is_nan() {
                    0
                } else {
                    (255.0 * (1.0 - d / maxd)).clamp(0.0, 255.0) as u8
                };
                let px = if c == 0 && din.face[r * m.w + x] {
                    [v, v / 2 + 60, v / 2]
                } else {
                    [v, v, v]
                };
                img.put_pixel((c * cw + x) as u32, r as u32, image::Rgb(px));
            }
        }
    }
    let inv = invert(&vol.affine);
    let xmid = 0.5 * (lo[0] + hi[0]);
    let datas = [&vol.data, &outs[0].1, &outs[1].1];
    let vmax = deidgate::models::mri::volume::quantiles(&vol.data, &[0.995])[0].max(1e-6);
    for (c, d) in datas.iter().enumerate() {
        let tmp = Volume {
            dims: vol.dims,
            data: d.to_vec(),
            affine: vol.affine,
        };
        for r in 0..sh {
            for x in 0..sw {
                // anterior on the left, superior up
                let p = apply(&inv, [xmid, lo[1] + x as f64, hi[2] - r as f64]);
                let v = (tmp.sample(p, 0.0) / vmax * 255.0).clamp(0.0, 255.0) as u8;
                img.put_pixel(
                    (c * cw + x) as u32,
                    (din.h + r) as u32,
                    image::Rgb([v, v, v]),
                );
            }
        }
    }
    img.save(png)?;
    Ok(())
}
