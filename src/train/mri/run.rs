//! `deidgate train mri` end to end: find and register the training heads,
//! train the generator, save `model.safetensors` + `config.json`, and reload
//! them to report how far the generated faces stay from the training
//! subjects' own. Training only, so it lives in `crate::train`; the command
//! line is `crate::cli::train`.

use super::heads::load_heads;
use super::train::{train, TrainOpts, TAIL};
use crate::models::mri::generator::{GenConfig, Generator, CONFIG, CONTEXT, WEIGHTS};
use crate::models::mri::guard::surface_change;
use crate::models::mri::FaceRemodeler;
use anyhow::{bail, Result};
use candle_core::Device;
use std::path::PathBuf;

/// What `deidgate train mri` is told.
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// Folder (searched recursively) of NIfTI heads (.nii, .nii.gz).
    pub data: PathBuf,
    /// Where to write model.safetensors and config.json.
    pub out: PathBuf,
    /// Template folder (the face region comes from its registration).
    pub models: PathBuf,
    pub train: TrainOpts,
}

pub fn run(args: &RunOpts) -> Result<()> {
    let dev = Device::cuda_if_available(0).unwrap_or(Device::Cpu);
    let opts = &args.train;
    if !(opts.adv_weight >= 0.0 && opts.adv_weight.is_finite()) {
        bail!("--adv-weight must be 0 or positive");
    }
    let patch = opts.patch();
    let remodeler = FaceRemodeler::load_on(&args.models, dev.clone())?;
    let heads = load_heads(&args.data, &remodeler, patch);
    if heads.is_empty() {
        bail!("no usable NIfTI heads under {}", args.data.display());
    }
    let (vm, rep) = train(&heads, opts, &dev)?;
    std::fs::create_dir_all(&args.out)?;
    vm.save(args.out.join(WEIGHTS))?;
    let cfg = GenConfig {
        context: CONTEXT,
        width: opts.width,
        trained_iters: opts.iters,
        trained_heads: heads.len(),
        adv_weight: opts.adv_weight,
    };
    std::fs::write(args.out.join(CONFIG), serde_json::to_vec_pretty(&cfg)?)?;
    eprintln!(
        "final losses (mean of the last {TAIL} iterations): masked L1 {:.4} (first iteration {:.4}){}",
        rep.l1,
        rep.first_l1,
        match (rep.g_adv, rep.d) {
            (Some(g), Some(d)) => format!(", G adv {g:.4}, D {d:.4}"),
            _ => String::new(),
        }
    );
    // Round trip: the saved weights load and fill each head's face; the
    // privacy guard's measure shows how close the generated face stays to
    // the training subject's own (the gateway refuses below
    // `[mri] generate_min_surface_mm`, default 4 mm).
    let g = Generator::load(&args.out, &dev)?;
    eprintln!(
        "saved {} ({} heads, {} iters); reloaded",
        args.out.display(),
        heads.len(),
        opts.iters
    );
    for (n, h) in heads.iter().enumerate() {
        let out = g.generate(&h.vol, &h.face)?;
        let (mut d, mut c) = (0.0f64, 0usize);
        for (g, &f) in h.face.iter().enumerate() {
            if f {
                d += (out[g] - h.vol.data[g]).abs() as f64;
                c += 1;
            }
        }
        let s = surface_change(&h.vol, &out, &h.face);
        eprintln!(
            "head {n}: generate: mean |generated - original| in face {:.3} (scale {:.1}); face surface moved {:.2} mm over {} rays",
            d / c.max(1) as f64,
            h.scale,
            s.mean_mm,
            s.rays
        );
    }
    Ok(())
}
