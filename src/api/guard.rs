//! Authentication and authorization of one request, with the audit trail of
//! every refusal.
//!
//! `Authorization: Bearer dg_...` is checked against the Argon2id hash of the
//! user's token. Refusals are audited (401: who tried from where; 403: which
//! user lacked which role) and 401s count towards the address's lock-out.

use super::{ApiError, Shared};
use crate::auth::{Role, Token, User};
use axum::http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A verified token is trusted this long before Argon2 is run again; the
/// user record (revocation) is still read on every request.
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 1024;

/// SHA-256 of verified tokens -> (user name, verified at).
#[derive(Default)]
pub struct VerifiedCache(Mutex<HashMap<[u8; 32], (String, Instant)>>);

impl VerifiedCache {
    fn get(&self, digest: &[u8; 32]) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(digest)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(name, _)| name.clone())
    }

    fn put(&self, digest: [u8; 32], name: String) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX {
            map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        map.insert(digest, (name, Instant::now()));
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
}

impl Caller {
    /// How the caller appears in the audit log.
    pub fn actor(&self) -> String {
        format!("api:{}", self.user.name)
    }
}

/// Authenticates the request and requires `role`; `what` names the endpoint
/// in the audit log (e.g. `POST /api/reid/patient`).
pub async fn require(
    s: &Shared,
    headers: &HeaderMap,
    ip: IpAddr,
    what: &str,
    role: Role,
) -> Result<Caller, ApiError> {
    require_any(s, headers, ip, what, &[role]).await
}

/// As [`require`], with any one of `roles` enough.
pub async fn require_any(
    s: &Shared,
    headers: &HeaderMap,
    ip: IpAddr,
    what: &str,
    roles: &[Role],
) -> Result<Caller, ApiError> {
    if let Some(secs) = s.limiter.locked(ip) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed authentications from this address; try later",
        );
        e.retry_after = Some(secs);
        return Err(e);
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let Some(text) = presented else {
        return Err(refuse_unauthenticated(
            s,
            ip,
            what,
            None,
            "missing credentials",
        ));
    };
    let Some(token) = Token::parse(text) else {
        return Err(refuse_unauthenticated(s, ip, what, None, "malformed token"));
    };
    let user = match authenticate(s, &token, text).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Err(refuse_unauthenticated(
                s,
                ip,
                what,
                Some(&token.id),
                "invalid or revoked token",
            ))
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    s.limiter.succeed(ip);
    let caller = Caller { user };
    if !roles.iter().any(|r| caller.user.has(*r)) {
        let names = roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        audit_refusal(
            s,
            &caller.actor(),
            what,
            &format!("denied: role {names} required"),
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this endpoint needs the {names} role"),
        ));
    }
    Ok(caller)
}

/// The active user whose token this is, if the secret matches.
async fn authenticate(s: &Shared, token: &Token, text: &str) -> anyhow::Result<Option<User>> {
    let digest: [u8; 32] = Sha256::digest(text.trim().as_bytes()).into();
    if let Some(name) = s.verified.get(&digest) {
        // Cached: still re-read the record so a revocation is immediate.
        return Ok(s
            .users
            .get(&name)?
            .filter(|u| u.revoked.is_none() && u.token_id == token.id));
    }
    let Some(user) = s.users.by_token_id(&token.id)? else {
        return Ok(None);
    };
    let (token, hash) = (token.clone(), user.token_hash.clone());
    let ok = tokio::task::spawn_blocking(move || token.verify(&hash)).await?;
    if !ok {
        return Ok(None);
    }
    s.verified.put(digest, user.name.clone());
    Ok(Some(user))
}

fn refuse_unauthenticated(
    s: &Shared,
    ip: IpAddr,
    what: &str,
    token_id: Option<&str>,
    why: &str,
) -> ApiError {
    let locked = s.limiter.fail(ip);
    let actor = match token_id {
        Some(id) => format!("token:{id}@{ip}"),
        None => format!("anonymous@{ip}"),
    };
    let outcome = if locked {
        format!("denied: {why}; address locked out")
    } else {
        format!("denied: {why}")
    };
    audit_refusal(s, &actor, what, &outcome);
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication required: a valid Bearer token",
    )
}

/// Refusals are audited; a failing audit log is logged, not fatal to the
/// refusal (the request is refused either way).
fn audit_refusal(s: &Shared, actor: &str, what: &str, outcome: &str) {
    let r = s
        .runtime
        .store
        .audit()
        .append(actor, "auth", what, "", None, outcome);
    if let Err(e) = r {
        tracing::error!(error = %e, "cannot audit a refused request");
    }
    tracing::warn!(actor, endpoint = what, outcome, "API request refused");
}
