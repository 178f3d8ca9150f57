//! PP-OCRv4 mobile text recogniser, as PaddleOCR ships it in
//! `ch_PP-OCRv4_rec_infer.onnx` (SVTR-LCNet with a CTC head):
//!
//! - **Backbone** the PPLCNetV3 of the detector ([`super::lcnet`]) with
//!   strides that keep the width: a 48-px-high line becomes 3 rows of
//!   width/4 columns, 480 channels; a 3×2 average pool makes it one row of
//!   width/8 column tokens.
//! - **Neck** SVTR: a 1×3 conv (BN, swish) to 60 channels and a 1×1 to
//!   120; two pre-norm transformer blocks over the tokens
//!   ([`super::svtr`]); a layer norm; a 1×1 conv back to 480,
//!   concatenated with the pooled features; a 1×3 conv to 60 and a 1×1 to
//!   120 (each with BN and swish).
//! - **Head** a linear layer to 6,625 classes per token: CTC's blank, the
//!   6,623 characters of `ppocr_rec_keys.txt`, and a space.
//!
//! Names are those `scripts/ppocr_onnx.py rec` writes; it checks the graph
//! against this structure. Convolutions run on the shared CPU path.

use std::path::Path;

use anyhow::{ensure, Result};
use candle_core::Device;

use super::fmap::Fmap;
use super::lcnet::Lcnet;
use super::svtr::{swish, LayerNorm, Linear, SvtrBlock};
use super::weights::Weights;
use crate::models::ops::nhwc::{concat_channels, Nhwc};
use crate::models::ops::{Act, Conv, ConvSpec};

/// `(height, width)` stride of each backbone block's depthwise conv.
const STRIDES: [(usize, usize); 14] = [
    (1, 1),
    (1, 1),
    (1, 1),
    (2, 1),
    (1, 1),
    (1, 2),
    (1, 1),
    (1, 1),
    (1, 1),
    (1, 1),
    (2, 1),
    (1, 1),
    (2, 1),
    (1, 1),
];
/// Input height the network was trained for.
pub const LINE_HEIGHT: usize = 48;
const SVTR_BLOCKS: usize = 2;
const HEADS: usize = 8;

/// A conv of the neck (no bias, BN folded, no padding: the 1×3 ones get
/// their column of zeros on each side from [`pad_columns`]), then swish.
struct NeckConv {
    conv: Conv,
    pad: usize,
}

impl NeckConv {
    fn load(ws: &Weights, name: &str) -> Result<Self> {
        let cw = ws.conv_weights(name, false, Some(&format!("{name}.bn")), None)?;
        let [_, _, kh, kw] = cw.shape;
        ensure!(kh == 1 && kw % 2 == 1, "{name}: 1×k kernel expected");
        Ok(Self {
            conv: Conv::new(cw, ConvSpec::new(1, 0), Act::None, &Device::Cpu)?,
            pad: kw / 2,
        })
    }

    fn forward(&self, x: &Nhwc) -> Result<Nhwc> {
        let mut y = if self.pad > 0 {
            self.conv.forward_nhwc(&pad_columns(x, self.pad))?
        } else {
            self.conv.forward_nhwc(x)?
        };
        swish(&mut y.data);
        Ok(y)
    }
}

/// `x` with `p` columns of zeros on the left and right.
fn pad_columns(x: &Nhwc, p: usize) -> Nhwc {
    let (w, c) = (x.w + 2 * p, x.c);
    let mut data = vec![0f32; x.n * x.h * w * c];
    for (src, dst) in x
        .data
        .chunks_exact(x.w * c)
        .zip(data.chunks_exact_mut(w * c))
    {
        dst[p * c..(p + x.w) * c].copy_from_slice(src);
    }
    Nhwc::new(x.n, x.h, w, c, data)
}

/// 3×2 average pool, stride 3×2, no padding (floor).
fn avg_pool_3x2(x: &Nhwc) -> Nhwc {
    let (oh, ow, c) = (x.h / 3, x.w / 2, x.c);
    let mut data = vec![0f32; x.n * oh * ow * c];
    for b in 0..x.n {
        for oy in 0..oh {
            for ox in 0..ow {
                let o = ((b * oh + oy) * ow + ox) * c;
                for dy in 0..3 {
                    for dx in 0..2 {
                        let i = ((b * x.h + oy * 3 + dy) * x.w + ox * 2 + dx) * c;
                        for ch in 0..c {
                            data[o + ch] += x.data[i + ch];
                        }
                    }
                }
                data[o..o + c].iter_mut().for_each(|v| *v /= 6.0);
            }
        }
    }
    Nhwc::new(x.n, oh, ow, c, data)
}

/// The recognition network: a normalised BGR line (3×48×W) in, per-column
/// class logits out.
pub struct SvtrRec {
    backbone: Lcnet,
    conv1: NeckConv,
    conv2: NeckConv,
    blocks: Vec<SvtrBlock>,
    norm: LayerNorm,
    conv3: NeckConv,
    conv4: NeckConv,
    conv1x1: NeckConv,
    fc: Linear,
}

/// Class scores of each column token, row-major `steps × classes`.
pub struct Logits {
    pub steps: usize,
    pub classes: usize,
    pub data: Vec<f32>,
}

impl SvtrRec {
    /// Loads `ppocr_rec.safetensors` as written by `scripts/fetch-text-weights.sh`.
    pub fn load(path: &Path) -> Result<Self> {
        let ws = Weights::load(path)?;
        let neck = |n: &str| NeckConv::load(&ws, &format!("neck.{n}"));
        let net = Self {
            backbone: Lcnet::load(&ws, &STRIDES)?,
            conv1: neck("conv1")?,
            conv2: neck("conv2")?,
            blocks: (0..SVTR_BLOCKS)
                .map(|i| SvtrBlock::load(&ws, &format!("neck.blocks.{i}"), HEADS))
                .collect::<Result<_>>()?,
            norm: LayerNorm::load(&ws, "neck.norm")?,
            conv3: neck("conv3")?,
            conv4: neck("conv4")?,
            conv1x1: neck("conv1x1")?,
            fc: Linear::load(&ws, "head.fc")?,
        };
        ensure!(
            !ws.has(&format!("neck.blocks.{SVTR_BLOCKS}.qkv.weight")),
            "text recogniser weights have more SVTR blocks than expected"
        );
        Ok(net)
    }

    pub fn classes(&self) -> usize {
        self.fc.outputs
    }

    /// Logits for a normalised 3×48×W line (W ≥ 8).
    pub fn forward(&self, x: &Fmap) -> Result<Logits> {
        ensure!(
            x.c == 3 && x.h == LINE_HEIGHT && x.w >= 8,
            "a 3×{LINE_HEIGHT}×W (W ≥ 8) line expected, got {}×{}×{}",
            x.c,
            x.h,
            x.w
        );
        let feats = self.backbone.forward(&x.to_nhwc(), |_, _| Ok(()))?;
        let pooled = avg_pool_3x2(&feats);
        ensure!(pooled.h == 1, "the pooled line has {} rows", pooled.h);
        let steps = pooled.w;
        let z = self.conv2.forward(&self.conv1.forward(&pooled)?)?;
        // One row of NHWC is already `steps × channels` tokens.
        let mut tokens = z.data;
        for block in &self.blocks {
            block.forward(&mut tokens, steps);
        }
        let tokens = self.norm.forward(&tokens);
        let dim = tokens.len() / steps;
        let y = self.conv3.forward(&Nhwc::new(1, 1, steps, dim, tokens))?;
        let cat = concat_channels(&[&pooled, &y])?;
        let y = self.conv1x1.forward(&self.conv4.forward(&cat)?)?;
        ensure!(y.c == self.fc.inputs, "neck output has {} channels", y.c);
        Ok(Logits {
            steps,
            classes: self.fc.outputs,
            data: self.fc.forward(&y.data, steps),
        })
    }
}
