//! What the review page does, through the code the CLI runs:
//!
//! * `POST /api/quarantine/{id}/release` `{"reason"}`, role `reviewer`: the
//!   CLI's `quarantine release`, sent to this gateway's own admin socket so
//!   that it runs with the live spool and queue, exactly as
//!   `deidgate quarantine release` against a running gateway does (audited
//!   there as `quarantine.release`);
//! * `POST /api/quarantine/{id}/purge` `{"reason"?}`, role `operator`:
//!   `quarantine purge`, audited here (`quarantine.purge`) before it acts;
//! * `POST /api/deadletter/retry` and `/api/deadletter/purge` `{"id"}`, role
//!   `operator`: `deadletter retry|purge`, in this process (the forwarder is
//!   woken), audited by that code.

use super::preview::checked_id;
use super::{guard, ApiError, State};
use crate::admin::commands::StoreCmd;
use crate::auth::Role;
use crate::cli::args::DeadLetterCmd;
use crate::pipeline::quarantine::Quarantine;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State as S};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdBody {
    id: String,
}

fn parse<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// The quarantined object `id`, which must exist.
fn quarantined(s: &State, id: &str) -> Result<(Quarantine, String), ApiError> {
    let Some(id) = checked_id(id) else {
        return Err(ApiError::bad_request("not a quarantine id"));
    };
    let q = Quarantine::new(s.runtime.quarantine_dir());
    if q.reason(id).is_err() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no quarantined object {id}"),
        ));
    }
    Ok((q, id.to_string()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

pub async fn release(
    S(s): S<State>,
    Path(id): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let what = format!(
        "POST /api/quarantine/{}/release",
        checked_id(&id).unwrap_or("(invalid id)")
    );
    let caller = guard::require(&s, &headers, addr.ip(), &what, Role::Reviewer).await?;
    let b: ReasonBody = parse(&body)?;
    let (_, id) = quarantined(&s, &id)?;
    let reason = b.reason.trim().to_string();
    if reason.is_empty() {
        return Err(ApiError::bad_request(
            "a reason is required: say why the object may pass the filter",
        ));
    }
    let data_dir = s.runtime.config.data_dir().to_path_buf();
    let actor = caller.actor();
    let cmd = StoreCmd::Release {
        id: id.clone(),
        reason,
    };
    let reply = blocking(move || match crate::admin::send(&data_dir, &actor, &cmd) {
        Ok(Some(Ok(reply))) => Ok(reply),
        Ok(Some(Err(e))) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("not released: {e:#}"),
        )),
        Ok(None) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway's admin socket is not available; release with `deidgate quarantine release`",
        )),
        Err(e) => Err(ApiError::internal(format!("{e:#}"))),
    })
    .await?;
    Ok(Json(
        json!({ "released": id, "message": reply.stdout.trim() }),
    ))
}

pub async fn purge_quarantined(
    S(s): S<State>,
    Path(id): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let what = format!(
        "POST /api/quarantine/{}/purge",
        checked_id(&id).unwrap_or("(invalid id)")
    );
    let caller = guard::require(&s, &headers, addr.ip(), &what, Role::Operator).await?;
    let b: ReasonBody = parse(&body)?;
    let (q, id) = quarantined(&s, &id)?;
    let store = s.runtime.store.clone();
    let actor = caller.actor();
    let purged = id.clone();
    blocking(move || {
        store
            .audit()
            .append(
                &actor,
                "quarantine.purge",
                &id,
                b.reason.trim(),
                None,
                "purge",
            )
            .map_err(ApiError::internal)?;
        q.purge(&id).map_err(ApiError::internal)?;
        tracing::info!(quarantine_id = %id, "purged from quarantine");
        Ok(())
    })
    .await?;
    Ok(Json(
        json!({ "purged": purged, "message": format!("purged {purged}") }),
    ))
}

/// Retry or purge one dead letter, as `deidgate deadletter retry|purge ID`.
async fn dead_letter(
    s: State,
    addr: SocketAddr,
    headers: HeaderMap,
    body: Bytes,
    retry: bool,
) -> Result<Json<Value>, ApiError> {
    let what = if retry {
        "POST /api/deadletter/retry"
    } else {
        "POST /api/deadletter/purge"
    };
    let caller = guard::require(&s, &headers, addr.ip(), what, Role::Operator).await?;
    let b: IdBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let id = b.id.trim().to_string();
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "field \"id\": <destination>/<SOP Instance UID>",
        ));
    }
    let cmd = if retry {
        DeadLetterCmd::Retry {
            id: Some(id.clone()),
            all: false,
            destination: None,
        }
    } else {
        DeadLetterCmd::Purge { id: id.clone() }
    };
    let actor = caller.actor();
    let reply = blocking(move || {
        let rt = &s.runtime;
        crate::admin::dead_letters::run(&rt.config, &rt.store, &actor, cmd).map_err(|e| {
            let text = format!("{e:#}");
            let status = if text.starts_with("no dead letter") {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::CONFLICT
            };
            ApiError::new(status, text)
        })
    })
    .await?;
    let message = format!("{}{}", reply.stdout, reply.stderr);
    Ok(Json(json!({ "id": id, "message": message.trim() })))
}

pub async fn retry_dead_letter(
    S(s): S<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    dead_letter(s, addr, headers, body, true).await
}

pub async fn purge_dead_letter(
    S(s): S<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    dead_letter(s, addr, headers, body, false).await
}
