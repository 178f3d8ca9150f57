//! The training heads of `deidgate train mri`: the NIfTI heads found under a
//! folder, each with the face region the gateway's template registration
//! gives it and the slice windows the generator is trained on. Training
//! only, so it lives in `crate::train`.

use crate::models::mri::generator::scale_of;
use crate::models::mri::{nifti::read_nifti, FaceRemodeler, Mode, Volume};
use std::path::{Path, PathBuf};

/// One training head: its volume, face region and training windows.
pub struct Head {
    pub vol: Volume,
    pub face: Vec<bool>,
    pub scale: f32,
    /// (k, i0, j0) training windows: slices with face voxels.
    pub windows: Vec<(usize, usize, usize)>,
}

impl Head {
    /// A `patch`² window centred on the face in each slice with more than
    /// 20 face voxels; `None` when there is no such slice.
    pub fn new(vol: Volume, face: Vec<bool>, patch: usize) -> Option<Head> {
        let [nx, ny, nz] = vol.dims;
        let mut windows = Vec::new();
        for k in 0..nz {
            let (mut si, mut sj, mut n) = (0usize, 0usize, 0usize);
            for j in 0..ny {
                for i in 0..nx {
                    if face[vol.idx(i, j, k)] {
                        si += i;
                        sj += j;
                        n += 1;
                    }
                }
            }
            if n > 20 {
                let c = |s: usize, len: usize| {
                    (s / n)
                        .saturating_sub(patch / 2)
                        .min(len.saturating_sub(patch))
                };
                windows.push((k, c(si, nx), c(sj, ny)));
            }
        }
        if windows.is_empty() {
            return None;
        }
        let scale = scale_of(&vol);
        Some(Head {
            vol,
            face,
            scale,
            windows,
        })
    }
}

fn find_heads(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .filter(|p| {
            let s = p.to_string_lossy();
            s.ends_with(".nii") || s.ends_with(".nii.gz")
        })
        .collect();
    v.sort();
    v
}

/// Every usable head under `dir`, with the face region `remodeler` replaces
/// in deface mode. Heads that do not read, do not register or have no slice
/// with face voxels are skipped with a log line.
pub fn load_heads(dir: &Path, remodeler: &FaceRemodeler, patch: usize) -> Vec<Head> {
    let mut heads = Vec::new();
    for p in find_heads(dir) {
        let vol = match read_nifti(&p) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("skip {}: {e:#}", p.display());
                continue;
            }
        };
        let face = match remodeler.remodel(&vol, Mode::Deface) {
            Ok(r) => r.face,
            Err(e) => {
                eprintln!("skip {}: {e:#}", p.display());
                continue;
            }
        };
        let dims = vol.dims;
        match Head::new(vol, face, patch) {
            Some(h) => {
                eprintln!(
                    "head {}: {:?}, {} training slices",
                    p.display(),
                    dims,
                    h.windows.len()
                );
                heads.push(h);
            }
            None => eprintln!("skip {}: no slice with face voxels", p.display()),
        }
    }
    heads
}
