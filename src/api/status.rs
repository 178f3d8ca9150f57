//! `GET /api/status`: what an operator needs to see that the gateway works:
//! counters, throughput, queues, quarantine reasons and model routes. Counts
//! and reasons only, never an identity.

use super::{guard, ApiError, State};
use crate::auth::Role;
use axum::extract::{ConnectInfo, State as S};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

/// Quarantined objects listed individually at most.
const MAX_LISTED: usize = 100;

/// Acknowledged instances not yet through the pipeline: spool log records
/// not done plus files in `ready/`.
pub fn spool_ready(s: &State) -> usize {
    let logged = crate::metrics::METRICS.spool_logged.load(Relaxed).max(0) as usize;
    logged
        + std::fs::read_dir(&s.spool_ready)
            .map(|d| d.count())
            .unwrap_or(0)
}

pub async fn status(
    S(s): S<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    guard::require(&s, &headers, addr.ip(), "GET /api/status", Role::Operator).await?;
    tokio::task::spawn_blocking(move || build(&s))
        .await
        .map_err(ApiError::internal)
        .map(Json)
}

fn build(s: &State) -> Value {
    let m = &crate::metrics::METRICS;
    let (received_pm, deid_pm) = s.throughput.per_minute();
    let destinations: Vec<Value> = s
        .router
        .dicom
        .iter()
        .map(|d| {
            let c = &d.queue.counters;
            json!({
                "name": d.config.name,
                "type": "dicom",
                "queue_depth": d.queue.depth(),
                "delivered": c.delivered.load(Relaxed),
                "retries": c.retries.load(Relaxed),
                // Waiting now (read from the dead-letter tree, so right
                // after a restart too); `deidgate deadletter list` shows them.
                "dead_lettered": d.queue.dead_count(),
                "dead_lettered_since_start": c.dead_lettered.load(Relaxed),
            })
        })
        .chain(
            s.router
                .folders()
                .map(|name| json!({ "name": name, "type": "folder" })),
        )
        .collect();
    let q = crate::pipeline::quarantine::Quarantine::new(s.runtime.quarantine_dir());
    let listed = q.list().unwrap_or_default();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (_, reason) in &listed {
        *reasons.entry(reason.clone()).or_default() += 1;
    }
    let cfg = &s.runtime.config;
    json!({
        "node": {
            "ae_title": cfg.node.ae_title,
            "port": cfg.node.port,
            "uptime_secs": s.started.elapsed().as_secs(),
            "version": env!("CARGO_PKG_VERSION"),
        },
        "associations": {
            "active": m.associations_active.load(Relaxed),
            "total": m.associations.load(Relaxed),
            "rejected": m.associations_rejected.load(Relaxed),
        },
        "instances": {
            "received": m.instances_stored.load(Relaxed),
            "refused": m.instances_refused.load(Relaxed),
            "deidentified": m.instances_deidentified.load(Relaxed),
            "quarantined": m.instances_quarantined.load(Relaxed),
            "duplicate_uids": m.duplicate_uids.load(Relaxed),
            // Objects whose output held an original identifier (output guard).
            "guard_hits": m.guard_hits.load(Relaxed),
            "spool_ready": spool_ready(s),
        },
        "health": crate::health::current().into_iter()
            .map(|(fault, reason)| json!({"fault": fault, "reason": reason}))
            .collect::<Vec<_>>(),
        "spool": {
            "ready": spool_ready(s),
            "damaged_records": m.spool_damaged_records.load(Relaxed),
            "damaged_segments_kept": m.spool_damaged_segments.load(Relaxed),
        },
        "throughput_per_minute": {
            "received": (received_pm * 10.0).round() / 10.0,
            "deidentified": (deid_pm * 10.0).round() / 10.0,
        },
        "destinations": destinations,
        "quarantine": {
            "total": listed.len(),
            "reasons": reasons.iter().map(|(r, n)| json!({"reason": r, "count": n})).collect::<Vec<_>>(),
            "objects": listed.iter().take(MAX_LISTED).map(|(id, r)| json!({"id": id, "reason": r})).collect::<Vec<_>>(),
        },
        "models": super::models::routes(&s.runtime),
    })
}
