//! The frozen medical-semantics encoder: a face crop to a coarse spatial
//! feature map (`size / 8`) that tells the decoder where things are and what
//! they look like locally, not who the face is.
//!
//! Frozen means two things, both enforced by the caller ([`super::MedSem`]):
//! its variables live in their own `VarMap` that no optimizer sees, and its
//! output is detached, so no gradient reaches it. The paper's encoder carries
//! priors learned from clinician labels; this one is whatever weights the
//! site gives it (`semantics.safetensors`), and a seeded random projection
//! when training starts from nothing.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, VarBuilder};

use super::layers::{conv3, conv_act};

pub struct SemanticEncoder {
    convs: Vec<Conv2d>,
}

impl SemanticEncoder {
    pub fn new(sem_channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            convs: vec![
                conv3(3, 32, 2, vb.pp("conv0"))?,
                conv3(32, 64, 2, vb.pp("conv1"))?,
                conv3(64, sem_channels, 2, vb.pp("conv2"))?,
            ],
        })
    }

    /// `N×3×S×S` to `N×sem_channels×S/8×S/8`, detached from the graph.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut h = xs.clone();
        for c in &self.convs {
            h = conv_act(c, &h)?;
        }
        Ok(h.detach())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn map_is_an_eighth_of_the_crop() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let enc = SemanticEncoder::new(8, vb).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 48, 48), &Device::Cpu).unwrap();
        assert_eq!(enc.forward(&x).unwrap().dims(), &[2, 8, 6, 6]);
    }
}
