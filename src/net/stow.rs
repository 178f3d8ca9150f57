//! The DICOMweb STOW-RS sender of `type = "stow"` destinations (PS3.18 10.5).
//!
//! One batch (one study, at most `batch_size` instances) is one
//! `POST <url>/studies` with a `multipart/related; type="application/dicom"`
//! body streamed from the outbox files. The archive's response (DICOM JSON)
//! decides each instance: delivered only when listed in its
//! ReferencedSOPSequence; listed in FailedSOPSequence with a reason that may
//! clear (A7xx, out of resources) it is retried, else dead-lettered; not
//! listed at all it is retried.
//!
//! HTTP status mapping: 2xx (200 all stored, 202 some stored) and 409
//! (conflict: none stored) are decided per listing as above; 408, 429 and
//! 5xx, time-outs and connection errors retry the whole batch with back-off;
//! every other status (other 4xx, 3xx: redirects are not followed) is
//! permanent and dead-letters the batch with the status as the reason.
//!
//! A "duplicate SOP instance" failure (0111) is not taken as delivered: the
//! archive holds *an* instance with that UID, not necessarily this content.
//! It is dead-lettered with that reason, where an operator decides.

use super::scu::{Outcome, Outgoing};
use crate::config::{DestinationConfig, StowAuth};
use anyhow::{bail, Context, Result};
use reqwest::blocking::{Body, Client};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// FailedSOPSequence (0008,1198).
const FAILED_SOP_SEQUENCE: &str = "00081198";
/// ReferencedSOPSequence (0008,1199).
const REFERENCED_SOP_SEQUENCE: &str = "00081199";
/// ReferencedSOPInstanceUID (0008,1155).
const REFERENCED_SOP_INSTANCE_UID: &str = "00081155";
/// FailureReason (0008,1197).
const FAILURE_REASON: &str = "00081197";
/// WarningReason (0008,1196).
const WARNING_REASON: &str = "00081196";

/// Longest excerpt of an error response body kept in a reason.
const EXCERPT: usize = 200;

/// A STOW-RS destination: the endpoint, its credentials file and a client
/// (with its TLS settings) reused across batches.
pub struct Stow {
    name: String,
    studies_url: String,
    auth: StowAuth,
    auth_file: PathBuf,
    client: Client,
}

impl std::fmt::Debug for Stow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stow")
            .field("name", &self.name)
            .field("studies_url", &self.studies_url)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// The credentials read from `auth_file` (re-read for each request, so an
/// external refresher can rotate a token without a restart).
enum Credentials {
    None,
    Basic(String, String),
    Bearer(String),
}

impl Stow {
    /// Check the destination's files (credentials, CA, client certificate)
    /// and build its client. Errors name the destination and the file.
    pub fn new(cfg: &DestinationConfig) -> Result<Stow> {
        let n = &cfg.name;
        let base = cfg.url.trim().trim_end_matches('/');
        let mut builder = Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(cfg.timeout_secs.clamp(1, 30)))
            // A redirect is answered as a permanent failure: credentials
            // and data go only where the configuration says.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("deidgate/", env!("CARGO_PKG_VERSION")));
        if !cfg.ca.is_empty() {
            let pem = std::fs::read(&cfg.ca)
                .with_context(|| format!("[[destination]] {n}: ca: cannot read {}", cfg.ca))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("[[destination]] {n}: ca: {} is not PEM", cfg.ca))?;
            if certs.is_empty() {
                bail!("[[destination]] {n}: ca: no certificate in {}", cfg.ca);
            }
            // Only this bundle: a private CA replaces the web roots.
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if !cfg.client_cert.is_empty() {
            let mut pem = std::fs::read(&cfg.client_key).with_context(|| {
                format!(
                    "[[destination]] {n}: client_key: cannot read {}",
                    cfg.client_key
                )
            })?;
            warn_if_readable_by_others(n, "client_key", Path::new(&cfg.client_key));
            pem.push(b'\n');
            pem.extend(std::fs::read(&cfg.client_cert).with_context(|| {
                format!(
                    "[[destination]] {n}: client_cert: cannot read {}",
                    cfg.client_cert
                )
            })?);
            let id = reqwest::Identity::from_pem(&pem).with_context(|| {
                format!(
                    "[[destination]] {n}: client_cert/client_key: not a PEM certificate and key"
                )
            })?;
            builder = builder.identity(id);
        }
        let stow = Stow {
            name: n.clone(),
            studies_url: format!("{base}/studies"),
            auth: cfg.auth,
            auth_file: PathBuf::from(&cfg.auth_file),
            // Built on a plain thread: the blocking client must not be made
            // inside an async context, and the router may run in one.
            client: std::thread::scope(|s| s.spawn(|| builder.build()).join())
                .map_err(|_| anyhow::anyhow!("building the HTTP client panicked"))?
                .with_context(|| format!("[[destination]] {n}: cannot set up the HTTP client"))?,
        };
        stow.credentials()
            .map_err(|e| anyhow::anyhow!("[[destination]] {n}: {e}"))?;
        if stow.auth != StowAuth::None {
            warn_if_readable_by_others(n, "auth_file", &stow.auth_file);
        }
        Ok(stow)
    }

    /// Where batches go.
    pub fn studies_url(&self) -> &str {
        &self.studies_url
    }

    fn credentials(&self) -> Result<Credentials, String> {
        if self.auth == StowAuth::None {
            return Ok(Credentials::None);
        }
        let f = self.auth_file.display();
        let text = std::fs::read_to_string(&self.auth_file)
            .map_err(|e| format!("auth_file: cannot read {f}: {e}"))?;
        let text = text.trim();
        match self.auth {
            StowAuth::None => Ok(Credentials::None),
            StowAuth::Basic => match text.split_once(':') {
                Some((u, p)) if !u.is_empty() && !text.contains('\n') => {
                    Ok(Credentials::Basic(u.to_string(), p.to_string()))
                }
                _ => Err(format!("auth_file: {f}: expected one line user:password")),
            },
            StowAuth::Bearer => {
                if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    Err(format!("auth_file: {f}: expected one token on one line"))
                } else {
                    Ok(Credentials::Bearer(text.to_string()))
                }
            }
        }
    }

    fn request(&self, url: &str, post: bool) -> Result<reqwest::blocking::RequestBuilder, String> {
        let r = if post {
            self.client.post(url)
        } else {
            self.client.get(url)
        };
        let r = r.header(reqwest::header::ACCEPT, "application/dicom+json");
        Ok(match self.credentials()? {
            Credentials::None => r,
            Credentials::Basic(u, p) => r.basic_auth(u, Some(p)),
            Credentials::Bearer(t) => r.bearer_auth(t),
        })
    }

    /// Send `items` (one study) in one request, reporting each outcome to
    /// `done`. An `Err` means the request itself failed (connection, time-out,
    /// 408/429/5xx, an unreadable outbox file): every item not reported
    /// should be retried.
    pub fn send_batch(
        &self,
        items: &[Outgoing],
        mut done: impl FnMut(usize, Outcome),
    ) -> Result<(), String> {
        if items.is_empty() {
            return Ok(());
        }
        let boundary = format!("deidgate-{}", hex::encode(rand::random::<[u8; 16]>()));
        let (body, len) = multipart(items, &boundary)?;
        let content_type =
            format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
        let resp = self
            .request(&self.studies_url, true)?
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(Body::sized(body, len))
            .send()
            .map_err(|e| describe(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().map_err(|e| {
            format!(
                "HTTP {status}: reading the response failed: {}",
                describe(&e)
            )
        })?;
        match decide(status, &bytes, items) {
            Decision::Each(outcomes) => {
                for (i, o) in outcomes.into_iter().enumerate() {
                    done(i, o);
                }
                Ok(())
            }
            Decision::All(Outcome::Retry(why)) => Err(why),
            Decision::All(o) => {
                for i in 0..items.len() {
                    done(i, o.clone());
                }
                Ok(())
            }
        }
    }

    /// `deidgate check`: the endpoint answers and takes our credentials
    /// (one QIDO-RS query for at most one study).
    pub fn probe(&self) -> Result<String, String> {
        let url = format!("{}?limit=1", self.studies_url);
        let resp = self
            .request(&url, false)?
            .send()
            .map_err(|e| format!("{}: {}", self.studies_url, describe(&e)))?;
        let s = resp.status();
        match s {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(format!(
                "{}: HTTP {s}: the archive refuses our credentials",
                self.studies_url
            )),
            s if s.is_server_error() => Err(format!("{}: HTTP {s}", self.studies_url)),
            s => Ok(format!("STOW-RS {} answers (HTTP {s})", self.studies_url)),
        }
    }
}

fn warn_if_readable_by_others(dest: &str, key: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(destination = dest, file = %path.display(), "{key} is readable by others than its owner: chmod 600");
        }
    }
}

/// A short description of a request failure, without the URL's secrets
/// (reqwest never puts credentials in its errors; we add the kind).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_request() {
        "request failed"
    } else {
        "HTTP error"
    };
    let mut msg = format!("STOW-RS {kind}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// The multipart body, streamed from the outbox files, and its length.
fn multipart(items: &[Outgoing], boundary: &str) -> Result<(Parts, u64), String> {
    let mut segments = Vec::with_capacity(items.len() * 2 + 1);
    let mut len = 0u64;
    for it in items {
        let head = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
        let size = std::fs::metadata(&it.path)
            .map_err(|e| format!("outbox file unreadable: {}: {e}", it.path.display()))?
            .len();
        len += head.len() as u64 + size + 2;
        segments.push(Segment::Bytes(head));
        segments.push(Segment::File(it.path.clone(), size));
        segments.push(Segment::Bytes(b"\r\n".to_vec()));
    }
    let tail = format!("--{boundary}--\r\n").into_bytes();
    len += tail.len() as u64;
    segments.push(Segment::Bytes(tail));
    segments.reverse();
    Ok((
        Parts {
            segments,
            current: None,
        },
        len,
    ))
}

enum Segment {
    Bytes(Vec<u8>),
    File(PathBuf, u64),
}

/// A reader over the parts of a multipart body, opening one file at a time.
struct Parts {
    /// What is left, last segment first.
    segments: Vec<Segment>,
    current: Option<Box<dyn Read + Send>>,
}

impl Read for Parts {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(r) = &mut self.current {
                let n = r.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            match self.segments.pop() {
                None => return Ok(0),
                Some(Segment::Bytes(b)) => self.current = Some(Box::new(std::io::Cursor::new(b))),
                // `take`: a file that grew cannot break the framing; one that
                // shrank fails the request (the length is announced).
                Some(Segment::File(p, size)) => {
                    self.current = Some(Box::new(std::fs::File::open(&p)?.take(size)))
                }
            }
        }
    }
}

/// What a response means for a batch.
#[derive(Debug, PartialEq)]
enum Decision {
    /// One outcome per item, in order.
    Each(Vec<Outcome>),
    /// The same outcome for every item (a retry: the whole batch again).
    All(Outcome),
}

/// Map an HTTP status and its body to the batch's outcomes.
fn decide(status: StatusCode, body: &[u8], items: &[Outgoing]) -> Decision {
    let code = status.as_u16();
    let excerpt = || {
        let t = String::from_utf8_lossy(&body[..body.len().min(EXCERPT)]);
        let t: String = t
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let t = t.trim().to_string();
        if t.is_empty() {
            String::new()
        } else {
            format!(": {t}")
        }
    };
    if status.is_success() || status == StatusCode::CONFLICT {
        let listing = Listing::parse(body);
        return Decision::Each(
            items
                .iter()
                .map(|it| listing.outcome(&it.sop_instance, code))
                .collect(),
        );
    }
    if code == 408 || code == 429 || status.is_server_error() {
        return Decision::All(Outcome::Retry(format!(
            "STOW-RS: HTTP {status}{}",
            excerpt()
        )));
    }
    Decision::All(Outcome::DeadLetter(format!(
        "STOW-RS refused the batch: HTTP {status}{}",
        excerpt()
    )))
}

/// The instances a STOW-RS response lists.
#[derive(Debug, Default)]
struct Listing {
    /// Referenced (stored), with the warning reason when there is one.
    referenced: HashMap<String, u16>,
    /// Failed, with the failure reason (0 when absent).
    failed: HashMap<String, u16>,
    /// Why the response could not be read, if it could not.
    unreadable: Option<String>,
}

impl Listing {
    fn parse(body: &[u8]) -> Listing {
        let mut l = Listing::default();
        if body.iter().all(u8::is_ascii_whitespace) {
            l.unreadable = Some("the response has no body".into());
            return l;
        }
        let v: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                l.unreadable = Some(format!("the response is not DICOM JSON ({e})"));
                return l;
            }
        };
        // A data set, or (some archives) an array holding one.
        let sets: Vec<&serde_json::Value> = match &v {
            serde_json::Value::Array(a) => a.iter().collect(),
            o => vec![o],
        };
        for ds in sets {
            for (seq, into, reason) in [
                (REFERENCED_SOP_SEQUENCE, &mut l.referenced, WARNING_REASON),
                (FAILED_SOP_SEQUENCE, &mut l.failed, FAILURE_REASON),
            ] {
                for item in values(ds, seq) {
                    let Some(uid) = values(item, REFERENCED_SOP_INSTANCE_UID)
                        .first()
                        .and_then(|u| u.as_str())
                    else {
                        continue;
                    };
                    let code = values(item, reason).first().and_then(number).unwrap_or(0);
                    into.insert(uid.trim_end_matches(['\0', ' ']).to_string(), code);
                }
            }
        }
        l
    }

    fn outcome(&self, sop: &str, http: u16) -> Outcome {
        if let Some(&w) = self.referenced.get(sop) {
            return Outcome::Delivered { status: w };
        }
        if let Some(&r) = self.failed.get(sop) {
            let why = format!(
                "STOW-RS (HTTP {http}): the archive failed the instance: {}",
                failure_text(r)
            );
            return if r & 0xFF00 == 0xA700 {
                Outcome::Retry(why)
            } else {
                Outcome::DeadLetter(why)
            };
        }
        Outcome::Retry(match &self.unreadable {
            Some(u) => format!("STOW-RS (HTTP {http}): {u}; the instance is not known stored"),
            None => format!("STOW-RS (HTTP {http}): the response does not list the instance"),
        })
    }
}

/// The `Value` array of attribute `tag` in a DICOM JSON data set.
fn values<'a>(ds: &'a serde_json::Value, tag: &str) -> &'a [serde_json::Value] {
    ds.get(tag)
        .or_else(|| ds.get(tag.to_ascii_lowercase()))
        .and_then(|a| a.get("Value"))
        .and_then(|v| v.as_array())
        .map_or(&[], |a| a.as_slice())
}

fn number(v: &serde_json::Value) -> Option<u16> {
    v.as_u64()
        .map(|n| n as u16)
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A FailureReason with its meaning (PS3.18 Table I.2-3; PS3.4 B.2.3).
fn failure_text(code: u16) -> String {
    let meaning = match code {
        0 => return "no failure reason given".to_string(),
        0x0110 => "processing failure",
        0x0111 => "duplicate SOP instance (the archive already holds this UID)",
        0x0117 => "invalid SOP instance",
        0x0122 => "SOP class not supported",
        0x0124 => "not authorized",
        0xA770 => "transfer syntax not supported",
        0xA771 => "stored elsewhere (study instance UID mismatch)",
        c if c & 0xFF00 == 0xA700 => "out of resources",
        c if c & 0xFF00 == 0xA900 => "data set does not match SOP class",
        c if c & 0xF000 == 0xC000 => "cannot understand",
        _ => "failure",
    };
    format!("{meaning} ({code:04X}H)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    fn item(sop: &str) -> Outgoing {
        Outgoing {
            path: PathBuf::from(format!("/nonexistent/{sop}")),
            sop_class: "1.2.840.10008.5.1.4.1.1.7".into(),
            sop_instance: sop.into(),
        }
    }

    fn seq(uids: &[(&str, Option<u16>)], reason: &str) -> serde_json::Value {
        serde_json::json!({
            "vr": "SQ",
            "Value": uids.iter().map(|(u, r)| {
                let mut o = serde_json::json!({
                    "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
                    "00081155": {"vr": "UI", "Value": [u]},
                });
                if let Some(r) = r {
                    o[reason] = serde_json::json!({"vr": "US", "Value": [r]});
                }
                o
            }).collect::<Vec<_>>()
        })
    }

    #[test]
    fn each_instance_is_decided_by_the_listing() {
        let items = [
            item("2.25.1"),
            item("2.25.2"),
            item("2.25.3"),
            item("2.25.4"),
        ];
        let body = serde_json::json!({
            "00081199": seq(&[("2.25.1", None), ("2.25.4", Some(0xB000))], WARNING_REASON),
            "00081198": seq(&[("2.25.2", Some(0xA700)), ("2.25.3", Some(0x0122))], FAILURE_REASON),
        })
        .to_string();
        let Decision::Each(o) = decide(StatusCode::ACCEPTED, body.as_bytes(), &items) else {
            panic!("per instance")
        };
        assert_eq!(o[0], Outcome::Delivered { status: 0 });
        assert!(matches!(&o[1], Outcome::Retry(w) if w.contains("out of resources")));
        assert!(
            matches!(&o[2], Outcome::DeadLetter(w) if w.contains("SOP class not supported (0122H)"))
        );
        assert_eq!(o[3], Outcome::Delivered { status: 0xB000 });
    }

    #[test]
    fn an_instance_counts_as_delivered_only_when_listed() {
        let items = [item("2.25.1"), item("2.25.2")];
        // 200 without a body, or with one that does not list it: retried.
        for body in ["", "<xml/>", r#"{"00081199": {"vr": "SQ", "Value": []}}"#] {
            let Decision::Each(o) = decide(StatusCode::OK, body.as_bytes(), &items) else {
                panic!()
            };
            assert!(
                o.iter().all(|o| matches!(o, Outcome::Retry(_))),
                "{body}: {o:?}"
            );
        }
        // 409 with a duplicate: dead-lettered (not taken as delivered),
        // unless the archive also lists it as stored.
        let body = serde_json::json!({
            "00081198": seq(&[("2.25.1", Some(0x0111)), ("2.25.2", Some(0x0111))], FAILURE_REASON),
            "00081199": seq(&[("2.25.2", None)], WARNING_REASON),
        })
        .to_string();
        let Decision::Each(o) = decide(StatusCode::CONFLICT, body.as_bytes(), &items) else {
            panic!()
        };
        assert!(matches!(&o[0], Outcome::DeadLetter(w) if w.contains("duplicate")));
        assert_eq!(o[1], Outcome::Delivered { status: 0 });
        // An array holding the data set, lower-case tags: read as well.
        let body = format!(
            "[{}]",
            r#"{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["2.25.1"]}}]}}"#
        );
        let Decision::Each(o) = decide(StatusCode::OK, body.as_bytes(), &items) else {
            panic!()
        };
        assert_eq!(o[0], Outcome::Delivered { status: 0 });
        assert!(matches!(o[1], Outcome::Retry(_)));
    }

    #[test]
    fn http_statuses_map_to_retry_or_dead_letter() {
        let items = [item("2.25.1")];
        for s in [408, 429, 500, 502, 503, 504] {
            let d = decide(StatusCode::from_u16(s).unwrap(), b"busy", &items);
            assert!(
                matches!(&d, Decision::All(Outcome::Retry(w)) if w.contains(&s.to_string())),
                "{s}: {d:?}"
            );
        }
        for s in [301, 400, 401, 403, 404, 405, 413, 415] {
            let d = decide(StatusCode::from_u16(s).unwrap(), b"no\nway", &items);
            assert!(
                matches!(&d, Decision::All(Outcome::DeadLetter(w)) if w.contains(&s.to_string()) && w.ends_with("no way")),
                "{s}: {d:?}"
            );
        }
    }

    /// A one-shot HTTP server: answers `status` with `body` and returns the
    /// request head and body it got.
    fn serve_once(
        status: &str,
        body: String,
    ) -> (String, std::thread::JoinHandle<(String, Vec<u8>)>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/dicom-web", l.local_addr().unwrap());
        let status = status.to_string();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut got = vec![0; len];
            r.read_exact(&mut got).unwrap();
            let mut s = s;
            write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/dicom+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            (head, got)
        });
        (url, h)
    }

    fn config(url: &str, auth: &str, auth_file: &Path) -> DestinationConfig {
        let t = format!(
            "name = \"web\"\ntype = \"stow\"\nurl = \"{url}\"\nauth = \"{auth}\"\nauth_file = \"{}\"\n",
            auth_file.display()
        );
        let c: DestinationConfig = toml::from_str(&t).unwrap();
        c.validate().unwrap();
        c
    }

    #[test]
    fn a_bearer_token_from_its_file_goes_in_the_header_and_the_body_is_multipart() {
        let tmp = tempfile::tempdir().unwrap();
        let token = tmp.path().join("token");
        std::fs::write(&token, "s3cr3t-T0ken\n").unwrap();
        let files: Vec<Outgoing> = (1..=2)
            .map(|i| {
                let p = tmp.path().join(format!("{i}.dcm"));
                std::fs::write(&p, format!("DICM-content-{i}")).unwrap();
                Outgoing {
                    path: p,
                    sop_class: "1.2.840.10008.5.1.4.1.1.7".into(),
                    sop_instance: format!("2.25.{i}"),
                }
            })
            .collect();
        let reply = serde_json::json!({
            "00081199": seq(&[("2.25.1", None)], WARNING_REASON),
            "00081198": seq(&[("2.25.2", Some(0xC000))], FAILURE_REASON),
        })
        .to_string();
        let (url, server) = serve_once("202 Accepted", reply);
        let stow = Stow::new(&config(&url, "bearer", &token)).unwrap();
        let mut got = Vec::new();
        stow.send_batch(&files, |i, o| got.push((i, o))).unwrap();
        let (head, body) = server.join().unwrap();
        assert!(
            head.starts_with("POST /dicom-web/studies HTTP/1.1\r\n"),
            "{head}"
        );
        let h = head.to_ascii_lowercase();
        assert!(
            head.contains("authorization: Bearer s3cr3t-T0ken\r\n"),
            "{head}"
        );
        assert!(h.contains("accept: application/dicom+json\r\n"), "{head}");
        let ct = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
            .unwrap();
        assert!(
            ct.contains("multipart/related; type=\"application/dicom\"; boundary="),
            "{ct}"
        );
        let boundary = ct.split("boundary=").nth(1).unwrap().trim();
        let want = format!(
            "--{boundary}\r\nContent-Type: application/dicom\r\n\r\nDICM-content-1\r\n\
             --{boundary}\r\nContent-Type: application/dicom\r\n\r\nDICM-content-2\r\n--{boundary}--\r\n"
        );
        assert_eq!(String::from_utf8(body).unwrap(), want);
        assert_eq!(got[0], (0, Outcome::Delivered { status: 0 }));
        assert!(matches!(&got[1], (1, Outcome::DeadLetter(w)) if w.contains("cannot understand")));
    }

    #[test]
    fn basic_credentials_are_checked_and_sent() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("basic");
        std::fs::write(&file, "no-colon").unwrap();
        let (url, _unused) = ("http://127.0.0.1:9/x".to_string(), ());
        let err = Stow::new(&config(&url, "basic", &file)).unwrap_err();
        assert!(format!("{err:#}").contains("user:password"), "{err:#}");
        std::fs::write(&file, "alice:pa:ss\n").unwrap();
        let (url, server) = serve_once("400 Bad Request", "bad multipart".into());
        let p = tmp.path().join("1.dcm");
        std::fs::write(&p, "x").unwrap();
        let stow = Stow::new(&config(&url, "basic", &file)).unwrap();
        let mut got = Vec::new();
        let items = [Outgoing {
            path: p,
            sop_class: String::new(),
            sop_instance: "2.25.9".into(),
        }];
        stow.send_batch(&items, |i, o| got.push((i, o))).unwrap();
        let (head, _) = server.join().unwrap();
        // base64("alice:pa:ss")
        assert!(
            head.contains("authorization: Basic YWxpY2U6cGE6c3M=\r\n"),
            "{head}"
        );
        assert!(
            matches!(&got[0], (0, Outcome::DeadLetter(w)) if w.contains("400") && w.contains("bad multipart")),
            "{got:?}"
        );
    }

    #[test]
    fn a_connection_failure_retries_the_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        let p = tmp.path().join("1.dcm");
        std::fs::write(&p, "x").unwrap();
        let stow = Stow::new(&config(&url, "none", Path::new(""))).unwrap();
        let items = [Outgoing {
            path: p,
            sop_class: String::new(),
            sop_instance: "2.25.9".into(),
        }];
        let e = stow
            .send_batch(&items, |_, _| panic!("no outcome"))
            .unwrap_err();
        // (Which error wins, the connection's or the streamed body's, varies.)
        assert!(e.starts_with("STOW-RS "), "{e}");
        // An outbox file gone: retried too (reported as unreadable).
        let gone = [item("2.25.8")];
        let e = stow.send_batch(&gone, |_, _| panic!()).unwrap_err();
        assert!(e.contains("outbox file unreadable"), "{e}");
    }

    #[test]
    fn stow_config_is_validated() {
        let parse = |extra: &str| {
            let c: DestinationConfig =
                toml::from_str(&format!("name = \"w\"\ntype = \"stow\"\n{extra}")).unwrap();
            c.validate()
        };
        assert!(parse("url = \"https://pacs.example.org/dicom-web\"").is_ok());
        assert!(parse("url = \"http://127.0.0.1:8042/dicom-web\"").is_ok());
        assert!(parse("url = \"http://pacs.example.org/dicom-web\"")
            .unwrap_err()
            .contains("in clear"));
        assert!(parse("url = \"http://pacs.example.org/dicom-web\"\nallow_http = true").is_ok());
        assert!(parse("url = \"ftp://x\"").is_err());
        assert!(parse("").is_err());
        assert!(parse("url = \"https://x/\"\nauth = \"bearer\"")
            .unwrap_err()
            .contains("auth_file"));
        assert!(parse("url = \"https://x/\"\nauth_file = \"/t\"").is_err());
        assert!(parse("url = \"https://x/\"\nclient_cert = \"/c.pem\"")
            .unwrap_err()
            .contains("together"));
    }
}
