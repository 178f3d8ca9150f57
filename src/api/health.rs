//! `/healthz` for load balancers and `/metrics` for Prometheus: no
//! authentication, counts only.

use super::State;
use axum::extract::State as S;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

/// 200 when the spool can be written and no fault is set (see
/// [`crate::health`]); 503 with the reasons otherwise.
pub async fn healthz(S(s): S<State>) -> impl IntoResponse {
    let probe = s.spool_ready.with_file_name(".healthz");
    let mut faults: Vec<String> = crate::health::current()
        .into_iter()
        .map(|(name, reason)| format!("{name}: {reason}"))
        .collect();
    if let Err(e) = std::fs::write(&probe, b"ok").and_then(|_| std::fs::remove_file(&probe)) {
        faults.push(format!("spool not writable: {e}"));
    }
    if faults.is_empty() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, faults.join("\n") + "\n")
    }
}

pub async fn metrics(S(s): S<State>) -> impl IntoResponse {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = crate::metrics::render();
    let spool = super::status::spool_ready(&s);
    crate::metrics::line(
        &mut out,
        "deidgate_spool_ready",
        "gauge",
        "Acknowledged instances waiting for the pipeline.",
        spool,
    );
    out.push_str("# HELP deidgate_forward_queue_depth Instances queued per destination.\n# TYPE deidgate_forward_queue_depth gauge\n");
    for d in &s.router.dicom {
        out.push_str(&format!(
            "deidgate_forward_queue_depth{{destination=\"{}\"}} {}\n",
            d.config.name,
            d.queue.depth()
        ));
    }
    // What is waiting for an operator, read from the dead-letter tree (so
    // right after a restart too); the _total counter below counts events
    // since start.
    out.push_str("# HELP deidgate_forward_dead_letters Dead letters waiting per destination (deidgate deadletter list).\n# TYPE deidgate_forward_dead_letters gauge\n");
    for d in &s.router.dicom {
        out.push_str(&format!(
            "deidgate_forward_dead_letters{{destination=\"{}\"}} {}\n",
            d.config.name,
            d.queue.dead_count()
        ));
    }
    for (name, help, pick) in [
        (
            "deidgate_forward_delivered_total",
            "Instances delivered per destination.",
            0,
        ),
        (
            "deidgate_forward_retries_total",
            "Failed attempts that will be retried.",
            1,
        ),
        (
            "deidgate_forward_dead_letter_total",
            "Instances dead-lettered per destination since start (waiting now: deidgate_forward_dead_letters).",
            2,
        ),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for d in &s.router.dicom {
            let c = &d.queue.counters;
            let v = [&c.delivered, &c.retries, &c.dead_lettered][pick].load(Relaxed);
            out.push_str(&format!(
                "{name}{{destination=\"{}\"}} {v}\n",
                d.config.name
            ));
        }
    }
    // Each pixel route: switched on, and its model loaded (0 with the route
    // on means its images go to quarantine).
    let routes = s.runtime.routes.statuses();
    for (name, help, pick) in [
        (
            "deidgate_pixel_route_enabled",
            "Whether a pixel route is switched on.",
            0,
        ),
        (
            "deidgate_pixel_route_loaded",
            "Whether a pixel route's model is loaded (else its images are quarantined).",
            1,
        ),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for r in &routes {
            let v = [r.enabled, r.loaded][pick];
            out.push_str(&format!(
                "{name}{{route=\"{}\"}} {}\n",
                r.route,
                u8::from(v)
            ));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
