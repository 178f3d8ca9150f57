//! The PPLCNetV3 backbone both PP-OCRv4 networks share, in its
//! re-parameterised inference form: a 3×3/2 stem conv with BatchNorm, then
//! blocks of depthwise conv → pointwise conv. Every conv is followed by a
//! "learnable affine" (scalar scale and bias); every conv whose stride is
//! not 2×2 also by hard-swish and a second affine. Some blocks carry a
//! squeeze-excite after the depthwise conv.
//!
//! The detector's strides are square; the recogniser's are (2, 1) or (1, 2)
//! in places, to keep the width of a text line. A non-square stride runs
//! as stride 1 followed by dropping rows or columns, which gives exactly
//! the strided result (odd kernels, padding k/2) on the shared conv path.

use anyhow::{bail, ensure, Result};

use super::se::SqueezeExcite;
use super::weights::Weights;
use crate::models::ops::nhwc::Nhwc;
use crate::models::ops::{Act, Conv};

/// Hard-sigmoid slope of the backbone's squeeze-excite (Paddle's 1/6).
const SE_SLOPE: f32 = 1.0 / 6.0;

struct Block {
    dw: Conv,
    /// `(rows, columns)` kept after a stride-1 depthwise conv: a
    /// non-square stride; `(1, 1)` when the conv itself strides.
    keep_every: (usize, usize),
    se: Option<SqueezeExcite>,
    pw: Conv,
}

/// Stem and blocks, loaded under `backbone.`.
pub(crate) struct Lcnet {
    stem: Conv,
    blocks: Vec<Block>,
}

impl Lcnet {
    /// One block per entry of `strides` (`(height, width)` stride of its
    /// depthwise conv); weights for more blocks than that are refused.
    pub(crate) fn load(ws: &Weights, strides: &[(usize, usize)]) -> Result<Self> {
        let stem = ws.conv(
            "backbone.conv1",
            2,
            false,
            Some("backbone.conv1.bn"),
            None,
            Act::None,
        )?;
        let mut blocks = Vec::new();
        for (i, &(sh, sw)) in strides.iter().enumerate() {
            let p = format!("backbone.blocks.{i}");
            let act_name = format!("{p}.dw.act_lab");
            let dw_act = if ws.has(&act_name) {
                let (scale, shift) = ws.lab(&act_name)?;
                Act::HardSwish { scale, shift }
            } else {
                Act::None
            };
            if matches!(dw_act, Act::None) != ((sh, sw) == (2, 2)) {
                bail!("{p}: weights do not match the expected block strides");
            }
            let (conv_stride, keep_every) = if sh == sw {
                (sh, (1, 1))
            } else {
                (1, (sh, sw))
            };
            let se = if ws.has(&format!("{p}.se.conv1.weight")) {
                Some(SqueezeExcite::load(
                    ws,
                    &format!("{p}.se"),
                    SE_SLOPE,
                    false,
                )?)
            } else {
                None
            };
            let (scale, shift) = ws.lab(&format!("{p}.pw.act_lab"))?;
            blocks.push(Block {
                dw: ws.conv(
                    &format!("{p}.dw"),
                    conv_stride,
                    true,
                    None,
                    Some(&format!("{p}.dw.lab")),
                    dw_act,
                )?,
                keep_every,
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
            !ws.has(&format!("backbone.blocks.{}.dw.weight", strides.len())),
            "text model weights have more backbone blocks than expected"
        );
        Ok(Self { stem, blocks })
    }

    /// Every conv on candle's own ops (tests of the fast path).
    pub(crate) fn candle_reference(self) -> Self {
        Self {
            stem: self.stem.candle_reference(),
            blocks: self
                .blocks
                .into_iter()
                .map(|b| Block {
                    dw: b.dw.candle_reference(),
                    keep_every: b.keep_every,
                    se: b.se,
                    pw: b.pw.candle_reference(),
                })
                .collect(),
        }
    }

    /// The backbone's output; `tap(i, x)` sees block `i`'s output.
    pub(crate) fn forward(
        &self,
        x: &Nhwc,
        mut tap: impl FnMut(usize, &Nhwc) -> Result<()>,
    ) -> Result<Nhwc> {
        let mut x = self.stem.forward_nhwc(x)?;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.dw.forward_nhwc(&x)?;
            if block.keep_every != (1, 1) {
                x = keep_every(&x, block.keep_every);
            }
            if let Some(se) = &block.se {
                se.forward(&mut x)?;
            }
            x = block.pw.forward_nhwc(&x)?;
            tap(i, &x)?;
        }
        Ok(x)
    }
}

/// Rows `0, sh, 2·sh, …` and columns `0, sw, 2·sw, …` of `x`.
fn keep_every(x: &Nhwc, (sh, sw): (usize, usize)) -> Nhwc {
    let (oh, ow, c) = (x.h.div_ceil(sh), x.w.div_ceil(sw), x.c);
    let mut data = Vec::with_capacity(x.n * oh * ow * c);
    for b in 0..x.n {
        for oy in 0..oh {
            let row = (b * x.h + oy * sh) * x.w;
            for ox in 0..ow {
                let at = (row + ox * sw) * c;
                data.extend_from_slice(&x.data[at..at + c]);
            }
        }
    }
    Nhwc::new(x.n, oh, ow, c, data)
}
