//! Training and evaluation of the pixel models: data sets, losses, training
//! loops, the attacker and classifier networks used only to judge a model,
//! and the protocols behind `deidgate train` and `deidgate eval`. The gateway
//! never runs this code; what it runs at inference is in `crate::models`,
//! which this tree builds on (never the other way round).

pub mod chest;
pub mod mri;
pub mod ops;
pub mod photo;
