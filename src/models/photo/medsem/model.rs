//! The three networks together, with their weights split the way training
//! needs them: identity encoder and decoder in trainable maps, the semantics
//! encoder in a map no optimizer is given.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};

use super::config::MedSemConfig;
use super::decoder::Decoder;
use super::identity::{normalize, IdentityEncoder};
use super::semantics::SemanticEncoder;

/// Files in a model directory besides `config.json`.
pub const IDENTITY_FILE: &str = "identity.safetensors";
pub const SEMANTICS_FILE: &str = "semantics.safetensors";
pub const DECODER_FILE: &str = "decoder.safetensors";

pub struct MedSem {
    pub cfg: MedSemConfig,
    pub device: Device,
    pub identity: IdentityEncoder,
    pub semantics: SemanticEncoder,
    pub decoder: Decoder,
    pub identity_vars: VarMap,
    pub decoder_vars: VarMap,
    /// The frozen encoder's weights: never handed to an optimizer.
    pub semantics_vars: VarMap,
}

impl MedSem {
    /// Freshly initialised networks (random weights).
    pub fn new(cfg: MedSemConfig, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let (iv, sv, dv) = (VarMap::new(), VarMap::new(), VarMap::new());
        let vb = |m: &VarMap| VarBuilder::from_varmap(m, DType::F32, device);
        Ok(Self {
            identity: IdentityEncoder::new(cfg.id_dim, vb(&iv))?,
            semantics: SemanticEncoder::new(cfg.sem_channels, vb(&sv))?,
            decoder: Decoder::new(&cfg, vb(&dv))?,
            identity_vars: iv,
            decoder_vars: dv,
            semantics_vars: sv,
            cfg,
            device: device.clone(),
        })
    }

    /// Loads `dir/config.json` and the three weight files; every tensor the
    /// networks need must be there with the right shape.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg = MedSemConfig::read(&dir.join("config.json"))?;
        let mut m = Self::new(cfg, device)?;
        for (file, vars) in [
            (IDENTITY_FILE, &mut m.identity_vars),
            (SEMANTICS_FILE, &mut m.semantics_vars),
            (DECODER_FILE, &mut m.decoder_vars),
        ] {
            let path = dir.join(file);
            vars.load(&path)
                .with_context(|| format!("cannot load {}", path.display()))?;
        }
        Ok(m)
    }

    /// Replaces the frozen encoder's weights (a site's pretrained medical
    /// encoder) before training.
    pub fn load_semantics(&mut self, path: &Path) -> Result<()> {
        self.semantics_vars
            .load(path)
            .with_context(|| format!("cannot load {}", path.display()))
    }

    /// Writes `config.json` and the three weight files into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (file, vars) in [
            (IDENTITY_FILE, &self.identity_vars),
            (SEMANTICS_FILE, &self.semantics_vars),
            (DECODER_FILE, &self.decoder_vars),
        ] {
            vars.save(dir.join(file))?;
        }
        self.cfg.write(&dir.join("config.json"))
    }

    /// Decodes `crops` (`N×3×S×S`, [-1, 1]) with the identity `codes`.
    pub fn render(&self, crops: &Tensor, codes: &Tensor) -> Result<Tensor> {
        let sem = self.semantics.forward(crops)?;
        Ok(self.decoder.forward(&sem, codes)?)
    }

    /// `n` random unit identity codes from `seed`: the replacement identity
    /// is a point on the code sphere, reproducible for a replayed instance.
    pub fn seeded_codes(&self, n: usize, seed: u64) -> Result<Tensor> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let d = self.cfg.id_dim;
        // Box-Muller: isotropic directions need Gaussian components.
        let v: Vec<f32> = (0..n * d)
            .map(|_| {
                let (u1, u2): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen());
                (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect();
        Ok(normalize(&Tensor::from_vec(v, (n, d), &self.device)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_render_shape() {
        let m = MedSem::new(MedSemConfig::tiny(), &Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let back = MedSem::load(dir.path(), &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 3, 32, 32), &Device::Cpu).unwrap();
        let z = m.seeded_codes(1, 7).unwrap();
        let a = m.render(&x, &z).unwrap();
        let b = back.render(&x, &z).unwrap();
        assert_eq!(a.dims(), &[1, 3, 32, 32]);
        let d = crate::models::ops::tensor::max_abs_diff(&a, &b);
        assert_eq!(d, 0.0);
    }

    #[test]
    fn load_without_weights_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let e = MedSem::load(dir.path(), &Device::Cpu).err().unwrap();
        assert!(format!("{e:#}").contains("config.json"), "{e:#}");
    }

    #[test]
    fn seeded_codes_repeat() {
        let m = MedSem::new(MedSemConfig::tiny(), &Device::Cpu).unwrap();
        let a: Vec<Vec<f32>> = m.seeded_codes(2, 3).unwrap().to_vec2().unwrap();
        let b: Vec<Vec<f32>> = m.seeded_codes(2, 3).unwrap().to_vec2().unwrap();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
