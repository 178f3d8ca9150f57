//! The pixel routes, bundled: loaded once per runtime and passed as one
//! borrow through batch mode and the spool workers, so adding a route does
//! not widen every signature on the way.

use super::chest::ChestRoute;
use super::photo::PhotoRoute;
use crate::config::Config;

pub struct PixelRoutes {
    /// Photographs: MTCNN face replacement.
    pub photo: PhotoRoute,
    /// Chest radiographs: learned deformation field.
    pub chest: ChestRoute,
}

impl PixelRoutes {
    /// Loads every route's model. Missing weights are not an error (the
    /// route quarantines) unless a route is configured to refuse to start.
    pub fn load(cfg: &Config) -> anyhow::Result<PixelRoutes> {
        Ok(PixelRoutes {
            photo: PhotoRoute::load(&cfg.photo),
            chest: ChestRoute::load(&cfg.chest)?,
        })
    }
}
