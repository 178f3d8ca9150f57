//! Tensor operations shared by the pixel models that candle does not offer
//! in the exact form the pretrained weights expect, one concept per file:
//! PyTorch-style pooling ([`pool`]), the NHWC layout and fast CPU layers of
//! the MTCNN detector ([`nhwc`], [`conv_nhwc`], [`dense_rows`]), the
//! differentiable resampling and smoothing of the chest deformation
//! ([`grid_sample`], [`blur`]) and small tensor helpers ([`tensor`]).
//! Only what the gateway runs at inference lives here; the operations only
//! training needs (losses, a differentiable max-pool, bilinear resize) are in
//! `crate::train::ops`.

pub mod blur;
pub mod conv_nhwc;
pub mod dense_rows;
pub mod grid_sample;
pub mod nhwc;
pub mod pool;
pub mod tensor;
