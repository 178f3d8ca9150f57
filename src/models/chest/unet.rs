//! The PriCheXy-Net generator: a 4-level U-Net (widths w, 2w, 4w, 8w and 16w
//! at the bottleneck; w = 32 in the paper) whose 2-channel tanh output is the
//! un-scaled displacement field.

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
}
