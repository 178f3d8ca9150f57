//! Chest radiograph de-identification with a learned deformation field
//! (PriCheXy-Net, Packhäuser et al., MICCAI 2023), in Candle.
//!
//! A U-Net ([`unet`]) predicts a small displacement field whose magnitude is
//! bounded by μ and which is Gaussian-smoothed ([`warp`]); the image is
//! resampled along it. The field is trained against a patient
//! re-identification network ([`siamese`]) while an abnormality classifier
//! ([`classifier`]) keeps the image useful ([`train`], [`protocol`]). The
//! gateway only needs [`ChestDeformer`]; it applies the field at native
//! resolution itself (`crate::pipeline::chest::geometry`).

pub mod bench;
pub mod classifier;
pub mod config;
pub mod data;
pub mod deformer;
pub mod elastic;
mod layers;
pub mod metrics;
pub mod protocol;
pub mod siamese;
pub mod train;
pub mod unet;
pub mod warp;

pub use config::ChestConfig;
pub use deformer::ChestDeformer;

/// `cpu` or `cuda` (the latter needs the `cuda` cargo feature).
pub fn device(name: &str) -> anyhow::Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" => Ok(candle_core::Device::new_cuda(0)?),
        "auto" => Ok(candle_core::Device::cuda_if_available(0)?),
        other => anyhow::bail!("unknown device {other:?} (cpu, cuda or auto)"),
    }
}
