//! Forwarding by DICOMweb STOW-RS (`type = "stow"`) to a real archive:
//! Orthanc with its DICOMweb plugin (Debian's `orthanc-dicomweb`), started by
//! the tests on loopback ports. What it holds is checked through its QIDO-RS
//! and REST API and its storage; an outage queues and delivers each instance
//! once; a refusing endpoint dead-letters with the reason; basic auth is read
//! from a file.

mod common;

use common::gateway::*;
use common::peers::*;
use common::*;
use dicom_dictionary_std::tags;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const DICOMWEB_PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

/// Orthanc with DICOMweb under `/dicom-web/`; `users`: basic-auth accounts
/// (none: no authentication).
struct Orthanc {
    _peer: Peer,
    http_port: u16,
    storage: PathBuf,
    auth: Option<String>,
}

impl Orthanc {
    fn config(dir: &Path, http_port: u16, users: &[(&str, &str)]) -> PathBuf {
        assert!(
            Path::new(DICOMWEB_PLUGIN).exists(),
            "{DICOMWEB_PLUGIN} missing: apt-get install orthanc-dicomweb"
        );
        let registered: serde_json::Map<String, serde_json::Value> = users
            .iter()
            .map(|(u, p)| (u.to_string(), serde_json::Value::from(*p)))
            .collect();
        let cfg = serde_json::json!({
            "Name": "deidgate-stow-test",
            "StorageDirectory": dir.join("orthanc-storage"),
            "IndexDirectory": dir.join("orthanc-index"),
            "StorageCompression": false,
            "DicomAet": "ORTHANC",
            "DicomPort": free_port(),
            "HttpPort": http_port,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": !users.is_empty(),
            "RegisteredUsers": registered,
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": true, "Root": "/dicom-web/"},
        });
        let path = dir.join("orthanc.json");
        std::fs::write(&path, cfg.to_string()).unwrap();
        path
    }

    fn start(dir: &Path, http_port: u16, users: &[(&str, &str)], auth: Option<&str>) -> Orthanc {
        let cfg = Orthanc::config(dir, http_port, users);
        let child = Command::new(tool("Orthanc"))
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("orthanc.log")).unwrap())
            .spawn()
            .unwrap();
        let o = Orthanc {
            _peer: Peer(child),
            http_port,
            storage: dir.join("orthanc-storage"),
            auth: auth.map(str::to_string),
        };
        wait_port(http_port);
        o
    }

    /// GET against the REST API (or QIDO-RS), parsed as JSON.
    fn get(&self, path: &str) -> Option<serde_json::Value> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        let auth = self
            .auth
            .as_ref()
            .map(|a| format!("Authorization: Basic {a}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{auth}\r\n"
        )
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        serde_json::from_str(buf.split_once("\r\n\r\n")?.1).ok()
    }

    fn count(&self) -> usize {
        self.get("/statistics")
            .and_then(|v| v["CountInstances"].as_u64())
            .unwrap_or(0) as usize
    }

    /// SOP Instance UIDs as QIDO-RS lists them.
    fn qido_uids(&self) -> BTreeSet<String> {
        let v = self.get("/dicom-web/instances").expect("QIDO-RS answers");
        v.as_array()
            .expect("a QIDO-RS array")
            .iter()
            .filter_map(|i| i["00080018"]["Value"][0].as_str().map(str::to_string))
            .collect()
    }

    /// SOP Instance UIDs through the REST API, instance by instance.
    fn rest_uids(&self) -> BTreeSet<String> {
        let ids = self.get("/instances").expect("REST answers");
        ids.as_array()
            .unwrap()
            .iter()
            .map(|id| {
                let t = self
                    .get(&format!(
                        "/instances/{}/simplified-tags",
                        id.as_str().unwrap()
                    ))
                    .unwrap();
                t["SOPInstanceUID"].as_str().unwrap().to_string()
            })
            .collect()
    }

    fn stored_files(&self) -> Vec<PathBuf> {
        files_under(&self.storage)
            .into_iter()
            .filter(|p| p.extension().is_none() && !p.to_string_lossy().contains("index"))
            .collect()
    }
}

fn stow_destination(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[destination]]\nname = \"{name}\"\ntype = \"stow\"\nurl = \"{url}\"\n\
         retry_initial_secs = 1\nretry_max_secs = 2\ntimeout_secs = 20\n{extra}\n"
    )
}

fn folder() -> &'static str {
    "[[destination]]\nname = \"out\"\ntype = \"folder\"\n"
}

fn sop_uids(files: &[PathBuf]) -> BTreeSet<String> {
    files
        .iter()
        .filter_map(|f| {
            let o = dicom_object::OpenFileOptions::new()
                .read_until(tags::PIXEL_DATA)
                .open_file(f)
                .ok()?;
            Some(deidgate::dicom::text(&o, tags::SOP_INSTANCE_UID))
        })
        .collect()
}

/// Received files carry none of the originals' identifiers or UIDs.
fn assert_clean(received: &[PathBuf], inputs: &[PathBuf]) {
    let mut needles = BTreeSet::new();
    for f in inputs {
        let Some(o) = header(f) else { continue };
        for t in [
            tags::PATIENT_ID,
            tags::PATIENT_NAME,
            tags::SOP_INSTANCE_UID,
            tags::STUDY_INSTANCE_UID,
        ] {
            let v = deidgate::dicom::text(&o, t);
            if v.len() >= 6 {
                needles.insert(v);
            }
        }
    }
    let long: Vec<&String> = needles.iter().collect();
    let ac = aho_corasick::AhoCorasick::new(&long).unwrap();
    assert!(!received.is_empty());
    for f in received {
        assert!(dcmdump(f).0, "dcmdump cannot read {}", f.display());
        let bytes = scannable_bytes(f);
        let text = all_text(
            &deidgate::dicom::parse(&std::fs::read(f).unwrap())
                .unwrap()
                .into_inner(),
        );
        if let Some(m) = ac.find(&bytes).or_else(|| ac.find(&text)) {
            panic!(
                "original {:?} survives in {}",
                long[m.pattern().as_usize()],
                f.display()
            );
        }
    }
}

fn send(g: &Gateway, dir: &Path, inputs: &[PathBuf]) -> Vec<PathBuf> {
    let profile = scu_profile(dir, inputs);
    let out = storescu_cmd(g, &profile, "MODALITY", inputs)
        .output()
        .unwrap();
    let stored = stored_files(&text(&out));
    assert!(
        !stored.is_empty(),
        "storescu stored nothing:\n{}",
        text(&out)
    );
    stored
}

fn metric(g: &Gateway, want: &str) -> bool {
    g.http_get("/metrics").1.lines().any(|l| l == want)
}

#[test]
fn every_instance_is_stored_in_orthanc_by_stow_rs() {
    let tmp = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let orthanc = Orthanc::start(tmp.path(), http_port, &[], None);
    let url = format!("http://127.0.0.1:{http_port}/dicom-web");
    let g = Gateway::start(
        tmp.path(),
        &(folder().to_string()
            + &stow_destination("web", &url, "batch_size = 16")
            // Held head MR series are let through within the test.
            + "\n[mri]\nquiet_secs = 2\n"),
    );
    let data = data_dir();
    let mut inputs = files_under(&data.join("dicom/mr"));
    inputs.extend(files_under(&data.join("derived/head_mr_t1_sag_lowres")));
    inputs.extend(files_under(&data.join("dicom/ct")));
    inputs.retain(|f| header(f).is_some());
    let stored = send(&g, tmp.path(), &inputs);
    poll("the spool to drain", &g, || g.spool_drained());
    poll("held head MR series to be processed", &g, || {
        ["open", "claimed"]
            .iter()
            .all(|d| files_under(&g.data.join("series").join(d)).is_empty())
    });
    let out = outputs(&g);
    let ours = sop_uids(&out);
    let outbox = g.data.join("outbox/web");
    poll("Orthanc to hold every instance", &g, || {
        orthanc.count() >= ours.len() && files_under(&outbox).is_empty()
    });
    assert_eq!(orthanc.count(), ours.len());
    assert_eq!(
        orthanc.qido_uids(),
        ours,
        "QIDO-RS lists what the gateway made"
    );
    assert_eq!(orthanc.rest_uids(), ours, "the REST API agrees");
    let files = orthanc.stored_files();
    assert_eq!(sop_uids(&files), ours, "its storage agrees");
    assert!(files_under(&g.data.join("dead_letter/web")).is_empty());
    // Inputs sharing a SOP Instance UID (MR_small in several transfer
    // syntaxes) may each be sent, or a newer copy may replace a queued one.
    let delivered: usize = g
        .http_get("/metrics")
        .1
        .lines()
        .find_map(|l| l.strip_prefix("deidgate_forward_delivered_total{destination=\"web\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        (ours.len()..=stored.len()).contains(&delivered),
        "{delivered} delivered for {} instances",
        ours.len()
    );
    eprintln!(
        "{} acknowledged, {} stored in Orthanc by STOW-RS",
        stored.len(),
        ours.len()
    );
    assert_clean(&files, &stored);
}

#[test]
fn a_stow_outage_queues_then_delivers_each_instance_once() {
    let tmp = tempfile::tempdir().unwrap();
    let http_port = free_port(); // nothing listens there yet
    let url = format!("http://127.0.0.1:{http_port}/dicom-web");
    let g = Gateway::start(tmp.path(), &stow_destination("web", &url, ""));
    let inputs = make_instances(&tmp.path().join("in"), 50);
    let stored = send(&g, tmp.path(), &inputs);
    assert_eq!(
        stored.len(),
        50,
        "all 50 acknowledged while the archive is down"
    );
    let outbox = g.data.join("outbox/web");
    poll("all 50 queued", &g, || files_under(&outbox).len() == 50);
    poll("a failed attempt", &g, || g.log().contains("will retry"));
    let orthanc = Orthanc::start(tmp.path(), http_port, &[], None);
    poll("Orthanc to hold all 50", &g, || {
        orthanc.count() >= 50 && files_under(&outbox).is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(orthanc.count(), 50);
    assert_eq!(orthanc.qido_uids().len(), 50);
    for want in [
        "deidgate_forward_delivered_total{destination=\"web\"} 50",
        "deidgate_forward_queue_depth{destination=\"web\"} 0",
        "deidgate_forward_dead_letter_total{destination=\"web\"} 0",
    ] {
        assert!(
            metric(&g, want),
            "missing {want:?}:\n{}",
            g.http_get("/metrics").1
        );
    }
    // Orthanc saw each instance once: one NewInstance change per instance.
    let changes = orthanc.get("/changes?limit=10000").unwrap();
    let new = changes["Changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ChangeType"] == "NewInstance")
        .count();
    assert_eq!(new, 50, "each instance stored once");
}

/// An HTTP endpoint that answers every request with 400 and a reason,
/// after reading the request body in full.
fn refusing_endpoint() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let reply = "unsupported media type in part 1";
            let mut s = s;
            let _ = write!(
                s,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (port, h)
}

#[test]
fn a_4xx_refusal_dead_letters_at_once_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (port, _server) = refusing_endpoint();
    let url = format!("http://127.0.0.1:{port}/dicom-web");
    let g = Gateway::start(tmp.path(), &stow_destination("web", &url, ""));
    let inputs = make_instances(&tmp.path().join("in"), 3);
    send(&g, tmp.path(), &inputs);
    let outbox = g.data.join("outbox/web");
    poll("three dead letters", &g, || {
        metric(
            &g,
            "deidgate_forward_dead_letter_total{destination=\"web\"} 3",
        ) && files_under(&outbox).is_empty()
    });
    assert!(!g.log().contains("will retry"), "not retried:\n{}", g.log());
    let o = cli(&g.config, &["deadletter", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    let rows: Vec<&str> = list.lines().filter(|l| l.starts_with("web\t")).collect();
    assert_eq!(rows.len(), 3, "{list}");
    for r in rows {
        assert!(
            r.contains("HTTP 400 Bad Request") && r.contains("unsupported media type in part 1"),
            "{r}"
        );
    }
}

#[test]
fn basic_auth_from_a_file_is_accepted_and_a_wrong_password_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let http_port = free_port();
    // base64("alice:s3cret")
    let orthanc = Orthanc::start(
        tmp.path(),
        http_port,
        &[("alice", "s3cret")],
        Some("YWxpY2U6czNjcmV0"),
    );
    let good = tmp.path().join("good.auth");
    let bad = tmp.path().join("bad.auth");
    std::fs::write(&good, "alice:s3cret\n").unwrap();
    std::fs::write(&bad, "alice:wrong\n").unwrap();
    let url = format!("http://127.0.0.1:{http_port}/dicom-web");
    let auth = |f: &Path| {
        format!(
            "auth = \"basic\"\nauth_file = {:?}",
            f.display().to_string()
        )
    };
    let config = stow_destination("web", &url, &auth(&good))
        + &stow_destination("badweb", &url, &auth(&bad));
    assert!(
        !config.contains("s3cret"),
        "no credentials in the config text"
    );
    let g = Gateway::start(tmp.path(), &config);
    let inputs = make_instances(&tmp.path().join("in"), 5);
    send(&g, tmp.path(), &inputs);
    poll("all delivered and dead-lettered", &g, || {
        orthanc.count() >= 5
            && metric(
                &g,
                "deidgate_forward_delivered_total{destination=\"web\"} 5",
            )
            && metric(
                &g,
                "deidgate_forward_dead_letter_total{destination=\"badweb\"} 5",
            )
    });
    assert_eq!(orthanc.count(), 5);
    let o = cli(&g.config, &["deadletter", "list"]);
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        list.lines()
            .filter(|l| l.starts_with("badweb\t"))
            .all(|l| l.contains("HTTP 401")),
        "{list}"
    );
    assert!(!g.log().contains("s3cret") && !g.log().contains("wrong\n"));
}
