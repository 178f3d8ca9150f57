//! Generate mode: a conditional multi-scale generator in candle.
//!
//! Design: **2.5-D**. Candle has no conv3d, so each output slice (along the
//! volume's k axis) is predicted by 2-D convolutions whose input channels are
//! the `2·CONTEXT+1` neighbouring slices (face voxels blanked) and their face
//! masks; the through-plane context comes from the channels. The network is
//! a three-scale encoder/decoder (full, 1/2, 1/4 resolution, skip
//! connections), the multi-scale conditioning of Van der Goten et al. in a
//! small size. Its output is used only inside the face region; the rest of
//! the head is the condition and is never altered.
//!
//! Training (`deidgate train mri`) is masked reconstruction: the face region
//! of real heads is hidden and the L1 error of its reconstruction is
//! minimized, plus (`--adv-weight`) an LSGAN term from a multi-scale PatchGAN
//! critic (`crate::train::mri::discriminator`). Without a trained
//! `model.safetensors` the mode refuses.

use super::volume::quantiles;
use super::Volume;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{conv2d, Conv2d, Conv2dConfig, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Neighbouring slices on each side fed as channels.
pub const CONTEXT: usize = 2;
pub const WEIGHTS: &str = "model.safetensors";
pub const CONFIG: &str = "config.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenConfig {
    pub context: usize,
    pub width: usize,
    /// Iterations and heads it was trained on (for the model card).
    pub trained_iters: usize,
    pub trained_heads: usize,
    /// Weight of the adversarial term it was trained with (0: L1 only;
    /// absent in configs written before the term existed).
    #[serde(default)]
    pub adv_weight: f64,
}

pub struct Net {
    e1: Conv2d,
    e2: Conv2d,
    e3: Conv2d,
    d2: Conv2d,
    d1: Conv2d,
    out: Conv2d,
}

impl Net {
    pub fn new(vb: VarBuilder, width: usize) -> Result<Self> {
        let c = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let cin = 2 * (2 * CONTEXT + 1);
        let w = width;
        Ok(Self {
            e1: conv2d(cin, w, 3, c, vb.pp("e1"))?,
            e2: conv2d(w, 2 * w, 3, c, vb.pp("e2"))?,
            e3: conv2d(2 * w, 4 * w, 3, c, vb.pp("e3"))?,
            d2: conv2d(4 * w + 2 * w, 2 * w, 3, c, vb.pp("d2"))?,
            d1: conv2d(2 * w + w, w, 3, c, vb.pp("d1"))?,
            out: conv2d(w, 1, 3, c, vb.pp("out"))?,
        })
    }

    /// x: (N, C, H, W) with H, W multiples of 4; returns (N, 1, H, W).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let a = |t: Tensor| -> Result<Tensor> { Ok(candle_nn::ops::leaky_relu(&t, 0.2)?) };
        let f1 = a(self.e1.forward(x)?)?;
        let f2 = a(self.e2.forward(&f1.avg_pool2d(2)?)?)?;
        let f3 = a(self.e3.forward(&f2.avg_pool2d(2)?)?)?;
        let u2 = f3.upsample_nearest2d(h / 2, w / 2)?;
        let g2 = a(self.d2.forward(&Tensor::cat(&[&u2, &f2], 1)?)?)?;
        let u1 = g2.upsample_nearest2d(h, w)?;
        let g1 = a(self.d1.forward(&Tensor::cat(&[&u1, &f1], 1)?)?)?;
        Ok(self.out.forward(&g1)?)
    }
}

/// Intensity scale of a head: its 99th percentile (robust to hot voxels).
pub fn scale_of(vol: &Volume) -> f32 {
    quantiles(&vol.data, &[0.99])[0].max(1e-6)
}

/// Network input for slice `k` over the in-plane window [i0, i0+w) x [j0, j0+h):
/// neighbouring slices (clamped at the ends) with face voxels set to 0, then
/// their masks. Shape (1, C, h, w).
pub fn slice_input(
    vol: &Volume,
    face: &[bool],
    scale: f32,
    k: usize,
    win: (usize, usize, usize, usize),
    dev: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (i0, j0, w, h) = win;
    let nk = vol.dims[2];
    let c = 2 * CONTEXT + 1;
    let mut img = vec![0f32; c * h * w];
    let mut msk = vec![0f32; c * h * w];
    let mut target = vec![0f32; h * w];
    let mut tmask = vec![0f32; h * w];
    for (ci, dk) in (-(CONTEXT as isize)..=CONTEXT as isize).enumerate() {
        let kk = (k as isize + dk).clamp(0, nk as isize - 1) as usize;
        for y in 0..h {
            for x in 0..w {
                let (i, j) = (i0 + x, j0 + y);
                let o = ci * h * w + y * w + x;
                if i >= vol.dims[0] || j >= vol.dims[1] {
                    continue;
                }
                let g = vol.idx(i, j, kk);
                if face[g] {
                    msk[o] = 1.0;
                } else {
                    img[o] = vol.data[g] / scale;
                }
                if dk == 0 {
                    target[y * w + x] = vol.data[g] / scale;
                    tmask[y * w + x] = face[g] as u8 as f32;
                }
            }
        }
    }
    img.extend(msk);
    Ok((
        Tensor::from_vec(img, (1, 2 * c, h, w), dev)?,
        Tensor::from_vec(target, (1, 1, h, w), dev)?,
        Tensor::from_vec(tmask, (1, 1, h, w), dev)?,
    ))
}

pub struct Generator {
    net: Net,
    device: Device,
}

impl Generator {
    /// Load trained weights from `dir`; Err when there are none.
    pub fn load(dir: &Path, dev: &Device) -> Result<Self> {
        let wpath = dir.join(WEIGHTS);
        if !wpath.exists() {
            bail!("no {} in {}", WEIGHTS, dir.display());
        }
        let cfg: GenConfig = serde_json::from_slice(
            &std::fs::read(dir.join(CONFIG)).with_context(|| format!("reading {CONFIG}"))?,
        )?;
        if cfg.context != CONTEXT {
            bail!(
                "generator weights were trained with context {}",
                cfg.context
            );
        }
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[wpath], DType::F32, dev)? };
        Ok(Self {
            net: Net::new(vb, cfg.width)?,
            device: dev.clone(),
        })
    }

    pub fn from_varmap(vm: &VarMap, width: usize, dev: &Device) -> Result<Self> {
        let vb = VarBuilder::from_varmap(vm, DType::F32, dev);
        Ok(Self {
            net: Net::new(vb, width)?,
            device: dev.clone(),
        })
    }

    /// Fill the face region slice by slice; everything else is copied.
    pub fn generate(&self, vol: &Volume, face: &[bool]) -> Result<Vec<f32>> {
        let scale = scale_of(vol);
        let mut out = vol.data.clone();
        let (w, h) = (vol.dims[0].div_ceil(4) * 4, vol.dims[1].div_ceil(4) * 4);
        let plane = vol.dims[0] * vol.dims[1];
        for k in 0..vol.dims[2] {
            if !face[k * plane..(k + 1) * plane].iter().any(|&b| b) {
                continue;
            }
            let (x, _, _) = slice_input(vol, face, scale, k, (0, 0, w, h), &self.device)?;
            let y = self.net.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
            for j in 0..vol.dims[1] {
                for i in 0..vol.dims[0] {
                    let g = vol.idx(i, j, k);
                    if face[g] {
                        out[g] = (y[j * w + i] * scale).max(0.0);
                    }
                }
            }
        }
        Ok(out)
    }
}
