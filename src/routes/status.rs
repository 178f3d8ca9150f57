//! How a pixel route stands right now, for the operator page and the status
//! API. Says what happens to claimed instances meanwhile, so the page never
//! suggests that pixels are de-identified when they are not.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct RouteStatus {
    pub route: &'static str,
    pub applies_to: &'static str,
    pub model: &'static str,
    /// The configured weights path.
    pub weights: String,
    pub weights_present: bool,
    /// False only where the configuration switched the route off.
    pub enabled: bool,
    pub loaded: bool,
    pub meanwhile: String,
}
