//! `deidgate train mri`: train the 2.5-D face generator (generate mode) by
//! masked reconstruction on a folder of NIfTI heads. The face region of each
//! head comes from the same template registration the gateway uses, so the
//! network learns exactly the region it will later fill.

use crate::models::mri::generator::{
    scale_of, slice_input, GenConfig, Generator, Net, CONFIG, CONTEXT, WEIGHTS,
};
use crate::models::mri::{nifti::read_nifti, FaceRemodeler, Mode, Volume};
use anyhow::{bail, Result};
use candle_core::{DType, Device};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Folder (searched recursively) of NIfTI heads (.nii, .nii.gz).
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write model.safetensors and config.json.
    #[arg(long, default_value = "models/mri/generator")]
    pub out: PathBuf,
    /// Template folder (the face region comes from its registration).
    #[arg(long, default_value = "models/mri")]
    pub models: PathBuf,
    #[arg(long, default_value_t = 2000)]
    pub iters: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Base channel width of the generator.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Square in-plane training patch around the face (multiple of 4).
    #[arg(long, default_value_t = 96)]
    pub patch: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

struct Head {
    vol: Volume,
    face: Vec<bool>,
    scale: f32,
    /// (k, i0, j0) training windows: slices with face voxels.
    windows: Vec<(usize, usize, usize)>,
}

fn find_heads(dir: &std::path::Path) -> Vec<PathBuf> {
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

pub fn run(args: Args) -> Result<()> {
    let dev = Device::cuda_if_available(0).unwrap_or(Device::Cpu);
    let patch = args.patch.div_ceil(4) * 4;
    let remodeler = FaceRemodeler::load_on(&args.models, dev.clone())?;
    let mut heads = Vec::new();
    for p in find_heads(&args.data) {
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
        eprintln!(
            "head {}: {:?}, {} training slices",
            p.display(),
            vol.dims,
            windows.len()
        );
        if !windows.is_empty() {
            let scale = scale_of(&vol);
            heads.push(Head {
                vol,
                face,
                scale,
                windows,
            });
        }
    }
    if heads.is_empty() {
        bail!("no usable NIfTI heads under {}", args.data.display());
    }
    let vm = VarMap::new();
    let net = Net::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), args.width)?;
    let mut opt = AdamW::new(
        vm.all_vars(),
        ParamsAdamW {
            lr: args.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut avg = 0.0f64;
    for it in 0..args.iters {
        let h = &heads[rng.gen_range(0..heads.len())];
        let (k, i0, j0) = h.windows[rng.gen_range(0..h.windows.len())];
        let (x, target, m) =
            slice_input(&h.vol, &h.face, h.scale, k, (i0, j0, patch, patch), &dev)?;
        let pred = net.forward(&x)?;
        // masked L1: only the hidden face is reconstructed
        let loss = (((pred - target)?.abs()? * &m)?.sum_all()? / (m.sum_all()? + 1.0)?)?;
        let l = loss.to_scalar::<f32>()? as f64;
        avg = if it == 0 { l } else { 0.95 * avg + 0.05 * l };
        opt.backward_step(&loss)?;
        if it % 10 == 0 || it + 1 == args.iters {
            eprintln!("iter {it}: masked L1 {l:.4} (avg {avg:.4})");
        }
    }
    std::fs::create_dir_all(&args.out)?;
    vm.save(args.out.join(WEIGHTS))?;
    let cfg = GenConfig {
        context: CONTEXT,
        width: args.width,
        trained_iters: args.iters,
        trained_heads: heads.len(),
    };
    std::fs::write(args.out.join(CONFIG), serde_json::to_vec_pretty(&cfg)?)?;
    // Round trip: the saved weights load and fill the first head's face.
    let g = Generator::load(&args.out, &dev)?;
    let h = &heads[0];
    let out = g.generate(&h.vol, &h.face)?;
    let (mut d, mut n) = (0.0f64, 0usize);
    for (g, &f) in h.face.iter().enumerate() {
        if f {
            d += (out[g] - h.vol.data[g]).abs() as f64;
            n += 1;
        }
    }
    eprintln!(
        "saved {} ({} heads, {} iters); reload + generate on head 0: mean |generated - original| in face {:.3} (scale {:.1})",
        args.out.display(),
        heads.len(),
        args.iters,
        d / n.max(1) as f64,
        h.scale
    );
    Ok(())
}
