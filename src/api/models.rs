//! The pixel routes and whether their models are usable, for the status
//! page: each route reports its own [`RouteStatus`], in registry order.

use crate::routes::RouteStatus;
use crate::runtime::Runtime;

pub fn routes(rt: &Runtime) -> Vec<RouteStatus> {
    rt.routes.statuses()
}
