//! Tensor operations shared by the pixel models that candle does not offer
//! in the exact form the pretrained weights expect, one concept per file.
//!
//! - The one CPU convolution path every model runs: the [`conv::Conv`]
//!   layer (weights from PyTorch layout, batch norm folded at load time by
//!   [`bn`]), which on the CPU runs NHWC kernels ([`conv_layout`] the shapes, [`conv2d`] — im2col tiles
//!   over a GEMM ([`gemm`]), [`depthwise`], [`conv_direct`] for thin layers
//!   — and [`conv_transpose`]) with bias and activation fused ([`act`]), and
//!   on CUDA candle's convolutions. The NHWC layout itself is [`nhwc`].
//!   A conv over a nearest-upsampled map runs at the map's own size
//!   ([`upsampled_conv`]).
//! - PyTorch-style pooling ([`pool`]) and MTCNN's dense layers
//!   ([`dense_rows`]).
//! - The differentiable resampling and smoothing of the chest deformation
//!   ([`grid_sample`], [`blur`]) and small tensor helpers ([`tensor`]).
//!
//! Only what the gateway runs at inference lives here; the operations only
//! training needs (losses, a differentiable max-pool, bilinear resize) are in
//! `crate::train::ops`.

pub mod act;
pub mod blur;
pub mod bn;
pub mod conv;
pub mod conv2d;
pub mod conv_direct;
mod conv_direct_avx2;
pub mod conv_layout;
pub mod conv_transpose;
pub mod dense_rows;
pub mod depthwise;
pub mod gemm;
pub mod grid_sample;
pub mod nhwc;
pub mod pool;
pub mod tensor;
pub mod upsampled_conv;

pub use act::Act;
pub use bn::BatchNorm;
pub use conv::{Conv, ConvWeights};
pub use conv_layout::{Conv2dNhwc, ConvSpec};
