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

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::models::ops::nhwc::{concat_channels, Nhwc};
use crate::models::ops::{Act, BatchNorm, Conv, ConvSpec, ConvWeights};

/// Stride of each backbone block's depthwise conv.
const STRIDES: [usize; 14] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 2, 1, 1, 1];
/// Blocks whose outputs feed the neck (strides 4, 8, 16, 32).
const TAPS: [usize; 4] = [2, 4, 9, 13];
const BN_EPS: f32 = 1e-5;
/// Hard-sigmoid slopes: Paddle's `hardsigmoid` (1/6) in the backbone SE,
/// slope 0.2 in the neck's RSE layers; both with offset 0.5.
const SE_SLOPE_BACKBONE: f32 = 1.0 / 6.0;
const SE_SLOPE_NECK: f32 = 0.2;

/// A channel-major (C×H×W) f32 feature map of one image.
#[derive(Clone, Debug)]
pub struct Fmap {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Fmap {
    pub fn new(c: usize, h: usize, w: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), c * h * w, "feature map size");
        Self { c, h, w, data }
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    /// The same map in NHWC order (a batch of one).
    fn to_nhwc(&self) -> Nhwc {
        let mut data = vec![0f32; self.data.len()];
        for (ch, plane) in self.data.chunks_exact(self.plane()).enumerate() {
            for (p, v) in plane.iter().enumerate() {
                data[p * self.c + ch] = *v;
            }
        }
        Nhwc::new(1, self.h, self.w, self.c, data)
    }

    fn from_nhwc(x: &Nhwc) -> Self {
        let plane = x.h * x.w;
        let mut data = vec![0f32; x.data.len()];
        for (p, px) in x.data.chunks_exact(x.c).enumerate() {
            for (ch, v) in px.iter().enumerate() {
                data[ch * plane + p] = *v;
            }
        }
        Self::new(x.c, x.h, x.w, data)
    }
}

/// The converted tensors, on the CPU, by name.
struct Weights(HashMap<String, Tensor>);

impl Weights {
    fn tensor(&self, name: &str) -> Result<Tensor> {
        let t = self
            .0
            .get(name)
            .with_context(|| format!("text detector weights lack {name}"))?;
        Ok(t.to_dtype(DType::F32)?)
    }

    fn vec(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.tensor(name)?.flatten_all()?.to_vec1::<f32>()?)
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// `[scale, bias]` of a learnable affine.
    fn lab(&self, name: &str) -> Result<(f32, f32)> {
        let v = self.vec(name)?;
        ensure!(v.len() == 2, "{name}: expected [scale, bias]");
        Ok((v[0], v[1]))
    }

    /// An inference BatchNorm (`weight`, `bias`, `mean`, `var`).
    fn bn(&self, name: &str) -> Result<BatchNorm> {
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
    fn conv_weights(
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
    fn conv(
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
    fn up(&self, name: &str, bn: Option<&str>, act: Act) -> Result<Conv> {
        let cw = self.conv_weights(name, true, bn, None)?;
        ensure!(
            cw.shape[2] == 2 && cw.shape[3] == 2,
            "{name}: 2×2 kernel expected"
        );
        Ok(Conv::new(cw, ConvSpec::new(2, 0), act, &Device::Cpu)?)
    }
}

/// Squeeze-excite: global average → 1×1 conv → ReLU → 1×1 conv →
/// hard-sigmoid; the result scales the channels (`residual`: `x + x·se`).
struct SqueezeExcite {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    c: usize,
    r: usize,
    slope: f32,
    residual: bool,
}

impl SqueezeExcite {
    fn load(ws: &Weights, name: &str, slope: f32, residual: bool) -> Result<Self> {
        let w1 = ws.vec(&format!("{name}.conv1.weight"))?;
        let b1 = ws.vec(&format!("{name}.conv1.bias"))?;
        let w2 = ws.vec(&format!("{name}.conv2.weight"))?;
        let b2 = ws.vec(&format!("{name}.conv2.bias"))?;
        let r = b1.len();
        let c = b2.len();
        ensure!(w1.len() == r * c && w2.len() == r * c, "{name}: SE shapes");
        Ok(Self {
            w1,
            b1,
            w2,
            b2,
            c,
            r,
            slope,
            residual,
        })
    }

    fn forward(&self, x: &mut Nhwc) -> Result<()> {
        ensure!(x.c == self.c, "SE expects {} channels, got {}", self.c, x.c);
        let mut pooled = vec![0f64; self.c];
        for px in x.data.chunks_exact(x.c) {
            pooled.iter_mut().zip(px).for_each(|(s, v)| *s += *v as f64);
        }
        let n = (x.h * x.w) as f64;
        let pooled: Vec<f32> = pooled.iter().map(|s| (s / n) as f32).collect();
        let hidden: Vec<f32> = (0..self.r)
            .map(|o| {
                let row = &self.w1[o * self.c..(o + 1) * self.c];
                (row.iter().zip(&pooled).map(|(w, v)| w * v).sum::<f32>() + self.b1[o]).max(0.0)
            })
            .collect();
        let gates: Vec<f32> = (0..self.c)
            .map(|o| {
                let row = &self.w2[o * self.r..(o + 1) * self.r];
                let z = row.iter().zip(&hidden).map(|(w, v)| w * v).sum::<f32>() + self.b2[o];
                let g = (self.slope * z + 0.5).clamp(0.0, 1.0);
                if self.residual {
                    1.0 + g
                } else {
                    g
                }
            })
            .collect();
        let c = x.c;
        x.data.par_chunks_mut(c * 256).for_each(|rows| {
            for px in rows.chunks_exact_mut(c) {
                px.iter_mut().zip(&gates).for_each(|(v, g)| *v *= g);
            }
        });
        Ok(())
    }
}

struct Block {
    dw: Conv,
    se: Option<SqueezeExcite>,
    pw: Conv,
}

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
    stem: Conv,
    blocks: Vec<Block>,
    layer_list: Vec<Conv>,
    ins_conv: Vec<RseLayer>,
    inp_conv: Vec<RseLayer>,
    head_conv: Conv,
    head_up1: Conv,
    head_up2: Conv,
}

impl DbNet {
    /// Loads `ppocr_det.safetensors` as written by `scripts/fetch-text-weights.sh`.
    /// The network runs on the CPU's NHWC convolution path whatever the
    /// device (`device` is accepted for the callers' sake: every op but the
    /// convolutions is a host loop, so a CUDA run would copy every layer).
    pub fn load(path: &Path, _device: &Device) -> Result<Self> {
        let map = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("loading {}", path.display()))?;
        let ws = Weights(map);
        let stem = ws.conv(
            "backbone.conv1",
            2,
            false,
            Some("backbone.conv1.bn"),
            None,
            Act::None,
        )?;
        let mut blocks = Vec::new();
        for (i, &stride) in STRIDES.iter().enumerate() {
            let p = format!("backbone.blocks.{i}");
            let act_name = format!("{p}.dw.act_lab");
            let dw_act = if ws.has(&act_name) {
                let (scale, shift) = ws.lab(&act_name)?;
                Act::HardSwish { scale, shift }
            } else {
                Act::None
            };
            if matches!(dw_act, Act::None) != (stride == 2) {
                bail!("{p}: weights do not match the expected block strides");
            }
            let se = if ws.has(&format!("{p}.se.conv1.weight")) {
                Some(SqueezeExcite::load(
                    &ws,
                    &format!("{p}.se"),
                    SE_SLOPE_BACKBONE,
                    false,
                )?)
            } else {
                None
            };
            let (scale, shift) = ws.lab(&format!("{p}.pw.act_lab"))?;
            blocks.push(Block {
                dw: ws.conv(
                    &format!("{p}.dw"),
                    stride,
                    true,
                    None,
                    Some(&format!("{p}.dw.lab")),
                    dw_act,
                )?,
                se,
                pw: ws.conv(
                    &format!("{p}.pw"),
                    1,
                    false,
                    None,
                    Some(&format!("{p}.pw.lab")),
                    Act::HardSwish { scale, shift },
                )?,
            });
        }
        ensure!(
            !ws.has(&format!("backbone.blocks.{}.dw.weight", STRIDES.len())),
            "text detector weights have more backbone blocks than expected"
        );
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
            stem,
            blocks,
            layer_list,
            ins_conv: level("neck.ins_conv")?,
            inp_conv: level("neck.inp_conv")?,
            head_conv: ws.conv("head.conv1", 1, false, Some("head.bn1"), None, Act::Relu)?,
            head_up1: ws.up("head.conv2", Some("head.bn2"), Act::Relu)?,
            head_up2: ws.up("head.conv3", None, Act::Sigmoid)?,
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
            stem: self.stem.candle_reference(),
            blocks: self
                .blocks
                .into_iter()
                .map(|b| Block {
                    dw: b.dw.candle_reference(),
                    se: b.se,
                    pw: b.pw.candle_reference(),
                })
                .collect(),
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
        }
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
        let mut x = self.stem.forward_nhwc(&x.to_nhwc())?;
        let mut feats = Vec::with_capacity(4);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.dw.forward_nhwc(&x)?;
            if let Some(se) = &block.se {
                se.forward(&mut x)?;
            }
            x = block.pw.forward_nhwc(&x)?;
            if TAPS.contains(&i) {
                feats.push(self.layer_list[feats.len()].forward_nhwc(&x)?);
            }
        }
        // Top-down: level 3 (stride 32) down to level 0 (stride 4).
        let mut ins: Vec<Nhwc> = feats
            .iter()
            .zip(&self.ins_conv)
            .map(|(f, l)| l.forward(f))
            .collect::<Result<_>>()?;
        for j in (0..3).rev() {
            let up = upsample_nearest(&ins[j + 1], 2);
            add_into(&mut ins[j], &up)?;
        }
        let ps: Vec<Nhwc> = ins
            .iter()
            .zip(&self.inp_conv)
            .map(|(f, l)| l.forward(f))
            .collect::<Result<_>>()?;
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
        let y = self.head_conv.forward_nhwc(&cat)?;
        let y = self.head_up1.forward_nhwc(&y)?;
        Ok(Fmap::from_nhwc(&self.head_up2.forward_nhwc(&y)?))
    }
}
