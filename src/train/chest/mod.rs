//! Training and evaluation of the chest deformation model (PriCheXy-Net,
//! `crate::models::chest`): the data sets ([`data`]), the re-identification
//! attacker ([`siamese`]) and abnormality classifier ([`classifier`]) the
//! field is trained against and judged by, the training loops ([`train`]),
//! the full protocol with its metrics ([`protocol`], [`metrics`]), the random
//! elastic baseline ([`elastic`]) and the inference timing of
//! `deidgate eval chest --bench` ([`bench`]). None of it runs in the gateway.

pub mod bench;
pub mod classifier;
pub mod data;
pub mod distill;
pub mod elastic;
mod layers;
pub mod metrics;
pub mod protocol;
pub mod siamese;
pub mod train;

/// `cpu` or `cuda` (the latter needs the `cuda` cargo feature).
pub fn device(name: &str) -> anyhow::Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" => Ok(candle_core::Device::new_cuda(0)?),
        "auto" => Ok(candle_core::Device::cuda_if_available(0)?),
        other => anyhow::bail!("unknown device {other:?} (cpu, cuda or auto)"),
    }
}
