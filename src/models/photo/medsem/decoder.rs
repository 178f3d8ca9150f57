//! Decoder: renders a face crop from a semantic map and an identity code.
//!
//! The semantic map fixes the layout; the identity code enters every stage
//! as a per-channel scale and shift (FiLM), so changing the code changes the
//! whole face's appearance while the layout stays.

use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, Conv2d, Linear, VarBuilder};

use super::config::MedSemConfig;
use super::layers::{act, conv3};

/// One ×2 stage: modulate by the code, upsample, convolve.
struct Stage {
    film: Linear,
    conv: Conv2d,
}

pub struct Decoder {
    stem: Conv2d,
    stages: Vec<Stage>,
    out: Conv2d,
}

impl Decoder {
    pub fn new(cfg: &MedSemConfig, vb: VarBuilder) -> Result<Self> {
        let mut c = cfg.width;
        let stem = conv3(cfg.sem_channels, c, 1, vb.pp("stem"))?;
        let mut stages = Vec::new();
        for i in 0..3 {
            let next = (c / 2).max(16);
            stages.push(Stage {
                film: linear(cfg.id_dim, 2 * c, vb.pp(format!("film{i}")))?,
                conv: conv3(c, next, 1, vb.pp(format!("up{i}")))?,
            });
            c = next;
        }
        Ok(Self {
            stem,
            stages,
            out: conv3(c, 3, 1, vb.pp("out"))?,
        })
    }

    /// `sem`: `N×C×S/8×S/8`, `code`: `N×id_dim` to an `N×3×S×S` crop in
    /// [-1, 1].
    pub fn forward(&self, sem: &Tensor, code: &Tensor) -> Result<Tensor> {
        let mut h = act(&self.stem.forward(sem)?)?;
        for s in &self.stages {
            let c = h.dim(1)?;
            let film = s.film.forward(code)?.unsqueeze(2)?.unsqueeze(3)?;
            let scale = (film.narrow(1, 0, c)? + 1.0)?;
            let shift = film.narrow(1, c, c)?;
            h = h.broadcast_mul(&scale)?.broadcast_add(&shift)?;
            let (hh, ww) = (h.dim(2)?, h.dim(3)?);
            h = act(&s.conv.forward(&h.upsample_nearest2d(2 * hh, 2 * ww)?)?)?;
        }
        self.out.forward(&h)?.tanh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn renders_the_full_crop() {
        let cfg = MedSemConfig::tiny();
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let dec = Decoder::new(&cfg, vb).unwrap();
        let sem = Tensor::randn(0f32, 1.0, (2, 4, 4, 4), &Device::Cpu).unwrap();
        let z = Tensor::randn(0f32, 1.0, (2, 8), &Device::Cpu).unwrap();
        let y = dec.forward(&sem, &z).unwrap();
        assert_eq!(y.dims(), &[2, 3, 32, 32]);
        let m: f32 = y.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(m <= 1.0);
    }
}
