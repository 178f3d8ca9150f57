//! `GET /api/review`: the quarantined objects and the dead letters, one row
//! each, with what a reviewer decides by: the reason, when, the modality
//! and the SOP class (and frames, attempts). Never an identity: the header
//! is read for those few attributes only, and a quarantined object's origin
//! (which may be a file name) is not shown. Roles operator or reviewer.

use super::{guard, ApiError, State};
use crate::auth::Role;
use crate::pipeline::dead_letter::{self, format_time};
use crate::pipeline::quarantine::Quarantine;
use axum::extract::{ConnectInfo, State as S};
use axum::http::HeaderMap;
use axum::Json;
use dicom_core::dictionary::UidDictionary;
use dicom_dictionary_std::{tags, StandardSopClassDictionary};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Rows listed at most, per table (newest first); the totals count all.
const MAX_LISTED: usize = 200;

/// The few header attributes a row shows.
#[derive(Clone, Default)]
struct Header {
    modality: String,
    sop_class_uid: String,
    frames: usize,
}

impl Header {
    fn read(path: &Path) -> Header {
        let Ok(bytes) = std::fs::read(path) else {
            return Header::default();
        };
        let Ok(obj) = super::render::parse(&bytes, true) else {
            return Header::default();
        };
        let text = |t| crate::dicom::text(&obj, t);
        let mut sop_class_uid = text(tags::SOP_CLASS_UID);
        if sop_class_uid.is_empty() {
            sop_class_uid = obj
                .meta()
                .media_storage_sop_class_uid()
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
        Header {
            modality: text(tags::MODALITY),
            frames: text(tags::NUMBER_OF_FRAMES).parse().unwrap_or(1),
            sop_class_uid,
        }
    }

    fn sop_class(&self) -> String {
        StandardSopClassDictionary
            .by_uid(&self.sop_class_uid)
            .map(|e| e.name.to_string())
            .unwrap_or_else(|| self.sop_class_uid.clone())
    }
}

/// Headers read once per file: quarantined objects are named by their
/// content hash and dead-letter files by a unique name, so a path's header
/// never changes. Entries of files no longer listed are dropped.
#[derive(Default)]
pub struct HeaderCache(Mutex<HashMap<PathBuf, Header>>);

impl HeaderCache {
    fn get(&self, path: &Path) -> Header {
        if let Some(h) = self.lock().get(path) {
            return h.clone();
        }
        let h = Header::read(path);
        self.lock().insert(path.to_path_buf(), h.clone());
        h
    }

    fn keep_only(&self, paths: &HashSet<PathBuf>) {
        self.lock().retain(|p, _| paths.contains(p));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Header>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub async fn list(
    S(s): S<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let roles = [Role::Operator, Role::Reviewer];
    guard::require_any(&s, &headers, addr.ip(), "GET /api/review", &roles).await?;
    tokio::task::spawn_blocking(move || build(&s))
        .await
        .map_err(ApiError::internal)?
        .map(Json)
        .map_err(ApiError::internal)
}

/// `key: value` lines of a quarantine reason file.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
        .unwrap_or("")
        .trim()
}

fn build(s: &State) -> anyhow::Result<Value> {
    let mut seen = HashSet::new();
    let q = Quarantine::new(s.runtime.quarantine_dir());
    let mut objects: Vec<Value> = Vec::new();
    for (id, _) in q.list()? {
        let Ok(reason) = q.reason(&id) else { continue };
        let path = q.dir().join(&id).join("object.dcm");
        let h = s.review_headers.get(&path);
        seen.insert(path);
        objects.push(json!({
            "id": id,
            "reason": field(&reason, "reason"),
            "time": field(&reason, "time"),
            "bytes": field(&reason, "bytes").parse::<u64>().ok(),
            "modality": h.modality,
            "sop_class": h.sop_class(),
            "sop_class_uid": h.sop_class_uid,
            "frames": h.frames,
        }));
    }
    objects.sort_by(|a, b| b["time"].as_str().cmp(&a["time"].as_str()));
    let quarantined = objects.len();
    objects.truncate(MAX_LISTED);

    let mut letters: Vec<(u64, Value)> = Vec::new();
    for t in dead_letter::targets(&s.runtime.config, s.runtime.store.db())? {
        for d in t.queue.dead_letters() {
            let h = s.review_headers.get(&d.job.path);
            seen.insert(d.job.path.clone());
            let when = d.when();
            let sop_class = StandardSopClassDictionary
                .by_uid(&d.job.sop_class)
                .map(|e| e.name.to_string())
                .unwrap_or_else(|| d.job.sop_class.clone());
            letters.push((
                when.unwrap_or(0),
                json!({
                    "id": dead_letter::id(&t.name, &d.job.sop_instance),
                    "destination": t.name,
                    "reason": d.reason(),
                    "time": format_time(when),
                    "attempts": d.job.attempts,
                    "modality": h.modality,
                    "sop_class": sop_class,
                    "retryable": t.outbox.is_some() && d.job.path.exists(),
                }),
            ));
        }
    }
    letters.sort_by_key(|l| std::cmp::Reverse(l.0));
    let dead = letters.len();
    s.review_headers.keep_only(&seen);
    Ok(json!({
        "quarantine": { "total": quarantined, "objects": objects },
        "dead_letters": {
            "total": dead,
            "letters": letters.into_iter().take(MAX_LISTED).map(|(_, v)| v).collect::<Vec<_>>(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_file_fields() {
        let text = "reason: BurnedInAnnotation=YES\norigin: x\nbytes: 12\ntime: 2024-01-02T03:04:05+00:00\n";
        assert_eq!(field(text, "reason"), "BurnedInAnnotation=YES");
        assert_eq!(field(text, "time"), "2024-01-02T03:04:05+00:00");
        assert_eq!(field(text, "bytes"), "12");
        assert_eq!(field(text, "missing"), "");
    }
}
