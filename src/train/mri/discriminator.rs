//! The adversarial critic for training generate mode (`deidgate train mri
//! --adv-weight`): a small conditional multi-scale PatchGAN in candle.
//!
//! Input: the generator's condition channels (the `2·CONTEXT+1` neighbouring
//! slices with the face blanked, then their face masks) plus one candidate
//! centre slice — the real slice, or the composite of the generated face and
//! the real voxels around it. Two critics of the same design judge the
//! window at full and at ½ resolution (avg-pooled), as in the multi-scale
//! discriminators of pix2pixHD and Van der Goten et al. Each is
//! conv 4×4/2 → conv 4×4/2 → conv 3×3/1 with leaky ReLU (no normalization,
//! no spectral norm), so every output value scores one patch (receptive
//! field 18×18 input pixels at full resolution, 36×36 at ½; stride 4 and 8).
//! Losses are least squares (LSGAN), averaged only over the output values
//! whose stride cell (4×4, 8×8 pixels) contains a face voxel.
//!
//! Only used in training; never saved with the generator and never run by
//! the gateway, so it lives in `crate::train` rather than `crate::models`.

use crate::models::mri::generator::CONTEXT;
use anyhow::Result;
use candle_core::{Module, Tensor};
use candle_nn::{conv2d, Conv2d, Conv2dConfig, VarBuilder};

/// Input channels: condition (slices + masks) and the candidate slice.
pub const IN_CHANNELS: usize = 2 * (2 * CONTEXT + 1) + 1;
/// Resolutions judged: full, then each further one halved.
pub const SCALES: usize = 2;
/// Each critic reduces its input by this factor.
pub const REDUCTION: usize = 4;

/// One PatchGAN critic.
pub struct Critic {
    c1: Conv2d,
    c2: Conv2d,
    out: Conv2d,
}

impl Critic {
    pub fn new(vb: VarBuilder, width: usize) -> Result<Self> {
        let down = Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let same = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            c1: conv2d(IN_CHANNELS, width, 4, down, vb.pp("c1"))?,
            c2: conv2d(width, 2 * width, 4, down, vb.pp("c2"))?,
            out: conv2d(2 * width, 1, 3, same, vb.pp("out"))?,
        })
    }

    /// x: (N, IN_CHANNELS, H, W), H and W multiples of 4; (N, 1, H/4, W/4).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = |t: Tensor| -> Result<Tensor> { Ok(candle_nn::ops::leaky_relu(&t, 0.2)?) };
        let h = a(self.c1.forward(x)?)?;
        let h = a(self.c2.forward(&h)?)?;
        Ok(self.out.forward(&h)?)
    }
}

/// The multi-scale conditional discriminator.
pub struct Discriminator {
    critics: Vec<Critic>,
}

/// Side lengths of a training window must be multiples of this.
pub const fn window_multiple() -> usize {
    REDUCTION << (SCALES - 1)
}

impl Discriminator {
    pub fn new(vb: VarBuilder, width: usize) -> Result<Self> {
        let critics = (0..SCALES)
            .map(|s| Critic::new(vb.pp(format!("s{s}")), width))
            .collect::<Result<_>>()?;
        Ok(Self { critics })
    }

    /// Scores per scale for `cond` (N, IN_CHANNELS−1, H, W) and `slice`
    /// (N, 1, H, W); H and W multiples of [`window_multiple`].
    pub fn forward(&self, cond: &Tensor, slice: &Tensor) -> Result<Vec<Tensor>> {
        let mut x = Tensor::cat(&[cond, slice], 1)?;
        let mut out = Vec::with_capacity(self.critics.len());
        for (s, c) in self.critics.iter().enumerate() {
            if s > 0 {
                x = x.avg_pool2d(2)?;
            }
            out.push(c.forward(&x)?);
        }
        Ok(out)
    }
}

/// Per scale, 1 where an output patch covers a face voxel of `mask`
/// (N, 1, H, W), else 0: the losses are averaged over these patches only.
pub fn patch_weights(mask: &Tensor) -> Result<Vec<Tensor>> {
    (0..SCALES)
        .map(|s| Ok(mask.max_pool2d(REDUCTION << s)?))
        .collect()
}

/// Mean of `(score − target)²` over the weighted patches.
fn weighted_sq(score: &Tensor, target: f64, w: &Tensor) -> Result<Tensor> {
    let d = score.affine(1.0, -target)?;
    Ok(((d.sqr()? * w)?.sum_all()? / (w.sum_all()? + 1e-6)?)?)
}

/// LSGAN critic loss: ½·Σ_scales [E(D(real) − 1)² + E D(fake)²].
pub fn d_loss(real: &[Tensor], fake: &[Tensor], w: &[Tensor]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for ((r, f), w) in real.iter().zip(fake).zip(w) {
        let l = (weighted_sq(r, 1.0, w)? + weighted_sq(f, 0.0, w)?)?;
        total = Some(match total {
            Some(t) => (t + l)?,
            None => l,
        });
    }
    Ok(total.expect("at least one scale").affine(0.5, 0.0)?)
}

/// LSGAN generator loss: Σ_scales E(D(fake) − 1)².
pub fn g_loss(fake: &[Tensor], w: &[Tensor]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (f, w) in fake.iter().zip(w) {
        let l = weighted_sq(f, 1.0, w)?;
        total = Some(match total {
            Some(t) => (t + l)?,
            None => l,
        });
    }
    Ok(total.expect("at least one scale"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn mri_discriminator_scores_patches_at_two_scales() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let d = Discriminator::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), 8).unwrap();
        let cond = Tensor::zeros((2, IN_CHANNELS - 1, 32, 24), DType::F32, &dev).unwrap();
        let slice = Tensor::ones((2, 1, 32, 24), DType::F32, &dev).unwrap();
        let s = d.forward(&cond, &slice).unwrap();
        assert_eq!(s[0].dims(), [2, 1, 8, 6]);
        assert_eq!(s[1].dims(), [2, 1, 4, 3]);
        // A face voxel in the top-left corner only: one patch per scale.
        let mut m = vec![0f32; 2 * 32 * 24];
        m[0] = 1.0;
        let m = Tensor::from_vec(m, (2, 1, 32, 24), &dev).unwrap();
        let w = patch_weights(&m).unwrap();
        assert_eq!(w[0].dims(), s[0].dims());
        assert_eq!(w[1].dims(), s[1].dims());
        assert_eq!(w[0].sum_all().unwrap().to_scalar::<f32>().unwrap(), 1.0);
        // Perfect scores give zero loss; the loss is over that patch only.
        let ones: Vec<Tensor> = s.iter().map(|t| t.ones_like().unwrap()).collect();
        let zeros: Vec<Tensor> = s.iter().map(|t| t.zeros_like().unwrap()).collect();
        let v = |t: Tensor| t.to_scalar::<f32>().unwrap();
        assert!(v(d_loss(&ones, &zeros, &w).unwrap()) < 1e-5);
        assert!((v(d_loss(&zeros, &ones, &w).unwrap()) - 2.0).abs() < 1e-3);
        assert!((v(g_loss(&zeros, &w).unwrap()) - 2.0).abs() < 1e-3);
        assert_eq!(window_multiple(), 8);
    }
}
