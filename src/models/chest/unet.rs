//! The PriCheXy-Net generator: a 4-level U-Net (widths w, 2w, 4w, 8w and 16w
//! at the bottleneck; w = 32 in the paper) whose 2-channel tanh output is the
//! un-scaled displacement field.
//!
//! [`UNet`] is the trainable network (candle's differentiable ops, used by
//! `crate::train`); [`UNetInference`] is the same network loaded for the
//! gateway: batch norm folded into the convolutions and, on the CPU, run on
//! the shared NHWC path of `crate::models::ops` (candle's ops on CUDA).

use crate::models::ops::nhwc::{concat_channels, Nhwc};
use crate::models::ops::pool::max_pool_ceil_nhwc;
use crate::models::ops::{self, Act, Conv, ConvSpec, ConvWeights};
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{
    batch_norm, conv2d, conv2d_no_bias, conv_transpose2d, BatchNorm, BatchNormConfig, Conv2d,
    Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Module, VarBuilder,
};

/// Number of 2× down-sampling steps; the input side must be a multiple of 16.
pub const LEVELS: usize = 4;

/// [conv 3×3 (no bias), BatchNorm, ReLU] × 2.
struct DoubleConv {
    c1: Conv2d,
    b1: BatchNorm,
    c2: Conv2d,
    b2: BatchNorm,
}

impl DoubleConv {
    fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            c1: conv2d_no_bias(cin, cout, 3, cfg, vb.pp("c1"))?,
            b1: batch_norm(cout, BatchNormConfig::default(), vb.pp("b1"))?,
            c2: conv2d_no_bias(cout, cout, 3, cfg, vb.pp("c2"))?,
            b2: batch_norm(cout, BatchNormConfig::default(), vb.pp("b2"))?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.b1.forward_t(&self.c1.forward(x)?, train)?.relu()?;
        self.b2.forward_t(&self.c2.forward(&x)?, train)?.relu()
    }
}

/// The generator network. Output: N×2×S×S in (−1, 1), channel 0 is x.
pub struct UNet {
    down: Vec<DoubleConv>,
    bottom: DoubleConv,
    up: Vec<ConvTranspose2d>,
    dec: Vec<DoubleConv>,
    head: Conv2d,
}

impl UNet {
    /// `width` is the first level's channel count (32 in the paper).
    pub fn new(vb: VarBuilder, width: usize) -> Result<Self> {
        let widths: Vec<usize> = (0..LEVELS).map(|i| width << i).collect();
        let mut down = vec![];
        let mut cin = 1;
        for (i, &w) in widths.iter().enumerate() {
            down.push(DoubleConv::new(cin, w, vb.pp(format!("down.{i}")))?);
            cin = w;
        }
        let bottom = DoubleConv::new(cin, width << LEVELS, vb.pp("bottom"))?;
        let mut up = vec![];
        let mut dec = vec![];
        let tcfg = ConvTranspose2dConfig {
            stride: 2,
            ..Default::default()
        };
        for (i, &w) in widths.iter().enumerate() {
            up.push(conv_transpose2d(
                w * 2,
                w,
                2,
                tcfg,
                vb.pp(format!("up.{i}")),
            )?);
            dec.push(DoubleConv::new(w * 2, w, vb.pp(format!("dec.{i}")))?);
        }
        let head = conv2d(width, 2, 1, Conv2dConfig::default(), vb.pp("head"))?;
        Ok(Self {
            down,
            bottom,
            up,
            dec,
            head,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        if h % (1 << LEVELS) != 0 || w % (1 << LEVELS) != 0 {
            candle_core::bail!("U-Net input {h}×{w} is not a multiple of {}", 1 << LEVELS);
        }
        let mut skips = vec![];
        let mut x = x.clone();
        for d in &self.down {
            let s = d.forward_t(&x, train)?;
            x = s.max_pool2d(2)?;
            skips.push(s);
        }
        x = self.bottom.forward_t(&x, train)?;
        for i in (0..LEVELS).rev() {
            let u = self.up[i].forward(&x)?;
            x = self.dec[i].forward_t(&Tensor::cat(&[&skips[i], &u], 1)?, train)?;
        }
        self.head.forward(&x)?.tanh()
    }
}

/// Epsilon of the generator's batch norms (candle-nn's and PyTorch's default).
const BN_EPS: f32 = 1e-5;

/// The generator at inference: each [conv, BatchNorm, ReLU] is one [`Conv`]
/// with the batch norm folded in (running statistics, as `forward_t(x,
/// false)` uses them). Loads the same tensor names as [`UNet`].
pub struct UNetInference {
    down: Vec<[Conv; 2]>,
    bottom: [Conv; 2],
    up: Vec<Conv>,
    dec: Vec<[Conv; 2]>,
    head: Conv,
}

fn double_conv(cin: usize, cout: usize, vb: &VarBuilder) -> Result<[Conv; 2]> {
    let layer = |cin: usize, conv: &str, bn: &str| -> Result<Conv> {
        let bn = ops::BatchNorm::from_vb(cout, BN_EPS, &vb.pp(bn))?;
        let w =
            ConvWeights::from_vb(&vb.pp(conv), [cout, cin, 3, 3], false, false)?.fold_bn(&bn)?;
        Conv::new(w, ConvSpec::new(1, 1), Act::Relu, vb.device())
    };
    Ok([layer(cin, "c1", "b1")?, layer(cout, "c2", "b2")?])
}

impl UNetInference {
    /// `width` is the first level's channel count, as for [`UNet::new`].
    pub fn new(vb: VarBuilder, width: usize) -> Result<Self> {
        let widths: Vec<usize> = (0..LEVELS).map(|i| width << i).collect();
        let mut down = vec![];
        let mut cin = 1;
        for (i, &w) in widths.iter().enumerate() {
            down.push(double_conv(cin, w, &vb.pp(format!("down.{i}")))?);
            cin = w;
        }
        let bottom = double_conv(cin, width << LEVELS, &vb.pp("bottom"))?;
        let mut up = vec![];
        let mut dec = vec![];
        for (i, &w) in widths.iter().enumerate() {
            let t = ConvWeights::from_vb(&vb.pp(format!("up.{i}")), [w * 2, w, 2, 2], true, true)?;
            up.push(Conv::new(t, ConvSpec::new(2, 0), Act::None, vb.device())?);
            dec.push(double_conv(w * 2, w, &vb.pp(format!("dec.{i}")))?);
        }
        let h = ConvWeights::from_vb(&vb.pp("head"), [2, width, 1, 1], true, false)?;
        let head = Conv::new(h, ConvSpec::default(), Act::Tanh, vb.device())?;
        Ok(Self {
            down,
            bottom,
            up,
            dec,
            head,
        })
    }

    /// The same network with every conv on candle's ops (for tests).
    pub fn candle_reference(self) -> Self {
        let pair = |[a, b]: [Conv; 2]| [a.candle_reference(), b.candle_reference()];
        Self {
            down: self.down.into_iter().map(pair).collect(),
            bottom: pair(self.bottom),
            up: self.up.into_iter().map(Conv::candle_reference).collect(),
            dec: self.dec.into_iter().map(pair).collect(),
            head: self.head.candle_reference(),
        }
    }

    /// N×1×S×S in, N×2×S×S in (−1, 1) out, as `UNet::forward_t(x, false)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        if h % (1 << LEVELS) != 0 || w % (1 << LEVELS) != 0 {
            candle_core::bail!("U-Net input {h}×{w} is not a multiple of {}", 1 << LEVELS);
        }
        if !x.device().is_cpu() {
            return self.forward_tensors(x);
        }
        let two = |c: &[Conv; 2], x: &Nhwc| c[1].forward_nhwc(&c[0].forward_nhwc(x)?);
        let mut skips = vec![];
        let mut x = Nhwc::from_nchw(x)?;
        for d in &self.down {
            let s = two(d, &x)?;
            x = max_pool_ceil_nhwc(&s, 2, 2);
            skips.push(s);
        }
        x = two(&self.bottom, &x)?;
        for i in (0..LEVELS).rev() {
            let u = self.up[i].forward_nhwc(&x)?;
            x = two(&self.dec[i], &concat_channels(&[&skips[i], &u])?)?;
        }
        self.head
            .forward_nhwc(&x)?
            .to_nchw(&candle_core::Device::Cpu)
    }

    /// The same chain on NCHW tensors (candle's convolutions, e.g. CUDA).
    fn forward_tensors(&self, x: &Tensor) -> Result<Tensor> {
        let two = |c: &[Conv; 2], x: &Tensor| c[1].forward(&c[0].forward(x)?);
        let mut skips = vec![];
        let mut x = x.clone();
        for d in &self.down {
            let s = two(d, &x)?;
            x = s.max_pool2d(2)?;
            skips.push(s);
        }
        x = two(&self.bottom, &x)?;
        for i in (0..LEVELS).rev() {
            let u = self.up[i].forward(&x)?;
            x = two(&self.dec[i], &Tensor::cat(&[&skips[i], &u], 1)?)?;
        }
        self.head.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn unet_shapes_and_range() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let net = UNet::new(vb, 4).unwrap();
        let x = Tensor::rand(0f32, 1f32, (2, 1, 32, 32), &Device::Cpu).unwrap();
        let y = net.forward_t(&x, true).unwrap();
        assert_eq!(y.dims(), &[2, 2, 32, 32]);
        let m: f32 = y.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        // tanh's range; in f32 a large input rounds to exactly 1.0.
        assert!(m <= 1.0, "{m}");
        assert!(net.forward_t(&x.narrow(3, 0, 24).unwrap(), false).is_err());
    }

    /// The inference network (folded batch norm, NHWC path) equals the
    /// trainable one in eval mode, with non-trivial batch-norm statistics.
    #[test]
    fn inference_net_matches_trainable_net() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let net = UNet::new(vb.clone(), 4).unwrap();
        for (name, var) in vm.data().lock().unwrap().iter() {
            let t = var.as_tensor();
            let r = Tensor::rand(0.5f32, 1.5f32, t.shape(), &dev).unwrap();
            // Every batch-norm tensor: statistics and affine.
            if name.contains(".b1.") || name.contains(".b2.") {
                var.set(&r).unwrap();
            }
        }
        let fast = UNetInference::new(vb, 4).unwrap();
        let x = Tensor::rand(0f32, 1f32, (2, 1, 32, 48), &dev).unwrap();
        let want = net.forward_t(&x, false).unwrap();
        let got = fast.forward(&x).unwrap();
        let d = crate::models::ops::tensor::max_abs_diff(&got, &want);
        assert!(d < 1e-4, "fast vs candle U-Net: {d}");
        let reference = fast.candle_reference().forward(&x).unwrap();
        let d = crate::models::ops::tensor::max_abs_diff(&reference, &want);
        assert!(d < 1e-4, "candle-reference vs candle U-Net: {d}");
    }
}
