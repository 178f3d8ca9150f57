//! The gateway's HTTP side: health and metrics for monitoring, the operator
//! page, and the authenticated API (re-identification, pseudonymization,
//! audit, status, the flow chart, and the review of quarantine and dead
//! letters). Every `/api` response carries `Cache-Control: no-store`.

mod actions;
mod audit;
mod error;
mod flow;
mod guard;
mod health;
pub mod listen;
mod models;
mod page;
mod preview;
mod reid;
mod render;
mod review;
mod status;
pub mod throughput;

use crate::auth::{FailureLimiter, UserStore};
use crate::pipeline::router::Router;
use crate::runtime::Runtime;
use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::ApiError;

/// What the handlers share.
pub struct Shared {
    pub runtime: Arc<Runtime>,
    pub router: Arc<Router>,
    pub spool_ready: PathBuf,
    pub users: UserStore,
    pub limiter: FailureLimiter,
    pub verified: guard::VerifiedCache,
    pub throughput: throughput::Throughput,
    /// Header attributes of the files the review lists, read once.
    pub review_headers: review::HeaderCache,
    pub started: Instant,
}

pub type State = Arc<Shared>;

impl Shared {
    pub fn new(runtime: Arc<Runtime>, router: Arc<Router>) -> anyhow::Result<State> {
        let http = &runtime.config.http;
        Ok(Arc::new(Shared {
            spool_ready: runtime.config.data_dir().join("spool").join("ready"),
            users: UserStore::for_store(&runtime.store)?,
            limiter: FailureLimiter::new(
                http.max_auth_failures,
                Duration::from_secs(http.lockout_secs),
            ),
            verified: guard::VerifiedCache::default(),
            throughput: throughput::Throughput::default(),
            review_headers: review::HeaderCache::default(),
            started: Instant::now(),
            runtime,
            router,
        }))
    }
}

/// The whole HTTP application.
pub fn app(state: State) -> axum::Router {
    let api = axum::Router::new()
        .route("/reid/{kind}", post(reid::reid))
        .route("/pseudonymize/patient", post(reid::pseudonymize_patient))
        .route("/audit", get(audit::list))
        .route("/status", get(status::status))
        .route("/flow", get(flow::flow))
        .route("/review", get(review::list))
        .route("/quarantine/{id}/preview", get(preview::preview))
        .route("/quarantine/{id}/release", post(actions::release))
        .route("/quarantine/{id}/purge", post(actions::purge_quarantined))
        .route("/deadletter/retry", post(actions::retry_dead_letter))
        .route("/deadletter/purge", post(actions::purge_dead_letter))
        .fallback(error::not_found)
        .layer(axum::middleware::map_response(no_store));
    axum::Router::new()
        .route("/", get(page::index))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .nest("/api", api)
        .with_state(state)
}

/// Identities must never sit in a browser or proxy cache.
async fn no_store(mut res: axum::response::Response) -> axum::response::Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}
