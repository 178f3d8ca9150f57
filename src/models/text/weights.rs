//! [`Weights`]: the tensors `scripts/ppocr_onnx.py` wrote, by name, and the
//! layers built from them with BatchNorm and the scalar "learnable affines"
//! folded into the conv weights (shared by the detector and the recogniser).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor};

use crate::models::ops::{Act, BatchNorm, Conv, ConvSpec, ConvWeights};

const BN_EPS: f32 = 1e-5;

/// The converted tensors, on the CPU, by name.
pub(crate) struct Weights(pub(crate) HashMap<String, Tensor>);

impl Weights {
    /// The safetensors file at `path`, on the CPU.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let map = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("loading {}", path.display()))?;
        Ok(Self(map))
    }

    pub(crate) fn tensor(&self, name: &str) -> Result<Tensor> {
        let t = self
            .0
            .get(name)
            .with_context(|| format!("text model weights lack {name}"))?;
        Ok(t.to_dtype(DType::F32)?)
    }

    pub(crate) fn vec(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.tensor(name)?.flatten_all()?.to_vec1::<f32>()?)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// `[scale, bias]` of a learnable affine.
    pub(crate) fn lab(&self, name: &str) -> Result<(f32, f32)> {
        let v = self.vec(name)?;
        ensure!(v.len() == 2, "{name}: expected [scale, bias]");
        Ok((v[0], v[1]))
    }

    /// An inference BatchNorm (`weight`, `bias`, `mean`, `var`).
    pub(crate) fn bn(&self, name: &str) -> Result<BatchNorm> {
        let t = |s: &str| self.tensor(&format!("{name}.{s}"));
        Ok(BatchNorm::new(
            &t("weight")?,
            &t("bias")?,
            &t("mean")?,
            &t("var")?,
            BN_EPS,
        )?)
    }

    /// `{name}.weight` (+ `{name}.bias` when present), with `bn` and the
    /// scalar affine `lab` folded in.
    pub(crate) fn conv_weights(
        &self,
        name: &str,
        transposed: bool,
        bn: Option<&str>,
        lab: Option<&str>,
    ) -> Result<ConvWeights> {
        let w = self.tensor(&format!("{name}.weight"))?;
        let bias_name = format!("{name}.bias");
        let b = if self.has(&bias_name) {
            Some(self.tensor(&bias_name)?)
        } else {
            None
        };
        let mut cw = if transposed {
            ConvWeights::new_transposed(&w, b.as_ref())?
        } else {
            ConvWeights::new(&w, b.as_ref())?
        };
        if let Some(bn) = bn {
            cw = cw.fold_bn(&self.bn(bn)?)?;
        }
        if let Some(lab) = lab {
            let (s, t) = self.lab(lab)?;
            cw = cw.fold_affine(s, t);
        }
        Ok(cw)
    }

    /// A square conv with padding k/2 (depthwise when its weight has one
    /// input channel per group and `depthwise` is set).
    pub(crate) fn conv(
        &self,
        name: &str,
        stride: usize,
        depthwise: bool,
        bn: Option<&str>,
        lab: Option<&str>,
        act: Act,
    ) -> Result<Conv> {
        let cw = self.conv_weights(name, false, bn, lab)?;
        let [c_out, cin_g, k, k2] = cw.shape;
        ensure!(
            k == k2,
            "{name}: square kernel expected, got {:?}",
            cw.shape
        );
        ensure!(
            !depthwise || cin_g == 1,
            "{name}: depthwise weight shape {:?}",
            cw.shape
        );
        let groups = if depthwise { c_out } else { 1 };
        let spec = ConvSpec::new(stride, k / 2).with_groups(groups);
        Ok(Conv::new(cw, spec, act, &Device::Cpu)?)
    }

    /// A 2×2 / stride-2 transposed conv.
    pub(crate) fn up(&self, name: &str, bn: Option<&str>, act: Act) -> Result<Conv> {
        let cw = self.conv_weights(name, true, bn, None)?;
        ensure!(
            cw.shape[2] == 2 && cw.shape[3] == 2,
            "{name}: 2×2 kernel expected"
        );
        Ok(Conv::new(cw, ConvSpec::new(2, 0), act, &Device::Cpu)?)
    }
}
