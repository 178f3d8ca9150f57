//! Chest radiograph de-identification with a learned deformation field
//! (PriCheXy-Net, Packhäuser et al., MICCAI 2023), in Candle.
//!
//! A U-Net ([`unet`]) predicts a small displacement field whose magnitude is
//! bounded by μ and which is Gaussian-smoothed ([`warp`]); the image is
//! resampled along it. The gateway only needs [`ChestDeformer`]; it applies
//! the field at native resolution itself (`crate::routes::chest::geometry`).
//! The field is trained against a patient re-identification network while an
//! abnormality classifier keeps the image useful; that training and its
//! evaluation live in `crate::train::chest`.

pub mod config;
pub mod deformer;
pub mod unet;
pub mod warp;

pub use config::ChestConfig;
pub use deformer::ChestDeformer;
