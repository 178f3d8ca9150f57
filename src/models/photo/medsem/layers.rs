//! The two building blocks the MedSem networks share: a padded 3×3
//! convolution (stride 1 or 2) and its activation.

use candle_core::{Module, Result, Tensor};
use candle_nn::{conv2d, Conv2d, Conv2dConfig, VarBuilder};

/// 3×3 convolution with padding 1: stride 2 halves the map exactly.
pub fn conv3(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: 1,
        stride,
        ..Default::default()
    };
    conv2d(cin, cout, 3, cfg, vb)
}

/// Leaky ReLU: keeps a gradient for negative inputs, which matters with the
/// few samples a CPU run sees.
pub fn act(xs: &Tensor) -> Result<Tensor> {
    candle_nn::ops::leaky_relu(xs, 0.2)
}

/// `conv` then [`act`].
pub fn conv_act(conv: &Conv2d, xs: &Tensor) -> Result<Tensor> {
    act(&conv.forward(xs)?)
}
