//! `GET /api/quarantine/{id}/preview?frame=N`: a quarantined object's pixels
//! as a downscaled PNG (see [`super::render`]), role `reviewer` only. The
//! pixels may show PHI (that is often why the object is quarantined), so
//! every preview is audited, and a preview whose audit record cannot be
//! written is not sent.

use super::{guard, ApiError, State};
use crate::auth::Role;
use crate::pipeline::quarantine::Quarantine;
use axum::extract::{ConnectInfo, Path, Query, State as S};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// 1-based; the first frame when absent.
    frame: Option<usize>,
}

/// A quarantine id as it may appear in the audit log: the hex the
/// quarantine names objects by, else a placeholder.
pub fn checked_id(id: &str) -> Option<&str> {
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

pub async fn preview(
    S(s): S<State>,
    Path(id): Path<String>,
    query: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let shown = checked_id(&id).unwrap_or("(invalid id)");
    let what = format!("GET /api/quarantine/{shown}/preview");
    let caller = guard::require(&s, &headers, addr.ip(), &what, Role::Reviewer).await?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Some(id) = checked_id(&id).map(str::to_string) else {
        return Err(ApiError::bad_request("not a quarantine id"));
    };
    let frame = q.frame.unwrap_or(1);
    let quarantine = Quarantine::new(s.runtime.quarantine_dir());
    let store = s.runtime.store.clone();
    let actor = caller.actor();
    tokio::task::spawn_blocking(move || {
        let Ok(bytes) = quarantine.object(&id) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no quarantined object {id}"),
            ));
        };
        let audit = |outcome: &str| {
            store
                .audit()
                .append(&actor, "quarantine.preview", &id, "", None, outcome)
                .map_err(ApiError::internal)
        };
        match super::render::render(&bytes, frame) {
            Ok(p) => {
                audit(&format!(
                    "shown frame {} of {} ({}x{}, {})",
                    p.frame, p.frames, p.width, p.height, p.window
                ))?;
                Ok(png_response(p))
            }
            Err(e) => {
                audit(&format!("not_rendered: {e}"))?;
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("no preview: {e}"),
                ))
            }
        }
    })
    .await
    .map_err(ApiError::internal)?
}

fn png_response(p: super::render::Preview) -> Response {
    let mut res = (StatusCode::OK, p.png).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    for (name, value) in [
        ("x-preview-frame", p.frame.to_string()),
        ("x-preview-frames", p.frames.to_string()),
        ("x-preview-window", p.window),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    res
}
