//! `GET /api/audit`: the audit log for auditors, with filters and the state
//! of the hash chain. Reading the log is itself audited.

use super::{guard, ApiError, State};
use crate::auth::Role;
use crate::keystore::AuditRecord;
use axum::extract::{ConnectInfo, Query, State as S};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

const DEFAULT_LIMIT: usize = 1000;

/// Query parameters; all optional and combined with AND.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    actor: Option<String>,
    action: Option<String>,
    subject: Option<String>,
    /// Prefix match: `denied` matches every refusal.
    outcome: Option<String>,
    /// RFC 3339 UTC bounds on `time`, inclusive.
    since: Option<String>,
    until: Option<String>,
    /// Records with seq greater than this (paging).
    after: Option<u64>,
    limit: Option<usize>,
}

impl Filter {
    fn matches(&self, r: &AuditRecord) -> bool {
        let eq = |f: &Option<String>, v: &str| f.as_deref().is_none_or(|x| x == v);
        eq(&self.actor, &r.actor)
            && eq(&self.action, &r.action)
            && eq(&self.subject, &r.subject)
            && self
                .outcome
                .as_deref()
                .is_none_or(|o| r.outcome.starts_with(o))
            && self.since.as_deref().is_none_or(|t| r.time.as_str() >= t)
            && self.until.as_deref().is_none_or(|t| r.time.as_str() <= t)
            && self.after.is_none_or(|a| r.seq > a)
    }

    /// The filter as one line, for the audit record of this read.
    fn describe(&self) -> String {
        format!("{self:?}")
            .trim_start_matches("Filter ")
            .to_string()
    }
}

pub async fn list(
    S(s): S<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let caller = guard::require(&s, &headers, addr.ip(), "GET /api/audit", Role::Auditor).await?;
    let Query(filter) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let log = s.runtime.store.audit();
    tokio::task::spawn_blocking(move || {
        let chain = match log.verify() {
            Ok(n) => json!({ "intact": true, "records": n }),
            Err(e) => json!({ "intact": false, "error": e.to_string(), "first_bad_seq": e.seq() }),
        };
        let matched = log.list(|r| filter.matches(r))?;
        let limit = filter
            .limit
            .unwrap_or(DEFAULT_LIMIT)
            .min(10 * DEFAULT_LIMIT);
        let total = matched.len();
        let records: Vec<_> = matched.into_iter().take(limit).collect();
        log.append(
            &caller.actor(),
            "audit.read",
            &filter.describe(),
            "",
            None,
            &format!("listed {} of {total}", records.len()),
        )?;
        Ok::<_, anyhow::Error>(Json(json!({
            "chain": chain,
            "matched": total,
            "records": records,
        })))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}
