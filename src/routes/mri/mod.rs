//! The head MR route: a series becomes one volume, the face model changes
//! only the voxels of its face mask, and each slice goes back into its own
//! instance with its geometry and bit depth. The transport holds the series
//! (`pipeline::series`) and hands it over through [`crate::routes::SeriesHook`].

pub mod box_model;
pub mod geometry;
pub mod model;
pub mod pixels;
pub mod route;
pub mod select;
pub mod series;
pub mod volume;

pub use model::FaceModel;
pub use route::{load, MriRoute};
