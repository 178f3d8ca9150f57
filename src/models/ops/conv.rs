//! [`Conv`], the convolution layer every pixel model builds from its
//! PyTorch-layout weights: on the CPU it runs the NHWC fast path
//! ([`super::conv2d`], [`super::conv_transpose`]); on CUDA (or when asked
//! for a reference) candle's own `conv2d` / `conv_transpose2d`. Batch norm
//! and per-channel affines are folded into the weights once, at load time
//! ([`ConvWeights`]), so both paths run the same folded layer.

use super::act::Act;
use super::bn::BatchNorm;
use super::conv_layout::{Conv2dNhwc, ConvSpec};
use super::conv_transpose::ConvTranspose2dNhwc;
use super::nhwc::Nhwc;
use super::tensor::as_f32;
use candle_core::{bail, Device, Result, Tensor};
use candle_nn::VarBuilder;

/// A convolution's weights on the host in PyTorch layout, before they are
/// prepared for a path: forward `(c_out, c_in/g, kh, kw)` or transposed
/// `(c_in, c_out, kh, kw)`.
#[derive(Clone, Debug)]
pub struct ConvWeights {
    pub weight: Vec<f32>,
    pub shape: [usize; 4],
    pub bias: Vec<f32>,
    pub transposed: bool,
}

fn dims4(t: &Tensor) -> Result<[usize; 4]> {
    let (a, b, c, d) = t.dims4()?;
    Ok([a, b, c, d])
}

impl ConvWeights {
    /// A forward conv's weight and optional bias (zero when absent).
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        Self::build(weight, bias, false)
    }

    /// A transposed conv's weight `(c_in, c_out, kh, kw)` and optional bias.
    pub fn new_transposed(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        Self::build(weight, bias, true)
    }

    fn build(weight: &Tensor, bias: Option<&Tensor>, transposed: bool) -> Result<Self> {
        let shape = dims4(weight)?;
        let c_out = if transposed { shape[1] } else { shape[0] };
        let bias = match bias {
            Some(b) => as_f32(b)?.flatten_all()?.to_vec1()?,
            None => vec![0.0; c_out],
        };
        if bias.len() != c_out {
            bail!("conv bias has {} values for {c_out} channels", bias.len());
        }
        Ok(Self {
            weight: as_f32(weight)?.flatten_all()?.to_vec1()?,
            shape,
            bias,
            transposed,
        })
    }

    /// `weight` (and `bias` when `with_bias`) under `vb`, shapes checked
    /// against `shape` (PyTorch layout).
    pub fn from_vb(
        vb: &VarBuilder,
        shape: [usize; 4],
        with_bias: bool,
        transposed: bool,
    ) -> Result<Self> {
        let w = vb.get(shape.to_vec(), "weight")?;
        let c_out = if transposed { shape[1] } else { shape[0] };
        let b = with_bias.then(|| vb.get(c_out, "bias")).transpose()?;
        Self::build(&w, b.as_ref(), transposed)
    }

    pub fn c_out(&self) -> usize {
        self.bias.len()
    }

    /// Contiguous weights per output channel run (see [`BatchNorm::fold_into`]).
    fn run_len(&self) -> usize {
        let [_, _, kh, kw] = self.shape;
        if self.transposed {
            kh * kw
        } else {
            self.shape[1] * kh * kw
        }
    }

    /// Fold a following batch norm into the weights.
    pub fn fold_bn(mut self, bn: &BatchNorm) -> Result<Self> {
        if bn.gamma.len() != self.c_out() {
            bail!(
                "batch norm over {} channels after a {}-channel conv",
                bn.gamma.len(),
                self.c_out()
            );
        }
        let run = self.run_len();
        bn.fold_into(&mut self.weight, &mut self.bias, run);
        Ok(self)
    }

    /// Fold a following scalar affine `scale·y + shift`.
    pub fn fold_affine(mut self, scale: f32, shift: f32) -> Self {
        self.weight.iter_mut().for_each(|v| *v *= scale);
        self.bias.iter_mut().for_each(|v| *v = *v * scale + shift);
        self
    }
}

/// The layer prepared for the CPU fast path.
#[derive(Clone, Debug)]
enum Fast {
    Forward(Conv2dNhwc),
    Transposed(ConvTranspose2dNhwc),
}

/// A convolution (forward or transposed) with folded batch norm, fused bias
/// and activation.
#[derive(Clone, Debug)]
pub struct Conv {
    spec: ConvSpec,
    /// Folded weight and bias as candle tensors on the model's device (the
    /// candle path).
    weight: Tensor,
    bias: Tensor,
    transposed: bool,
    act: Act,
    fast: Fast,
    /// Run candle's ops even on the CPU (tests compare the two paths).
    candle_reference: bool,
}

impl Conv {
    /// `spec.groups` must be 1 for a transposed conv; `spec.padding` is its
    /// input padding, and its output padding is 0.
    pub fn new(w: ConvWeights, spec: ConvSpec, act: Act, device: &Device) -> Result<Self> {
        let fast = if w.transposed {
            if spec.groups != 1 {
                bail!("grouped transposed convolutions are not supported");
            }
            Fast::Transposed(ConvTranspose2dNhwc::new(
                &w.weight,
                w.shape,
                w.bias.clone(),
                spec.stride,
                spec.padding,
                0,
                spec.dilation,
                act.clone(),
            )?)
        } else {
            Fast::Forward(Conv2dNhwc::new(
                &w.weight,
                w.shape,
                w.bias.clone(),
                spec,
                act.clone(),
            )?)
        };
        let c_out = w.c_out();
        Ok(Self {
            spec,
            weight: Tensor::from_vec(w.weight, w.shape.to_vec(), device)?,
            bias: Tensor::from_vec(w.bias, (1, c_out, 1, 1), device)?,
            transposed: w.transposed,
            act,
            fast,
            candle_reference: false,
        })
    }

    /// The same layer, always run with candle's ops (for tests).
    pub fn candle_reference(mut self) -> Self {
        self.candle_reference = true;
        self
    }

    /// Runs on candle's ops: on CUDA, or as the reference.
    fn uses_candle(&self, device: &Device) -> bool {
        self.candle_reference || !device.is_cpu()
    }

    /// NCHW in, NCHW out, on the input's device.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.uses_candle(x.device()) {
            return self.forward_candle(x);
        }
        self.forward_nhwc(&Nhwc::from_nchw(x)?)?.to_nchw(x.device())
    }

    /// NHWC on the host in and out (the CPU models' chain). A reference
    /// layer round-trips through candle's ops.
    pub fn forward_nhwc(&self, x: &Nhwc) -> Result<Nhwc> {
        if self.candle_reference {
            let y =
                self.forward_candle(&x.to_nchw(&Device::Cpu)?.to_device(self.weight.device())?)?;
            return Nhwc::from_nchw(&y.to_device(&Device::Cpu)?);
        }
        match &self.fast {
            Fast::Forward(c) => c.forward(x),
            Fast::Transposed(c) => c.forward(x),
        }
    }

    fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        let s = self.spec;
        let y = if self.transposed {
            x.conv_transpose2d(&self.weight, s.padding, 0, s.stride, s.dilation)?
        } else {
            x.conv2d(&self.weight, s.padding, s.stride, s.dilation, s.groups)?
        };
        self.act.forward_nchw(&y.broadcast_add(&self.bias)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ops::tensor::max_abs_diff;

    fn rand(shape: &[usize], dev: &Device) -> Tensor {
        Tensor::randn(0f32, 1., shape, dev).unwrap()
    }

    /// Largest |a − b| relative to the reference's largest magnitude.
    fn rel_diff(fast: &Tensor, reference: &Tensor) -> f32 {
        let scale: f32 = reference
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        max_abs_diff(fast, reference) / scale.max(1.0)
    }

    fn check(w: ConvWeights, spec: ConvSpec, act: Act, x: &Tensor, what: &str) {
        let dev = Device::Cpu;
        let conv = Conv::new(w, spec, act, &dev).unwrap();
        let fast = conv.forward(x).unwrap();
        let reference = conv.clone().candle_reference().forward(x).unwrap();
        assert_eq!(fast.dims(), reference.dims(), "{what}");
        let d = rel_diff(&fast, &reference);
        assert!(d < 1e-5, "{what}: relative difference {d}");
    }

    /// Every forward shape the models use (chest U-Net, PP-OCR DBNet, MTCNN)
    /// plus odd ones, against candle's `conv2d`.
    #[test]
    fn forward_convs_match_candle() {
        let dev = Device::Cpu;
        // (c_in, c_out, k, stride, padding, dilation, groups, h, w)
        let cases = [
            (1, 8, 3, 1, 1, 1, 1, 17, 19),    // U-Net input layer
            (8, 8, 3, 1, 1, 1, 1, 16, 16),    // U-Net 3×3
            (16, 8, 3, 1, 1, 1, 1, 8, 12),    // decoder after concat
            (8, 2, 1, 1, 0, 1, 1, 9, 9),      // U-Net head
            (3, 16, 3, 2, 1, 1, 1, 32, 32),   // DBNet stem
            (16, 16, 3, 1, 1, 1, 16, 15, 13), // depthwise 3×3
            (24, 24, 3, 2, 1, 1, 24, 16, 16), // depthwise stride 2
            (32, 32, 5, 1, 2, 1, 32, 11, 9),  // depthwise 5×5
            (32, 32, 5, 2, 2, 1, 32, 12, 10), // depthwise 5×5 stride 2
            (16, 40, 1, 1, 0, 1, 1, 8, 8),    // pointwise
            (96, 24, 3, 1, 1, 1, 1, 8, 8),    // neck 3×3
            (16, 16, 3, 1, 1, 1, 1, 15, 13),  // 3×3, odd sizes
            (32, 16, 3, 1, 0, 1, 1, 9, 10),   // 3×3, valid
            (20, 24, 3, 1, 2, 1, 1, 7, 6),    // 3×3, padding 2
            (3, 10, 3, 1, 0, 1, 1, 12, 12),   // MTCNN first layer (direct kernel)
            (10, 16, 3, 1, 0, 1, 1, 9, 11),   // MTCNN 3×3 valid
            (64, 128, 2, 1, 0, 1, 1, 5, 5),   // O-Net 2×2
            (4, 6, 7, 2, 3, 1, 1, 23, 21),    // 7×7 stride 2
            (6, 4, 3, 1, 2, 2, 1, 10, 10),    // dilation 2
            (8, 6, 3, 2, 1, 1, 2, 10, 11),    // 2 groups
        ];
        for (ci, co, k, s, p, d, g, h, w) in cases {
            let spec = ConvSpec {
                stride: s,
                padding: p,
                dilation: d,
                groups: g,
            };
            let x = rand(&[2, ci, h, w], &dev);
            let wt = rand(&[co, ci / g, k, k], &dev);
            let b = rand(&[co], &dev);
            let what = format!("{ci}->{co} k{k} s{s} p{p} d{d} g{g}");
            for act in [
                Act::None,
                Act::Relu,
                Act::PRelu((0..co).map(|i| i as f32 / co as f32).collect()),
                Act::HardSwish {
                    scale: 0.9,
                    shift: 0.1,
                },
            ] {
                let wts = ConvWeights::new(&wt, Some(&b)).unwrap();
                check(wts, spec, act, &x, &what);
            }
        }
    }

    #[test]
    fn transposed_convs_match_candle() {
        let dev = Device::Cpu;
        // (c_in, c_out, k, stride, padding, h, w)
        for (ci, co, k, s, p, h, w) in [
            (16, 8, 2, 2, 0, 8, 9),  // U-Net up-sampling
            (24, 6, 2, 2, 0, 5, 7),  // DB head
            (6, 1, 2, 2, 0, 10, 10), // DB head, last
            (5, 7, 3, 2, 1, 6, 5),   // overlapping taps
            (4, 3, 4, 2, 1, 5, 6),
            (3, 4, 3, 1, 1, 7, 7),
            (4, 5, 3, 3, 0, 4, 5), // kernel = stride: patches tile the output
        ] {
            let x = rand(&[2, ci, h, w], &dev);
            let wt = rand(&[ci, co, k, k], &dev);
            let b = rand(&[co], &dev);
            for act in [Act::None, Act::Relu, Act::Sigmoid] {
                let wts = ConvWeights::new_transposed(&wt, Some(&b)).unwrap();
                check(
                    wts,
                    ConvSpec::new(s, p),
                    act,
                    &x,
                    &format!("T {ci}->{co} k{k} s{s} p{p}"),
                );
            }
        }
    }

    fn random_bn(c: usize, dev: &Device) -> BatchNorm {
        BatchNorm::new(
            &rand(&[c], dev),
            &rand(&[c], dev),
            &rand(&[c], dev),
            &(rand(&[c], dev).abs().unwrap() + 0.1).unwrap(),
            1e-5,
        )
        .unwrap()
    }

    /// Folded conv + BN equals conv, then candle-nn's BatchNorm.
    #[test]
    fn folded_batch_norm_matches_unfolded() {
        use candle_nn::ModuleT;
        let dev = Device::Cpu;
        let x = rand(&[2, 6, 10, 10], &dev);
        let (co, ci) = (5, 6);
        let wt = rand(&[co, ci, 3, 3], &dev);
        let b = rand(&[co], &dev);
        let bn = random_bn(co, &dev);
        let cbn = candle_nn::BatchNorm::new(
            co,
            Tensor::new(bn.mean.as_slice(), &dev).unwrap(),
            Tensor::new(bn.var.as_slice(), &dev).unwrap(),
            Tensor::new(bn.gamma.as_slice(), &dev).unwrap(),
            Tensor::new(bn.beta.as_slice(), &dev).unwrap(),
            1e-5,
        )
        .unwrap();
        let unfolded = cbn
            .forward_t(
                &x.conv2d(&wt, 1, 1, 1, 1)
                    .unwrap()
                    .broadcast_add(&b.reshape((1, co, 1, 1)).unwrap())
                    .unwrap(),
                false,
            )
            .unwrap()
            .relu()
            .unwrap();
        let w = ConvWeights::new(&wt, Some(&b))
            .unwrap()
            .fold_bn(&bn)
            .unwrap();
        let conv = Conv::new(w, ConvSpec::new(1, 1), Act::Relu, &dev).unwrap();
        let d = rel_diff(&conv.forward(&x).unwrap(), &unfolded);
        assert!(d < 1e-5, "folded conv+BN: {d}");

        // Transposed conv + BN (the DB head): compare against candle-nn too.
        let wt = rand(&[ci, co, 2, 2], &dev);
        let unfolded = cbn
            .forward_t(
                &x.conv_transpose2d(&wt, 0, 0, 2, 1)
                    .unwrap()
                    .broadcast_add(&b.reshape((1, co, 1, 1)).unwrap())
                    .unwrap(),
                false,
            )
            .unwrap();
        let w = ConvWeights::new_transposed(&wt, Some(&b))
            .unwrap()
            .fold_bn(&bn)
            .unwrap();
        let conv = Conv::new(w, ConvSpec::new(2, 0), Act::None, &dev).unwrap();
        let d = rel_diff(&conv.forward(&x).unwrap(), &unfolded);
        assert!(d < 1e-5, "folded transposed conv+BN: {d}");
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Device::Cpu;
        let w = ConvWeights::new(&rand(&[4, 3, 3, 3], &dev), None).unwrap();
        let conv = Conv::new(w, ConvSpec::default(), Act::None, &dev).unwrap();
        assert!(
            conv.forward(&rand(&[1, 2, 8, 8], &dev)).is_err(),
            "channels"
        );
        assert!(
            conv.forward(&rand(&[1, 3, 2, 8], &dev)).is_err(),
            "too small"
        );
        let w = ConvWeights::new(&rand(&[4, 3, 3, 3], &dev), None).unwrap();
        assert!(Conv::new(w, ConvSpec::default().with_groups(3), Act::None, &dev).is_err());
    }
}
