//! The three MTCNN networks (Zhang et al. 2016). Layer names match
//! facenet-pytorch's state dicts (`pnet.conv1.weight`, `rnet.dense4.bias`, …)
//! so the converted weights load without renaming.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{conv2d, linear, prelu, Conv2d, Conv2dConfig, Linear, PReLU, VarBuilder};

use crate::models::ops::{flatten_whc, max_pool2d_ceil};

/// Proposal network: fully convolutional, run over every pyramid level.
/// Output cell (y, x) looks at a 12×12 window at stride 2.
pub struct PNet {
    conv1: Conv2d,
    prelu1: PReLU,
    conv2: Conv2d,
    prelu2: PReLU,
    conv3: Conv2d,
    prelu3: PReLU,
    conv4_1: Conv2d,
    conv4_2: Conv2d,
}

fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    vb: VarBuilder,
    name: &str,
) -> candle_core::Result<Conv2d> {
    conv2d(cin, cout, k, Conv2dConfig::default(), vb.pp(name))
}

impl PNet {
    pub fn load(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            conv1: conv(3, 10, 3, vb.clone(), "conv1")?,
            prelu1: prelu(Some(10), vb.pp("prelu1"))?,
            conv2: conv(10, 16, 3, vb.clone(), "conv2")?,
            prelu2: prelu(Some(16), vb.pp("prelu2"))?,
            conv3: conv(16, 32, 3, vb.clone(), "conv3")?,
            prelu3: prelu(Some(32), vb.pp("prelu3"))?,
            conv4_1: conv(32, 2, 1, vb.clone(), "conv4_1")?,
            conv4_2: conv(32, 4, 1, vb, "conv4_2")?,
        })
    }

    /// `(regression N×4×H×W, face probability N×H×W)` for an N×3×h×w input.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let xs = self.prelu1.forward(&self.conv1.forward(xs)?)?;
        let xs = max_pool2d_ceil(&xs, 2, 2)?;
        let xs = self.prelu2.forward(&self.conv2.forward(&xs)?)?;
        let xs = self.prelu3.forward(&self.conv3.forward(&xs)?)?;
        let prob = candle_nn::ops::softmax(&self.conv4_1.forward(&xs)?, 1)?
            .narrow(1, 1, 1)?
            .squeeze(1)?;
        let reg = self.conv4_2.forward(&xs)?;
        Ok((reg, prob))
    }
}

/// Refinement network: scores and regresses 24×24 crops of the proposals.
pub struct RNet {
    conv1: Conv2d,
    prelu1: PReLU,
    conv2: Conv2d,
    prelu2: PReLU,
    conv3: Conv2d,
    prelu3: PReLU,
    dense4: Linear,
    prelu4: PReLU,
    dense5_1: Linear,
    dense5_2: Linear,
}

impl RNet {
    pub fn load(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            conv1: conv(3, 28, 3, vb.clone(), "conv1")?,
            prelu1: prelu(Some(28), vb.pp("prelu1"))?,
            conv2: conv(28, 48, 3, vb.clone(), "conv2")?,
            prelu2: prelu(Some(48), vb.pp("prelu2"))?,
            conv3: conv(48, 64, 2, vb.clone(), "conv3")?,
            prelu3: prelu(Some(64), vb.pp("prelu3"))?,
            dense4: linear(576, 128, vb.pp("dense4"))?,
            prelu4: prelu(Some(128), vb.pp("prelu4"))?,
            dense5_1: linear(128, 2, vb.pp("dense5_1"))?,
            dense5_2: linear(128, 4, vb.pp("dense5_2"))?,
        })
    }

    /// `(regression N×4, face probability N)` for an N×3×24×24 input.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let xs = self.prelu1.forward(&self.conv1.forward(xs)?)?;
        let xs = max_pool2d_ceil(&xs, 3, 2)?;
        let xs = self.prelu2.forward(&self.conv2.forward(&xs)?)?;
        let xs = max_pool2d_ceil(&xs, 3, 2)?;
        let xs = self.prelu3.forward(&self.conv3.forward(&xs)?)?;
        let xs = self
            .prelu4
            .forward(&self.dense4.forward(&flatten_whc(&xs)?)?)?;
        let prob = candle_nn::ops::softmax(&self.dense5_1.forward(&xs)?, 1)?
            .narrow(1, 1, 1)?
            .squeeze(1)?;
        let reg = self.dense5_2.forward(&xs)?;
        Ok((reg, prob))
    }
}

/// Output network: final score, box regression and the 5 landmarks on 48×48
/// crops.
pub struct ONet {
    conv1: Conv2d,
    prelu1: PReLU,
    conv2: Conv2d,
    prelu2: PReLU,
    conv3: Conv2d,
    prelu3: PReLU,
    conv4: Conv2d,
    prelu4: PReLU,
    dense5: Linear,
    prelu5: PReLU,
    dense6_1: Linear,
    dense6_2: Linear,
    dense6_3: Linear,
}

impl ONet {
    pub fn load(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            conv1: conv(3, 32, 3, vb.clone(), "conv1")?,
            prelu1: prelu(Some(32), vb.pp("prelu1"))?,
            conv2: conv(32, 64, 3, vb.clone(), "conv2")?,
            prelu2: prelu(Some(64), vb.pp("prelu2"))?,
            conv3: conv(64, 64, 3, vb.clone(), "conv3")?,
            prelu3: prelu(Some(64), vb.pp("prelu3"))?,
            conv4: conv(64, 128, 2, vb.clone(), "conv4")?,
            prelu4: prelu(Some(128), vb.pp("prelu4"))?,
            dense5: linear(1152, 256, vb.pp("dense5"))?,
            prelu5: prelu(Some(256), vb.pp("prelu5"))?,
            dense6_1: linear(256, 2, vb.pp("dense6_1"))?,
            dense6_2: linear(256, 4, vb.pp("dense6_2"))?,
            dense6_3: linear(256, 10, vb.pp("dense6_3"))?,
        })
    }

    /// `(regression N×4, landmarks N×10 as x1..x5 y1..y5 relative to the
    /// crop, face probability N)` for an N×3×48×48 input.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let xs = self.prelu1.forward(&self.conv1.forward(xs)?)?;
        let xs = max_pool2d_ceil(&xs, 3, 2)?;
        let xs = self.prelu2.forward(&self.conv2.forward(&xs)?)?;
        let xs = max_pool2d_ceil(&xs, 3, 2)?;
        let xs = self.prelu3.forward(&self.conv3.forward(&xs)?)?;
        let xs = max_pool2d_ceil(&xs, 2, 2)?;
        let xs = self.prelu4.forward(&self.conv4.forward(&xs)?)?;
        let xs = self
            .prelu5
            .forward(&self.dense5.forward(&flatten_whc(&xs)?)?)?;
        let prob = candle_nn::ops::softmax(&self.dense6_1.forward(&xs)?, 1)?
            .narrow(1, 1, 1)?
            .squeeze(1)?;
        let reg = self.dense6_2.forward(&xs)?;
        let landmarks = self.dense6_3.forward(&xs)?;
        Ok((reg, landmarks, prob))
    }
}

/// The complete detector: the three networks on one device.
pub struct Mtcnn {
    pub pnet: PNet,
    pub rnet: RNet,
    pub onet: ONet,
    pub device: Device,
}

/// Where `scripts/fetch-weights.sh` writes the converted weights, relative to
/// the repository root.
pub const DEFAULT_WEIGHTS: &str = "models/photo/mtcnn.safetensors";

impl Mtcnn {
    /// Load the three networks from one safetensors file with `pnet.*`,
    /// `rnet.*` and `onet.*` tensors (as written by `scripts/fetch-weights.sh`).
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        if !path.is_file() {
            bail!(
                "MTCNN weights not found at {}: run scripts/fetch-weights.sh \
                 (downloads facenet-pytorch 2.6.0, MIT, and converts its weights)",
                path.display()
            );
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)
            .with_context(|| format!("parsing {} as safetensors", path.display()))?;
        let what = |net: &str| {
            format!(
                "loading {net} from {} (re-run scripts/fetch-weights.sh if the file is stale)",
                path.display()
            )
        };
        Ok(Self {
            pnet: PNet::load(vb.pp("pnet")).with_context(|| what("pnet"))?,
            rnet: RNet::load(vb.pp("rnet")).with_context(|| what("rnet"))?,
            onet: ONet::load(vb.pp("onet")).with_context(|| what("onet"))?,
            device: device.clone(),
        })
    }
}
