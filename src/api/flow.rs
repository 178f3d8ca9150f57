//! `GET /api/flow`: the last hour per minute (received, de-identified,
//! forwarded, quarantined, dead-lettered) for the page's chart. Counts
//! only; roles operator or reviewer.

use super::throughput::SERIES;
use super::{guard, ApiError, State};
use crate::auth::Role;
use axum::extract::{ConnectInfo, State as S};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;

pub async fn flow(
    S(s): S<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let roles = [Role::Operator, Role::Reviewer];
    guard::require_any(&s, &headers, addr.ip(), "GET /api/flow", &roles).await?;
    let minutes = s.throughput.minutes();
    let mut totals = [0u64; SERIES.len()];
    let rows: Vec<Value> = minutes
        .iter()
        .map(|(start, counts)| {
            let mut row = Map::new();
            row.insert("start".into(), json!(start));
            for (i, name) in SERIES.iter().enumerate() {
                totals[i] += counts[i];
                row.insert((*name).into(), json!(counts[i]));
            }
            Value::Object(row)
        })
        .collect();
    let totals: Map<String, Value> = SERIES
        .iter()
        .zip(totals)
        .map(|(n, t)| ((*n).to_string(), json!(t)))
        .collect();
    Ok(Json(json!({
        "minute_secs": 60,
        "series": SERIES,
        "minutes": rows,
        "totals": totals,
    })))
}
