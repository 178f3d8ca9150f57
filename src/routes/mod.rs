//! Pixel routes: deciding what an image needs and doing it. One folder per
//! route (selection, decode, write-back), all behind [`PixelRoute`]; the
//! transport (spool, workers, forwarding) lives in `pipeline` and knows
//! routes only through the [`PixelRoutes`] registry.

pub mod chest;
pub mod lazy;
pub mod mri;
pub mod native;
pub mod photo;
mod registry;
mod route;
pub mod sealed;
mod status;
pub mod text;

pub use registry::PixelRoutes;
pub use route::{Cleaned, Outcome, PixelRoute, SeriesHook};
pub use status::RouteStatus;
