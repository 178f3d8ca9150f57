//! One optimisation step of the learned path (see [`super::losses`]).
//!
//! The identity encoder is updated by the reconstruction loss only: if the
//! swap loss could move it too, it would learn to call every decoding "a
//! stranger" instead of the decoder learning to make one. So the swap loss's
//! gradient is kept for the decoder's variables alone.
//!
//! Training only, so it lives in `crate::train`; the networks it updates
//! are in `crate::models::photo::medsem`.

use anyhow::Result;
use candle_core::{backprop::GradStore, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};

use super::losses::{identity_margin, l1, masked_l1};
use crate::models::photo::medsem::identity::normalize;
use crate::models::photo::medsem::model::MedSem;

/// Weights of the three losses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossWeights {
    /// Medical-region L1 (on the replaced decoding), relative to the
    /// reconstruction L1.
    pub medical: f64,
    /// Identity-swap hinge.
    pub identity: f64,
    /// Cosine below which the swapped face counts as another identity.
    pub margin: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self {
            medical: 10.0,
            identity: 1.0,
            margin: 0.3,
        }
    }
}

/// A batch: crops `N×3×S×S` in [-1, 1] and masks `N×1×S×S` (0/1; all 0 when
/// a sample has no mask).
pub struct Batch {
    pub crops: Tensor,
    pub masks: Tensor,
}

/// The losses of one step (before the step's update).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepLosses {
    pub total: f32,
    pub reconstruction: f32,
    pub medical: f32,
    pub swap: f32,
}

pub struct Trainer {
    pub model: MedSem,
    pub weights: LossWeights,
    opt: AdamW,
}

struct Terms {
    /// Reconstruction + weighted medical: gradient to all trainable vars.
    main: Tensor,
    /// Weighted swap: gradient to the decoder's vars only.
    swap: Tensor,
    losses: StepLosses,
}

impl Trainer {
    /// An AdamW optimizer over the identity encoder and the decoder only.
    pub fn new(model: MedSem, lr: f64, weights: LossWeights) -> Result<Self> {
        let mut vars = model.identity_vars.all_vars();
        vars.extend(model.decoder_vars.all_vars());
        let opt = AdamW::new(
            vars,
            ParamsAdamW {
                lr,
                weight_decay: 1e-4,
                ..ParamsAdamW::default()
            },
        )?;
        Ok(Self {
            model,
            weights,
            opt,
        })
    }

    fn terms(&self, b: &Batch) -> Result<Terms> {
        let m = &self.model;
        let n = b.crops.dim(0)?;
        let sem = m.semantics.forward(&b.crops)?;
        let code = m.identity.forward(&b.crops)?;
        let rec = l1(&m.decoder.forward(&sem, &code)?, &b.crops)?;
        // Replacement identities: random points on the code sphere, as in
        // generate mode.
        let other = normalize(&Tensor::randn(0f32, 1.0, (n, m.cfg.id_dim), &m.device)?)?;
        let swapped = m.decoder.forward(&sem, &other)?;
        let med = masked_l1(&swapped, &b.crops, &b.masks)?;
        let swap = identity_margin(
            &m.identity.forward(&swapped)?,
            &code.detach(),
            self.weights.margin,
        )?;
        let main = (&rec + (&med * self.weights.medical)?)?;
        let swap_w = (&swap * self.weights.identity)?;
        let scalar = |t: &Tensor| -> Result<f32> { Ok(t.to_scalar::<f32>()?) };
        let losses = StepLosses {
            total: scalar(&main)? + scalar(&swap_w)?,
            reconstruction: scalar(&rec)?,
            medical: scalar(&med)?,
            swap: scalar(&swap)?,
        };
        Ok(Terms {
            main,
            swap: swap_w,
            losses,
        })
    }

    /// The losses on `b` without updating anything.
    pub fn evaluate(&self, b: &Batch) -> Result<StepLosses> {
        Ok(self.terms(b)?.losses)
    }

    /// One update on `b`; returns the losses before it.
    pub fn step(&mut self, b: &Batch) -> Result<StepLosses> {
        let t = self.terms(b)?;
        let mut grads = t.main.backward()?;
        let swap_grads = t.swap.backward()?;
        add_grads(&mut grads, &swap_grads, &self.model.decoder_vars)?;
        self.opt.step(&grads)?;
        Ok(t.losses)
    }
}

/// `into[v] += from[v]` for the variables of `vars`.
fn add_grads(into: &mut GradStore, from: &GradStore, vars: &VarMap) -> Result<()> {
    for var in vars.all_vars() {
        let t = var.as_tensor();
        if let Some(g) = from.get(t) {
            let sum = match into.get(t) {
                Some(a) => (a + g)?,
                None => g.clone(),
            };
            into.insert(t, sum);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::photo::medsem::MedSemConfig;
    use candle_core::Device;

    /// Four synthetic "faces": a coloured disc on a shaded background, with
    /// the lower half masked as the medical region.
    fn synthetic_batch(dev: &Device) -> Batch {
        let s = 32usize;
        let mut crops = Vec::new();
        let mut masks = Vec::new();
        for k in 0..4 {
            let tint = [0.2 * k as f32 - 0.3, 0.5 - 0.25 * k as f32, 0.1 * k as f32];
            for (c, t) in tint.iter().enumerate() {
                for y in 0..s {
                    for x in 0..s {
                        let (dx, dy) = (x as f32 - 16.0, y as f32 - 16.0);
                        let inside = dx * dx + dy * dy < 100.0;
                        let v = if inside { *t } else { -0.5 + 0.02 * y as f32 };
                        crops.push(v + 0.05 * c as f32);
                    }
                }
            }
            for y in 0..s {
                for _ in 0..s {
                    masks.push(if y >= 20 { 1.0f32 } else { 0.0 });
                }
            }
        }
        Batch {
            crops: Tensor::from_vec(crops, (4, 3, s, s), dev).unwrap(),
            masks: Tensor::from_vec(masks, (4, 1, s, s), dev).unwrap(),
        }
    }

    fn snapshot(vars: &VarMap) -> Vec<(String, Vec<f32>)> {
        let mut v: Vec<_> = vars
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn frozen_encoder_does_not_change_and_the_others_do() {
        let dev = Device::Cpu;
        let model = MedSem::new(MedSemConfig::tiny(), &dev).unwrap();
        let sem_before = snapshot(&model.semantics_vars);
        let dec_before = snapshot(&model.decoder_vars);
        let id_before = snapshot(&model.identity_vars);
        let mut t = Trainer::new(model, 1e-3, LossWeights::default()).unwrap();
        t.step(&synthetic_batch(&dev)).unwrap();
        assert_eq!(snapshot(&t.model.semantics_vars), sem_before);
        assert_ne!(snapshot(&t.model.decoder_vars), dec_before);
        assert_ne!(snapshot(&t.model.identity_vars), id_before);
    }

    #[test]
    fn a_few_steps_lower_the_loss() {
        let dev = Device::Cpu;
        let b = synthetic_batch(&dev);
        let mut t = Trainer::new(
            MedSem::new(MedSemConfig::tiny(), &dev).unwrap(),
            3e-3,
            LossWeights::default(),
        )
        .unwrap();
        // Reconstruction and medical terms do not depend on the random
        // replacement codes' luck as much as the swap hinge does.
        let fit = |l: StepLosses| l.reconstruction + 10.0 * l.medical;
        let before = fit(t.evaluate(&b).unwrap());
        for _ in 0..25 {
            t.step(&b).unwrap();
        }
        let after = fit(t.evaluate(&b).unwrap());
        assert!(after < 0.7 * before, "loss {before} -> {after}");
    }
}
