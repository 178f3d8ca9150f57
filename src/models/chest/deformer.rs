//! The runtime API the gateway's chest route calls: load the generator,
//! produce the bounded displacement for one image at the model size.

use super::config::ChestConfig;
use super::unet::{UNet, UNetInference};
use super::warp;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::Path;

/// A trained PriCheXy-Net generator, ready for inference.
pub struct ChestDeformer {
    /// The mapped weights: the trainable form is built from them only when
    /// evaluation code asks ([`unet`](Self::unet)), so the gateway holds
    /// one copy.
    vb: VarBuilder<'static>,
    /// The same weights with batch norm folded, on the shared fast path.
    fast: UNetInference,
    cfg: ChestConfig,
    device: Device,
}

impl ChestDeformer {
    /// Loads models/chest/{config.json,generator.safetensors}; Err if absent.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Self::load_on(dir, &Device::Cpu)
    }

    /// As [`load`](Self::load), on a chosen device (e.g. CUDA).
    pub fn load_on(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let cfg = ChestConfig::read(&dir.join("config.json"))?;
        let weights = dir.join("generator.safetensors");
        anyhow::ensure!(
            weights.is_file(),
            "chest model: {} is missing (no trained weights)",
            weights.display()
        );
        // SAFETY: the weights file is opened read-only and not modified while mapped.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device)? };
        let mismatch = |e: candle_core::Error| {
            anyhow::anyhow!(
                "chest model: {} does not match config.json: {e}",
                weights.display()
            )
        };
        let fast = UNetInference::new(vb.clone(), cfg.base_width).map_err(mismatch)?;
        Ok(Self {
            vb,
            fast,
            cfg,
            device: device.clone(),
        })
    }

    /// Side of the square model input.
    pub fn input_size(&self) -> usize {
        self.cfg.input_size
    }

    /// Bound on each displacement component (normalized grid units).
    pub fn mu(&self) -> f32 {
        self.cfg.mu
    }

    pub fn config(&self) -> &ChestConfig {
        &self.cfg
    }

    /// img: input_size×input_size row-major, values in [0,1] (MONOCHROME2 sense).
    /// Returns the smoothed displacement (dx, dy) in normalized grid units ([-1,1] spans the image),
    /// each input_size×input_size row-major, with |d| <= mu.
    pub fn displacement(&self, img: &[f32]) -> anyhow::Result<[Vec<f32>; 2]> {
        let s = self.cfg.input_size;
        anyhow::ensure!(
            img.len() == s * s,
            "chest model: image has {} values, expected {s}×{s}",
            img.len()
        );
        let x = Tensor::from_slice(img, (1, 1, s, s), &self.device)?.clamp(0f32, 1f32)?;
        let t = self.fast.forward(&x)?;
        let d = warp::displacement(&t, self.cfg.mu as f64)?;
        let d = d.clamp(-self.cfg.mu, self.cfg.mu)?; // rounding insurance only
        let dx = d.get(0)?.get(0)?.flatten_all()?.to_vec1()?;
        let dy = d.get(0)?.get(1)?.flatten_all()?.to_vec1()?;
        Ok([dx, dy])
    }

    /// The trainable generator, built from the mapped weights on each call
    /// (evaluation code that batches on tensors; the gateway never calls it).
    pub fn unet(&self) -> anyhow::Result<UNet> {
        Ok(UNet::new(self.vb.clone(), self.cfg.base_width)?)
    }

    /// The generator as the gateway runs it (folded, fast CPU path).
    pub fn inference_net(&self) -> &UNetInference {
        &self.fast
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    fn save_random(dir: &Path, mu: f32, size: usize) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        UNet::new(vb, 4).unwrap();
        vm.save(dir.join("generator.safetensors")).unwrap();
        ChestConfig::new(mu, size, 4)
            .write(&dir.join("config.json"))
            .unwrap();
    }

    #[test]
    fn load_round_trip_and_bound() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            ChestDeformer::load(dir.path()).is_err(),
            "absent weights must fail"
        );
        save_random(dir.path(), 0.01, 32);
        let m = ChestDeformer::load(dir.path()).unwrap();
        assert_eq!((m.input_size(), m.mu()), (32, 0.01));
        for seed in 0..3u64 {
            let img: Vec<f32> = (0..32 * 32)
                .map(|i| ((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 1000.0)
                .collect();
            let [dx, dy] = m.displacement(&img).unwrap();
            assert_eq!((dx.len(), dy.len()), (1024, 1024));
            let max = dx.iter().chain(&dy).fold(0f32, |a, v| a.max(v.abs()));
            assert!(max <= 0.01 && max > 0.0, "max |d| = {max}");
        }
        assert!(m.displacement(&[0.0; 10]).is_err());
    }

    #[test]
    fn mismatched_width_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        save_random(dir.path(), 0.01, 32);
        ChestConfig::new(0.01, 32, 8)
            .write(&dir.path().join("config.json"))
            .unwrap();
        assert!(ChestDeformer::load(dir.path()).is_err());
    }
}
