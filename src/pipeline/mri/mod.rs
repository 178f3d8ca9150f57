//! The head MR route: a series becomes one volume, the face model changes
//! only the voxels of its face mask, and each slice goes back into its own
//! instance with its geometry and bit depth (see `series` for how the
//! series is gathered).

pub mod box_model;
pub mod config;
pub mod geometry;
pub mod model;
pub mod pixels;
pub mod route;
pub mod select;
pub mod volume;

pub use config::MriConfig;
pub use model::{FaceModel, Volume};
pub use route::MriRoute;
