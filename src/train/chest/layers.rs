//! Building blocks shared by the chest CNNs ([`super::classifier`] and
//! [`super::siamese`]): bias-free "same" convolutions, batch norm and the
//! ImageNet-style stem (7×7/2 conv, BN, ReLU, 3/2 max-pool).
//!
//! Training and evaluation only, so it lives in `crate::train`.

use crate::train::ops::pool::max_pool2d_padded;
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{
    batch_norm, conv2d_no_bias, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Module,
    VarBuilder,
};

/// Bias-free k×k convolution with "same" padding (k / 2) and `stride`.
pub(crate) fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: k / 2,
        stride,
        ..Default::default()
    };
    conv2d_no_bias(cin, cout, k, cfg, vb)
}

/// Batch norm with the default configuration.
pub(crate) fn bn(c: usize, vb: VarBuilder) -> Result<BatchNorm> {
    batch_norm(c, BatchNormConfig::default(), vb)
}

/// 1-channel stem: conv 7×7/2 (`stem`), BN (`stem_bn`), ReLU, max-pool 3/2.
pub(crate) struct Stem {
    conv: Conv2d,
    bn: BatchNorm,
}

impl Stem {
    /// Variables live under `vb`'s `stem` and `stem_bn`.
    pub(crate) fn new(cout: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv(1, cout, 7, 2, vb.pp("stem"))?,
            bn: bn(cout, vb.pp("stem_bn"))?,
        })
    }

    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.bn.forward_t(&self.conv.forward(x)?, train)?.relu()?;
        max_pool2d_padded(&x, 3, 2, 1)
    }
}
