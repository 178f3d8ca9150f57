//! `deidgate train mri`: train the 2.5-D face generator (generate mode) by
//! masked reconstruction on a folder of NIfTI heads. The face region of each
//! head comes from the same template registration the gateway uses, so the
//! network learns exactly the region it will later fill.
//!
//! With `--adv-weight` > 0 (default 0.01) a conditional multi-scale PatchGAN
//! ([`super::discriminator`]) is trained alongside, alternating one
//! critic step and one generator step per iteration (LSGAN). The critic sees
//! the composite — generated face voxels, real voxels elsewhere in the
//! window — so it judges the face in its context. The generator loss is
//! `masked L1 + adv_weight · adversarial`. `--adv-weight 0` is the plain
//! reconstruction training.
//!
//! This file is the training loop; [`super::run`] drives it for the command.
//! Training only, so it lives in `crate::train`.

use super::discriminator::{self, Discriminator};
use super::heads::Head;
use crate::models::mri::generator::{slice_input, Net};
use anyhow::{bail, Result};
use candle_core::{DType, Device};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// Training settings (the command's, without paths).
#[derive(Debug, Clone)]
pub struct TrainOpts {
    pub iters: usize,
    pub lr: f64,
    pub width: usize,
    /// Window side; rounded up to a multiple of 4 (of 8 with the critic).
    pub patch: usize,
    pub seed: u64,
    pub adv_weight: f64,
    pub d_width: usize,
}

impl TrainOpts {
    /// The window side actually used.
    pub fn patch(&self) -> usize {
        let m = if self.adv_weight > 0.0 {
            discriminator::window_multiple()
        } else {
            4
        };
        self.patch.div_ceil(m) * m
    }
}

/// Losses at the end of training: means over the last [`TAIL`] iterations.
#[derive(Debug, Clone, Default)]
pub struct TrainReport {
    pub first_l1: f64,
    pub l1: f64,
    /// Generator adversarial loss (LSGAN, summed over both scales).
    pub g_adv: Option<f64>,
    /// Critic loss (LSGAN, ½·sum over both scales).
    pub d: Option<f64>,
    pub secs_per_iter: f64,
}

/// Iterations averaged for the final losses.
pub const TAIL: usize = 10;

fn ema(avg: &mut f64, it: usize, v: f64) {
    *avg = if it == 0 { v } else { 0.95 * *avg + 0.05 * v };
}

/// Mean of the last [`TAIL`] values.
fn tail_mean(v: &[f64]) -> f64 {
    let t = &v[v.len().saturating_sub(TAIL)..];
    t.iter().sum::<f64>() / t.len().max(1) as f64
}

/// Train a generator on `heads`; returns its variables and the losses.
/// Logs one line every 10 iterations and at the last one.
pub fn train(heads: &[Head], o: &TrainOpts, dev: &Device) -> Result<(VarMap, TrainReport)> {
    if heads.is_empty() {
        bail!("no training heads");
    }
    let patch = o.patch();
    let vm = VarMap::new();
    let net = Net::new(VarBuilder::from_varmap(&vm, DType::F32, dev), o.width)?;
    let mut opt = AdamW::new(
        vm.all_vars(),
        ParamsAdamW {
            lr: o.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let adv = o.adv_weight > 0.0;
    let dvm = VarMap::new();
    let critic = if adv {
        Some(Discriminator::new(
            VarBuilder::from_varmap(&dvm, DType::F32, dev),
            o.d_width,
        )?)
    } else {
        None
    };
    let mut dopt = AdamW::new(
        dvm.all_vars(),
        ParamsAdamW {
            lr: o.lr,
            beta1: 0.5,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(o.seed);
    let mut rep = TrainReport::default();
    let (mut l1_avg, mut ga_avg, mut d_avg) = (0.0f64, 0.0f64, 0.0f64);
    let (mut l1s, mut gas, mut ds) = (Vec::new(), Vec::new(), Vec::new());
    let t0 = Instant::now();
    for it in 0..o.iters {
        let h = &heads[rng.gen_range(0..heads.len())];
        let (k, i0, j0) = h.windows[rng.gen_range(0..h.windows.len())];
        let (x, target, m) = slice_input(&h.vol, &h.face, h.scale, k, (i0, j0, patch, patch), dev)?;
        let pred = net.forward(&x)?;
        // masked L1: only the hidden face is reconstructed
        let l1 = ((pred.sub(&target)?.abs()? * &m)?.sum_all()? / (m.sum_all()? + 1.0)?)?;
        let l = l1.to_scalar::<f32>()? as f64;
        if it == 0 {
            rep.first_l1 = l;
        }
        ema(&mut l1_avg, it, l);
        l1s.push(l);
        let mut line = format!("iter {it}: masked L1 {l:.4} (avg {l1_avg:.4})");
        let loss = match &critic {
            None => l1,
            Some(critic) => {
                // The composite: generated face, real voxels around it.
                let composite = ((&pred * &m)? + (&target * m.affine(-1.0, 1.0)?)?)?;
                let w = discriminator::patch_weights(&m)?;
                // Critic step on the real slice and the detached composite.
                let real = critic.forward(&x, &target)?;
                let fake = critic.forward(&x, &composite.detach())?;
                let dl = discriminator::d_loss(&real, &fake, &w)?;
                let dv = dl.to_scalar::<f32>()? as f64;
                dopt.backward_step(&dl)?;
                // Generator step against the updated critic.
                let ga = discriminator::g_loss(&critic.forward(&x, &composite)?, &w)?;
                let gv = ga.to_scalar::<f32>()? as f64;
                ema(&mut ga_avg, it, gv);
                ema(&mut d_avg, it, dv);
                gas.push(gv);
                ds.push(dv);
                line += &format!("; G adv {gv:.4} (avg {ga_avg:.4}); D {dv:.4} (avg {d_avg:.4})");
                (l1 + ga.affine(o.adv_weight, 0.0)?)?
            }
        };
        opt.backward_step(&loss)?;
        if it % 10 == 0 || it + 1 == o.iters {
            eprintln!("{line}");
        }
    }
    rep.l1 = tail_mean(&l1s);
    if adv {
        rep.g_adv = Some(tail_mean(&gas));
        rep.d = Some(tail_mean(&ds));
    }
    rep.secs_per_iter = t0.elapsed().as_secs_f64() / o.iters.max(1) as f64;
    eprintln!(
        "trained {} iterations in {:.1} s ({:.0} ms per iteration)",
        o.iters,
        rep.secs_per_iter * o.iters as f64,
        rep.secs_per_iter * 1e3
    );
    Ok((vm, rep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::mri::generator::{GenConfig, Generator, CONFIG, CONTEXT, WEIGHTS};
    use crate::models::mri::Volume;

    /// A synthetic head: a bright ball on a 2 mm grid, its front quarter
    /// marked as the face.
    fn ball(seed: u64) -> Head {
        let (n, nk) = (40usize, 10usize);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut data = vec![0f32; n * n * nk];
        let mut face = vec![false; n * n * nk];
        for k in 0..nk {
            for j in 0..n {
                for i in 0..n {
                    let (x, y) = (i as f32 - 20.0, j as f32 - 20.0);
                    let g = i + n * (j + n * k);
                    if x * x + y * y < 225.0 {
                        data[g] = 100.0 + rng.gen_range(0.0..20.0);
                        face[g] = j < 12;
                    }
                }
            }
        }
        let vol = Volume {
            dims: [n, n, nk],
            data,
            affine: [
                [2.0, 0.0, 0.0, 0.0],
                [0.0, 2.0, 0.0, 0.0],
                [0.0, 0.0, 2.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
        };
        Head::new(vol, face, 24).expect("face slices")
    }

    #[test]
    fn mri_training_with_the_adversarial_term_saves_a_loadable_generator() {
        let dev = Device::Cpu;
        let heads = vec![ball(1), ball(2)];
        let opts = TrainOpts {
            iters: 4,
            lr: 1e-3,
            width: 4,
            patch: 20,
            seed: 0,
            adv_weight: 0.5,
            d_width: 4,
        };
        assert_eq!(opts.patch(), 24);
        let (vm, rep) = train(&heads, &opts, &dev).unwrap();
        assert!(rep.l1.is_finite() && rep.first_l1 > 0.0, "{rep:?}");
        assert!(rep.g_adv.is_some_and(f64::is_finite), "{rep:?}");
        assert!(rep.d.is_some_and(|d| d.is_finite() && d > 0.0), "{rep:?}");
        // Only the generator's variables are saved, and they load.
        let dir = tempfile::tempdir().unwrap();
        vm.save(dir.path().join(WEIGHTS)).unwrap();
        let cfg = GenConfig {
            context: CONTEXT,
            width: 4,
            trained_iters: 4,
            trained_heads: 2,
            adv_weight: 0.5,
        };
        std::fs::write(dir.path().join(CONFIG), serde_json::to_vec(&cfg).unwrap()).unwrap();
        let g = Generator::load(dir.path(), &dev).unwrap();
        let out = g.generate(&heads[0].vol, &heads[0].face).unwrap();
        assert_eq!(out.len(), heads[0].vol.data.len());
        // Without the critic: reconstruction only, no adversarial numbers.
        let plain = TrainOpts {
            adv_weight: 0.0,
            patch: 22,
            ..opts
        };
        assert_eq!(plain.patch(), 24);
        let (_, rep) = train(&heads, &plain, &dev).unwrap();
        assert!(rep.g_adv.is_none() && rep.d.is_none() && rep.l1.is_finite());
    }
}
