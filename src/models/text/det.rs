//! PP-OCRv4 mobile text detector (DBNet, Liao et al. 2020), as PaddleOCR
//! ships it in `ch_PP-OCRv4_det_infer.onnx`:
//!
//! - **Backbone** PPLCNetV3 in its re-parameterised inference form: a 3×3/2
//!   stem conv with BatchNorm, then 14 blocks of depthwise conv → pointwise
//!   conv. Every conv is followed by a "learnable affine" (scalar scale and
//!   bias, `lab`); every stride-1 conv also by hard-swish and a second
//!   affine (`act_lab`). Blocks 10 and 11 carry a squeeze-excite. Features
//!   are tapped after blocks 2, 4, 9 and 13 (strides 4, 8, 16, 32) and
//!   projected by 1×1 convs (`layer_list`).
//! - **Neck** RSE-FPN: per level a conv + residual squeeze-excite to 96
//!   channels, a top-down nearest-×2 sum, then per level a 3×3 conv +
//!   residual SE to 24 channels, upsampled to stride 4 and concatenated.
//! - **Head** DB binarisation branch: 3×3 conv + BN + ReLU, two 2×2/2
//!   transposed convs (the first with BN + ReLU), sigmoid. Output: a text
//!   probability map at input resolution.
//!
//! Tensor names are those written by `scripts/fetch-text-weights.sh`, which
//! checks the ONNX graph against this structure while converting. Scalar
//! affines and BatchNorm are folded into the conv weights at load time.
//!
//! Every conv (dense, depthwise, transposed) is a shared
//! [`crate::models::ops::Conv`], run on the CPU's NHWC path; squeeze-excite
//! and the element-wise parts are plain loops over the same NHWC maps. The
//! network takes and returns channel-major [`Fmap`]s.

use std::path::Path;

use anyhow::{ensure, Result};
use candle_core::Device;
use rayon::prelude::*;

use super::fmap::Fmap;
use super::lcnet::Lcnet;
use super::lifted::Lifted;
use super::se::SqueezeExcite;
use super::weights::Weights;
use crate::models::ops::nhwc::{concat_channels, Nhwc};
use crate::models::ops::{Act, Conv};

/// Stride of each backbone block's depthwise conv.
const STRIDES: [usize; 14] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 2, 1, 1, 1];
/// Blocks whose outputs feed the neck (strides 4, 8, 16, 32).
const TAPS: [usize; 4] = [2, 4, 9, 13];
/// Hard-sigmoid slope of the neck's RSE layers (offset 0.5).
const SE_SLOPE_NECK: f32 = 0.2;

/// Conv (no bias) + residual squeeze-excite: one level of the RSE-FPN.
struct RseLayer {
    conv: Conv,
    se: SqueezeExcite,
}

impl RseLayer {
    fn load(ws: &Weights, name: &str) -> Result<Self> {
        Ok(Self {
            conv: ws.conv(&format!("{name}.conv"), 1, false, None, None, Act::None)?,
            se: SqueezeExcite::load(ws, &format!("{name}.se"), SE_SLOPE_NECK, true)?,
        })
    }

    fn forward(&self, x: &Nhwc) -> Result<Nhwc> {
        let mut y = self.conv.forward_nhwc(x)?;
        self.se.forward(&mut y)?;
        Ok(y)
    }
}

fn upsample_nearest(x: &Nhwc, f: usize) -> Nhwc {
    if f == 1 {
        return x.clone();
    }
    let (oh, ow, c) = (x.h * f, x.w * f, x.c);
    let mut data = vec![0.0f32; x.n * oh * ow * c];
    data.par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(ny, out)| {
            let (b, oy) = (ny / oh, ny % oh);
            let src = &x.data[((b * x.h + oy / f) * x.w) * c..((b * x.h + oy / f + 1) * x.w) * c];
            for (ox, o) in out.chunks_exact_mut(c).enumerate() {
                o.copy_from_slice(&src[(ox / f) * c..(ox / f + 1) * c]);
            }
        });
    Nhwc::new(x.n, oh, ow, c, data)
}

fn add_into(dst: &mut Nhwc, src: &Nhwc) -> Result<()> {
    ensure!(
        (dst.n, dst.c, dst.h, dst.w) == (src.n, src.c, src.h, src.w),
        "shape mismatch in add"
    );
    dst.data
        .iter_mut()
        .zip(&src.data)
        .for_each(|(d, s)| *d += s);
    Ok(())
}

/// The detection network: a normalised BGR image (3×H×W, H and W multiples
/// of 32) in, a 1×H×W text probability map out.
pub struct DbNet {
    backbone: Lcnet,
    layer_list: Vec<Conv>,
    ins_conv: Vec<RseLayer>,
    inp_conv: Vec<RseLayer>,
    head_conv: Conv,
    head_up1: Conv,
    head_up2: Conv,
    /// The stride-4 end split so that no upsampled map is built (`None`:
    /// the plain forward, for the candle reference).
    lifted: Option<Lifted>,
}

impl DbNet {
    /// Loads `ppocr_det.safetensors` as written by `scripts/fetch-text-weights.sh`.
    /// The network runs on the CPU's NHWC convolution path whatever the
    /// device (`device` is accepted for the callers' sake: every op but the
    /// convolutions is a host loop, so a CUDA run would copy every layer).
    pub fn load(path: &Path, _device: &Device) -> Result<Self> {
        let ws = Weights::load(path)?;
        let strides: Vec<(usize, usize)> = STRIDES.iter().map(|&s| (s, s)).collect();
        let backbone = Lcnet::load(&ws, &strides)?;
        let level = |prefix: &str| -> Result<Vec<RseLayer>> {
            (0..4)
                .map(|j| RseLayer::load(&ws, &format!("{prefix}.{j}")))
                .collect()
        };
        let layer_list = (0..4)
            .map(|j| {
                ws.conv(
                    &format!("backbone.layer_list.{j}"),
                    1,
                    false,
                    None,
                    None,
                    Act::None,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            backbone,
            layer_list,
            ins_conv: level("neck.ins_conv")?,
            inp_conv: level("neck.inp_conv")?,
            head_conv: ws.conv("head.conv1", 1, false, Some("head.bn1"), None, Act::Relu)?,
            head_up1: ws.up("head.conv2", Some("head.bn2"), Act::Relu)?,
            head_up2: ws.up("head.conv3", None, Act::Sigmoid)?,
            lifted: Some(Lifted::load(&ws)?),
        })
    }

    /// The same network with every conv on candle's own ops (for tests that
    /// check the fast path against candle).
    pub fn candle_reference(self) -> Self {
        let rse = |l: RseLayer| RseLayer {
            conv: l.conv.candle_reference(),
            se: l.se,
        };
        Self {
            backbone: self.backbone.candle_reference(),
            layer_list: self
                .layer_list
                .into_iter()
                .map(Conv::candle_reference)
                .collect(),
            ins_conv: self.ins_conv.into_iter().map(rse).collect(),
            inp_conv: self.inp_conv.into_iter().map(rse).collect(),
            head_conv: self.head_conv.candle_reference(),
            head_up1: self.head_up1.candle_reference(),
            head_up2: self.head_up2.candle_reference(),
            lifted: None,
        }
    }

    /// The same network with the stride-4 end built as the graph has it
    /// (every upsampled map), on the fast convs (for tests and timing).
    pub fn without_lifting(mut self) -> Self {
        self.lifted = None;
        self
    }

    /// Text probability (1×H×W) for a normalised 3×H×W input.
    pub fn forward(&self, x: &Fmap) -> Result<Fmap> {
        ensure!(x.c == 3, "3-channel input expected");
        ensure!(
            x.h.is_multiple_of(32) && x.w.is_multiple_of(32) && x.h > 0 && x.w > 0,
            "input sides must be positive multiples of 32, got {}×{}",
            x.w,
            x.h
        );
        let mut feats = Vec::with_capacity(4);
        self.backbone.forward(&x.to_nhwc(), |i, x| {
            if TAPS.contains(&i) {
                feats.push(self.layer_list[feats.len()].forward_nhwc(x)?);
            }
            Ok(())
        })?;
        let y = match &self.lifted {
            Some(lifted) => self.neck_head_lifted(lifted, &feats)?,
            None => self.neck_head_plain(&feats)?,
        };
        let y = self.head_up1.forward_nhwc(&y)?;
        Ok(Fmap::from_nhwc(&self.head_up2.forward_nhwc(&y)?))
    }

    /// Neck and the head's first conv, as the graph has them: every
    /// upsampled map built.
    fn neck_head_plain(&self, feats: &[Nhwc]) -> Result<Nhwc> {
        let ps = self.level_outputs(&self.top_down(feats, 0)?, 0)?;
        // Concatenate [p5↑8, p4↑4, p3↑2, p2] along channels.
        let ups: Vec<Nhwc> = (0..4)
            .rev()
            .map(|j| upsample_nearest(&ps[j], 1 << j))
            .collect();
        for up in &ups {
            ensure!(
                (up.h, up.w) == (ps[0].h, ps[0].w),
                "FPN level sizes disagree"
            );
        }
        let cat = concat_channels(&ups.iter().collect::<Vec<_>>())?;
        Ok(self.head_conv.forward_nhwc(&cat)?)
    }

    /// The same through [`Lifted`]: levels 3 to 1 as above, level 0 and the
    /// head's first conv without building the stride-4 maps.
    fn neck_head_lifted(&self, lifted: &Lifted, feats: &[Nhwc]) -> Result<Nhwc> {
        let ins = self.top_down(feats, 1)?;
        let mut p2 = lifted.level0(&self.ins_conv[0].se, &feats[0], &ins[0])?;
        self.inp_conv[0].se.forward(&mut p2)?;
        let ps = self.level_outputs(&ins, 1)?;
        lifted.head(&p2, [&ps[2], &ps[1], &ps[0]])
    }

    /// Levels `from..4` of the top-down sum: each level's conv and
    /// squeeze-excite, plus the level above it upsampled ×2.
    fn top_down(&self, feats: &[Nhwc], from: usize) -> Result<Vec<Nhwc>> {
        ensure!(feats.len() == 4, "four feature levels expected");
        let mut ins: Vec<Nhwc> = feats[from..]
            .iter()
            .zip(&self.ins_conv[from..])
            .map(|(f, l)| l.forward(f))
            .collect::<Result<_>>()?;
        for j in (0..ins.len() - 1).rev() {
            let up = upsample_nearest(&ins[j + 1], 2);
            add_into(&mut ins[j], &up)?;
        }
        Ok(ins)
    }

    /// The 24-channel outputs of levels `from..` (`ins` from [`Self::top_down`]).
    fn level_outputs(&self, ins: &[Nhwc], from: usize) -> Result<Vec<Nhwc>> {
        ins.iter()
            .zip(&self.inp_conv[from..])
            .map(|(f, l)| l.forward(f))
            .collect()
    }
}
