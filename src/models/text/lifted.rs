//! The detector's stride-4 end without its upsampled maps.
//!
//! The plain forward ([`super::det`]) builds two maps at stride 4 (a
//! quarter of the input's side) only to run a 3×3 conv over 96 channels on
//! each: the top-down sum `ins0 = se(conv1x1(f0)) + up2(ins1)` and the
//! concatenation `[p5↑8, p4↑4, p3↑2, p2]`. Those two convs are half of the
//! network's multiplications. Both are linear in their input, so each is
//! split by where its input comes from:
//! - over `se(conv1x1(f0))`: the 3×3 weights, times the squeeze-excite's
//!   channel gates, times the 1×1 weights, are one 3×3 conv over f0's 12
//!   channels (neither conv has a bias, so the zero padding commutes);
//! - over an upsampled map: [`UpsampledConv`], at the coarse map's size.
//!
//! The result is the plain forward's up to float summation order (a test
//! holds the probability map to 1e-4 of candle's convs), with about a third
//! fewer multiplications.

use anyhow::{ensure, Result};

use super::se::{channel_means, SqueezeExcite};
use super::weights::Weights;
use crate::models::ops::act::bias_act;
use crate::models::ops::nhwc::Nhwc;
use crate::models::ops::upsampled_conv::UpsampledConv;
use crate::models::ops::{Act, Conv2dNhwc, ConvSpec, ConvWeights};

/// The weights of the two split convs.
pub(crate) struct Lifted {
    /// `neck.ins_conv.0`'s 1×1 conv (`96 × c0`), PyTorch layout.
    ins0: ConvWeights,
    /// `neck.inp_conv.0`'s 3×3 conv (`24 × 96`), PyTorch layout.
    inp0: ConvWeights,
    /// The same conv over `up2(ins1)`.
    inp0_up: UpsampledConv,
    /// `head.conv1` (batch norm folded) over `p2`, its last 24 input
    /// channels, with its bias.
    head_p2: Conv2dNhwc,
    /// `head.conv1` over `p5↑8`, `p4↑4`, `p3↑2` (input channels 0–23,
    /// 24–47, 48–71), with their factors.
    head_up: Vec<(UpsampledConv, usize)>,
    head_act: Act,
}

/// Input channels `from..from + len` of a forward conv's weight.
fn input_slice(w: &ConvWeights, from: usize, len: usize) -> (Vec<f32>, [usize; 4]) {
    let [c_out, c_in, kh, kw] = w.shape;
    let k = kh * kw;
    let mut out = Vec::with_capacity(c_out * len * k);
    for co in 0..c_out {
        let at = (co * c_in + from) * k;
        out.extend_from_slice(&w.weight[at..at + len * k]);
    }
    (out, [c_out, len, kh, kw])
}

impl Lifted {
    pub(crate) fn load(ws: &Weights) -> Result<Self> {
        let ins0 = ws.conv_weights("neck.ins_conv.0.conv", false, None, None)?;
        let inp0 = ws.conv_weights("neck.inp_conv.0.conv", false, None, None)?;
        let head = ws.conv_weights("head.conv1", false, Some("head.bn1"), None)?;
        for (name, w) in [("ins_conv.0", &ins0), ("inp_conv.0", &inp0)] {
            ensure!(
                w.bias.iter().all(|b| *b == 0.0),
                "neck.{name} has a bias; the split conv assumes none"
            );
        }
        ensure!(
            ins0.shape[2..] == [1, 1] && inp0.shape[1] == ins0.shape[0],
            "neck level 0 shapes {:?} / {:?}",
            ins0.shape,
            inp0.shape
        );
        let part = head.shape[1] / 4;
        ensure!(
            head.shape[1] == 4 * part,
            "head.conv1 input {:?}",
            head.shape
        );
        let (w, shape) = input_slice(&head, 3 * part, part);
        let head_p2 = Conv2dNhwc::new(
            &w,
            shape,
            head.bias.clone(),
            ConvSpec::new(1, shape[2] / 2),
            Act::None,
        )?;
        let head_up = [8, 4, 2]
            .into_iter()
            .enumerate()
            .map(|(j, f)| {
                let (w, shape) = input_slice(&head, j * part, part);
                Ok((UpsampledConv::new(&w, shape)?, f))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            inp0_up: UpsampledConv::new(&inp0.weight, inp0.shape)?,
            ins0,
            inp0,
            head_p2,
            head_up,
            head_act: Act::Relu,
        })
    }

    /// `inp_conv.0`'s conv (before its squeeze-excite) over
    /// `se(ins_conv.0(f0)) + up2(ins1)`, where `se` is `ins_conv.0`'s.
    pub(crate) fn level0(&self, se: &SqueezeExcite, f0: &Nhwc, ins1: &Nhwc) -> Result<Nhwc> {
        let [mid, c0, _, _] = self.ins0.shape;
        let [c_out, _, kh, kw] = self.inp0.shape;
        ensure!(f0.c == c0, "level 0 has {} channels, expected {c0}", f0.c);
        // The 1×1 conv has no bias: the mean of its output is the conv of
        // the input's mean.
        let means = channel_means(f0);
        let pooled: Vec<f32> = (0..mid)
            .map(|m| {
                let row = &self.ins0.weight[m * c0..(m + 1) * c0];
                row.iter().zip(&means).map(|(w, v)| w * v).sum()
            })
            .collect();
        let gates = se.gates(&pooled);
        // W'[o, i, t] = Σ_m W[o, m, t] · gate[m] · A[m, i]
        let k = kh * kw;
        let mut composed = vec![0f32; c_out * c0 * k];
        for o in 0..c_out {
            for (m, gate) in gates.iter().enumerate() {
                let w = &self.inp0.weight[(o * mid + m) * k..(o * mid + m + 1) * k];
                for i in 0..c0 {
                    let a = gate * self.ins0.weight[m * c0 + i];
                    let dst = &mut composed[(o * c0 + i) * k..(o * c0 + i + 1) * k];
                    dst.iter_mut().zip(w).for_each(|(d, w)| *d += w * a);
                }
            }
        }
        let conv = Conv2dNhwc::new(
            &composed,
            [c_out, c0, kh, kw],
            vec![0.0; c_out],
            ConvSpec::new(1, kh / 2),
            Act::None,
        )?;
        let mut y = conv.forward(f0)?;
        self.inp0_up.add_to(ins1, 2, &mut y)?;
        Ok(y)
    }

    /// `head.conv1` with its batch norm and ReLU over `[p5↑8, p4↑4, p3↑2,
    /// p2]`.
    pub(crate) fn head(&self, p2: &Nhwc, coarse: [&Nhwc; 3]) -> Result<Nhwc> {
        let mut y = self.head_p2.forward(p2)?;
        for ((conv, f), p) in self.head_up.iter().zip(coarse) {
            conv.add_to(p, *f, &mut y)?;
        }
        bias_act(&mut y.data, &vec![0.0; y.c], &self.head_act);
        Ok(y)
    }
}
