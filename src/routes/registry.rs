//! The registry: every pixel route, loaded once per runtime, in the order
//! they are tried. Adding a route is one line in [`REGISTRY`].

use super::route::{PixelRoute, SeriesHook};
use super::status::RouteStatus;
use crate::config::Config;
use dicom_object::DefaultDicomObject;

type Loader = fn(&Config) -> anyhow::Result<Box<dyn PixelRoute>>;

/// The routes in the order they claim objects. Head MR first: a head MR
/// instance is only ever cleaned as part of its series. Photographs before
/// chest radiographs (a colour CR would be a photograph of one). The text
/// route last: it takes the images no face or body route claimed.
const REGISTRY: &[Loader] = &[
    super::mri::load,
    super::photo::load,
    super::chest::load,
    super::text::load,
];

pub struct PixelRoutes {
    routes: Vec<Box<dyn PixelRoute>>,
}

impl PixelRoutes {
    /// Loads every route. Missing weights are not an error (the route
    /// quarantines) unless a route is configured to refuse to start.
    pub fn load(cfg: &Config) -> anyhow::Result<PixelRoutes> {
        let routes = REGISTRY
            .iter()
            .map(|load| load(cfg))
            .collect::<anyhow::Result<_>>()?;
        let routes = PixelRoutes { routes };
        routes.report(cfg);
        Ok(routes)
    }

    /// Says which model each enabled route uses and where it was found
    /// (INFO), or that it has none, naming every path searched (ERROR).
    /// Disabled routes say so themselves when they load.
    fn report(&self, cfg: &Config) {
        for s in self.statuses().iter().filter(|s| s.enabled) {
            let models = cfg.models_of(s.route);
            let uses = cfg.describe_models(s.route);
            if s.loaded {
                tracing::info!("{} route ready: {uses}", s.route);
            } else if let Some(m) = models.iter().find(|m| !m.found) {
                tracing::error!(
                    "{} route has no model: {} not found; searched {}; meanwhile {}",
                    s.route,
                    m.key,
                    crate::config::paths::list(&m.searched),
                    s.meanwhile
                );
            } else {
                tracing::error!("{} route not ready ({uses}): {}", s.route, s.meanwhile);
            }
        }
    }

    /// The route responsible for `obj`, if any.
    pub fn claim(&self, obj: &DefaultDicomObject) -> Option<&dyn PixelRoute> {
        self.routes
            .iter()
            .map(|r| r.as_ref())
            .find(|r| r.claims(obj))
    }

    /// The routes that also run on `obj` after `route` has, in registry order.
    pub fn followers(&self, route: &str, obj: &DefaultDicomObject) -> Vec<&dyn PixelRoute> {
        self.routes
            .iter()
            .map(|r| r.as_ref())
            .filter(|r| r.name() != route && r.follows(route, obj))
            .collect()
    }

    /// The route that cleans whole series, if one is registered: its name
    /// and its hook.
    pub fn series(&self) -> Option<(&'static str, &dyn SeriesHook)> {
        self.routes
            .iter()
            .find_map(|r| r.series().map(|h| (r.name(), h)))
    }

    /// Every route's status, in registry order.
    pub fn statuses(&self) -> Vec<RouteStatus> {
        self.routes.iter().map(|r| r.status()).collect()
    }

    /// One route's status by name.
    pub fn status(&self, name: &str) -> Option<RouteStatus> {
        self.routes
            .iter()
            .find(|r| r.name() == name)
            .map(|r| r.status())
    }

    /// Put `route` in the place of the registered route of the same name
    /// (tests and benchmarks plug in stand-in models this way).
    pub fn replace(&mut self, route: Box<dyn PixelRoute>) {
        match self.routes.iter_mut().find(|r| r.name() == route.name()) {
            Some(slot) => *slot = route,
            None => self.routes.push(route),
        }
    }
}
