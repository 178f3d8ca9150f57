//! Pixel models. Each model is ordinary Candle code loaded from
//! `models/<name>/` (see DESIGN.md, "Models are ordinary code"); CPU always
//! works, CUDA comes with the `cuda` cargo feature.

pub mod chest;
pub mod components;
pub mod mri;
pub mod ops;
pub mod photo;
pub mod text;
