//! `POST /api/reid/{kind}` (patient, uid, accession) and `POST /api/pseudonymize/patient`:
//! role `reid` only, a reason required, every call audited.

use super::guard::{self, Caller};
use super::{ApiError, State};
use crate::auth::Role;
use crate::reid::{Justification, Lookup};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State as S};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// Body of the re-identification calls.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReidBody {
    pseudonym: Option<String>,
    uid: Option<String>,
    #[serde(default)]
    reason: String,
    ticket: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

async fn authorized(
    s: &State,
    headers: &HeaderMap,
    addr: SocketAddr,
    path: &str,
) -> Result<Caller, ApiError> {
    guard::require(s, headers, addr.ip(), &format!("POST {path}"), Role::Reid).await
}

async fn run_reid(
    s: State,
    caller: Caller,
    what: Lookup,
    body: ReidBody,
) -> Result<Json<Value>, ApiError> {
    let why = Justification {
        reason: body.reason,
        ticket: body.ticket,
    };
    let store = s.runtime.store.clone();
    let actor = caller.actor();
    let subject = what.subject().to_string();
    let result = tokio::task::spawn_blocking(move || {
        let checked = why.check();
        (checked, crate::reid::reveal(&store, &actor, &what, &why))
    })
    .await
    .map_err(ApiError::internal)?;
    match result {
        (Err(e), _) => Err(ApiError::bad_request(e.to_string())),
        (Ok(()), Err(e)) => Err(ApiError::internal(e)),
        (Ok(()), Ok(None)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no record for {subject}"),
        )),
        (Ok(()), Ok(Some(found))) => Ok(Json(json!({ "subject": subject, "revealed": found }))),
    }
}

fn required(v: Option<String>, field: &str) -> Result<String, ApiError> {
    v.map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("field {field:?} is required")))
}

/// `POST /api/reid/{patient,uid,accession}`: the pseudonym (or UID) in the
/// body, the original identifiers out.
pub async fn reid(
    S(s): S<State>,
    Path(kind): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if !["patient", "uid", "accession"].contains(&kind.as_str()) {
        return Err(super::error::not_found().await);
    }
    let caller = authorized(&s, &headers, addr, &format!("/api/reid/{kind}")).await?;
    let b: ReidBody = parse(&body)?;
    let what = match kind.as_str() {
        "uid" => Lookup::Uid(required(b.uid.clone(), "uid")?),
        "patient" => Lookup::Patient(required(b.pseudonym.clone(), "pseudonym")?),
        _ => Lookup::Accession(required(b.pseudonym.clone(), "pseudonym")?),
    };
    run_reid(s, caller, what, b).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PseudonymizeBody {
    patient_id: Option<String>,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    reason: String,
    ticket: Option<String>,
}

/// Original PatientID (+ issuer) -> the pseudonym the gateway gives it, so a
/// research team can link data that arrives later. Audited with the
/// pseudonym as subject; the original ID is not written anywhere.
pub async fn pseudonymize_patient(
    S(s): S<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = authorized(&s, &headers, addr, "/api/pseudonymize/patient").await?;
    let b: PseudonymizeBody = parse(&body)?;
    let id = required(b.patient_id, "patient_id")?;
    let why = Justification {
        reason: b.reason,
        ticket: b.ticket,
    };
    why.check()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let pseudo = s.runtime.deid.pseudonymizer();
    let key = crate::deid::pseudonym::patient_key(&id, &b.issuer, "", "", "");
    let pseudonym = pseudo.patient(&key);
    let name = pseudo.patient_name(&pseudonym);
    let store = s.runtime.store.clone();
    let (actor, subject) = (caller.actor(), pseudonym.clone());
    tokio::task::spawn_blocking(move || {
        store.audit().append(
            &actor,
            "pseudonymize.patient",
            &subject,
            &why.reason,
            why.ticket.as_deref(),
            "issued",
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "patient_id": pseudonym, "patient_name": name }),
    ))
}
