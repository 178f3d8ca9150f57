//! The re-identification service over HTTP, against a real `deidgate serve`
//! fed by DCMTK's storescu: every role against every endpoint, the audit
//! chain after each test, tampering, lock-out, TLS, and the key store files
//! holding no identifier.

mod common;

use common::gateway::*;
use common::http::{request, Response};
use common::*;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Identifiers planted into the instances sent; none may reach the key
/// store files, the audit log or the gateway log in clear.
const PLANTED_ID: &str = "PLANTED-PID-880011";
const PLANTED_NAME: &str = "Plantedname^Zelda";
const PLANTED_ACCESSION: &str = "ACC-PLANTED-4242";
const PLANTED_BIRTH: &str = "19510317";
const PLANTED_STUDY_UID: &str = "1.2.826.0.1.3680043.9.7777.999.1";
/// Only ever sent to the pseudonymize endpoint.
const LINKED_ID: &str = "LINKED-PID-557733";

/// `n` instances of one planted patient and study.
fn planted_instances(dir: &Path, n: usize) -> Vec<PathBuf> {
    let files = make_instances(dir, n);
    for f in &files {
        let mut o = dicom_object::open_file(f).unwrap();
        for (tag, vr, v) in [
            (tags::PATIENT_ID, VR::LO, PLANTED_ID),
            (tags::PATIENT_NAME, VR::PN, PLANTED_NAME),
            (tags::ACCESSION_NUMBER, VR::SH, PLANTED_ACCESSION),
            (tags::PATIENT_BIRTH_DATE, VR::DA, PLANTED_BIRTH),
            (tags::STUDY_INSTANCE_UID, VR::UI, PLANTED_STUDY_UID),
        ] {
            o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        }
        o.write_to_file(f).unwrap();
    }
    files
}

/// Sends `inputs` with storescu and waits for their de-identified outputs.
fn send(g: &Gateway, dir: &Path, inputs: &[PathBuf]) -> Vec<PathBuf> {
    let profile = scu_profile(dir, inputs);
    let o = storescu_cmd(g, &profile, "MODALITY", inputs)
        .output()
        .unwrap();
    assert!(o.status.success(), "storescu: {}", text(&o));
    wait_for_outputs(g, &expected_names(g, inputs))
}

struct Users {
    reid: String,
    operator: String,
    auditor: String,
    revoked: String,
}

/// A gateway with one user per role and one revoked user.
fn gateway_with_users(dir: &Path, extra: &str) -> (Gateway, Users) {
    let config = write_config(dir, extra);
    let users = Users {
        reid: add_user(&config, "rita", &["reid"]),
        operator: add_user(&config, "otto", &["operator"]),
        auditor: add_user(&config, "ann", &["auditor"]),
        revoked: add_user(&config, "rex", &["reid", "operator", "auditor"]),
    };
    let o = cli(&config, &["users", "revoke", "rex"]);
    assert!(o.status.success(), "{}", text(&o));
    (Gateway::start_configured(dir, &config), users)
}

fn audit(g: &Gateway, auditor: &str) -> Value {
    let r = request(
        g.http_port(),
        "GET",
        "/api/audit?limit=10000",
        Some(auditor),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The chain verifies and holds `records` records (before this read).
fn assert_chain_intact(g: &Gateway, auditor: &str) -> Vec<Value> {
    let a = audit(g, auditor);
    assert_eq!(a["chain"]["intact"], true, "{a}");
    a["records"].as_array().unwrap().clone()
}

fn endpoints() -> Vec<(&'static str, &'static str, Option<Value>)> {
    let why = "incidental finding follow-up";
    vec![
        (
            "POST",
            "/api/reid/patient",
            Some(json!({"pseudonym": "NOSUCHPSEUDONYM0", "reason": why})),
        ),
        (
            "POST",
            "/api/reid/uid",
            Some(json!({"uid": "2.25.1", "reason": why})),
        ),
        (
            "POST",
            "/api/reid/accession",
            Some(json!({"pseudonym": "NOSUCHACCESSION0", "reason": why})),
        ),
        (
            "POST",
            "/api/pseudonymize/patient",
            Some(json!({"patient_id": LINKED_ID, "reason": "link cohort data"})),
        ),
        ("GET", "/api/audit", None),
        ("GET", "/api/status", None),
    ]
}

/// The role each endpoint needs.
fn role_of(path: &str) -> &'static str {
    match path {
        "/api/audit" => "auditor",
        "/api/status" => "operator",
        _ => "reid",
    }
}

#[test]
fn every_role_against_every_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, u) = gateway_with_users(tmp.path(), "max_auth_failures = 1000\n");
    let port = g.http_port();
    let wrong_secret = format!("{}{}", &u.reid[..16], "0".repeat(64));
    let callers: Vec<(&str, Option<&str>)> = vec![
        ("none", None),
        ("garbage", Some("not-a-token")),
        ("wrong-secret", Some(&wrong_secret)),
        ("revoked", Some(&u.revoked)),
        ("reid", Some(&u.reid)),
        ("operator", Some(&u.operator)),
        ("auditor", Some(&u.auditor)),
    ];
    let mut refusals = 0;
    for (method, path, body) in endpoints() {
        for (who, token) in &callers {
            let r: Response = request(port, method, path, *token, body.as_ref());
            let expected: &[u16] = match *who {
                "none" | "garbage" | "wrong-secret" | "revoked" => &[401],
                role if role == role_of(path) => match path {
                    // Unknown pseudonyms are a clean 404, audited as not_found.
                    "/api/reid/patient" | "/api/reid/uid" | "/api/reid/accession" => &[404],
                    _ => &[200],
                },
                _ => &[403],
            };
            assert!(
                expected.contains(&r.status),
                "{who} {method} {path}: got {} {}",
                r.status,
                r.body
            );
            assert_eq!(
                r.header("cache-control"),
                Some("no-store"),
                "{who} {method} {path}"
            );
            if r.status == 401 {
                assert!(r.header("www-authenticate").is_some());
            }
            if r.status == 401 || r.status == 403 {
                refusals += 1;
                assert!(r.json()["error"].is_string());
            }
            // The chain is checked after every request.
            assert_chain_intact(&g, &u.auditor);
        }
    }
    let records = assert_chain_intact(&g, &u.auditor);
    let denied = records
        .iter()
        .filter(|r| r["action"] == "auth" && r["outcome"].as_str().unwrap().starts_with("denied"))
        .count();
    assert_eq!(denied, refusals, "every 401/403 is audited");
    let forbidden: Vec<_> = records
        .iter()
        .filter(|r| r["outcome"] == "denied: role auditor required")
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert_eq!(forbidden, ["api:rita", "api:otto"]);
    assert!(records
        .iter()
        .any(|r| r["actor"].as_str().unwrap().starts_with("token:")
            && r["subject"] == "GET /api/status"));
    // The operator's status never carries an identity, and the page is public
    // but holds no data.
    let status = request(port, "GET", "/api/status", Some(&u.operator), None);
    assert!(!status.body.contains(LINKED_ID));
    let page = request(port, "GET", "/", None, None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Re-identification"));
    assert!(page.header("content-security-policy").is_some());
    assert!(!g.log().contains(LINKED_ID), "no identifier in the log");
    // Audit filters.
    let r = request(
        port,
        "GET",
        "/api/audit?action=pseudonymize.patient&outcome=issued",
        Some(&u.auditor),
        None,
    );
    let recs = r.json()["records"].as_array().unwrap().clone();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["actor"], "api:rita");
    assert!(!r.body.contains(LINKED_ID));
    let bad = request(port, "GET", "/api/audit?bogus=1", Some(&u.auditor), None);
    assert_eq!(bad.status, 400);
}

#[test]
fn reidentification_round_trip_and_key_store_files_hold_no_identifier() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut g, u) = gateway_with_users(tmp.path(), "");
    let port = g.http_port();
    let outs = send(
        &g,
        tmp.path(),
        &planted_instances(&tmp.path().join("in"), 3),
    );
    let obj = header(&outs[0]).unwrap();
    let text_of = |tag| deidgate::dicom::text(&obj, tag);
    let (pseudonym, sop_uid) = (text_of(tags::PATIENT_ID), text_of(tags::SOP_INSTANCE_UID));
    let accession = text_of(tags::ACCESSION_NUMBER);
    assert_ne!(pseudonym, PLANTED_ID);

    let why =
        json!({"pseudonym": pseudonym, "reason": "incidental finding", "ticket": "IRB-2026-17"});
    let r = request(port, "POST", "/api/reid/patient", Some(&u.reid), Some(&why));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(v["revealed"]["patient_id"], PLANTED_ID);
    assert_eq!(v["revealed"]["name"], PLANTED_NAME);
    assert_eq!(v["revealed"]["birth_date"], PLANTED_BIRTH);

    let r = request(
        port,
        "POST",
        "/api/reid/uid",
        Some(&u.reid),
        Some(&json!({"uid": sop_uid, "reason": "incidental finding"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["revealed"]["original_uid"]
        .as_str()
        .unwrap()
        .starts_with("1.2.826.0.1.3680043.9.7777."));
    let r = request(
        port,
        "POST",
        "/api/reid/accession",
        Some(&u.reid),
        Some(&json!({"pseudonym": accession, "reason": "incidental finding"})),
    );
    assert_eq!(
        r.json()["revealed"]["original_accession_number"],
        PLANTED_ACCESSION
    );

    // No reason: refused, nothing revealed, audited.
    let r = request(
        port,
        "POST",
        "/api/reid/patient",
        Some(&u.reid),
        Some(&json!({"pseudonym": pseudonym, "reason": "   "})),
    );
    assert_eq!(r.status, 400);
    assert!(!r.body.contains(PLANTED_ID));
    let r = request(
        port,
        "POST",
        "/api/reid/patient",
        Some(&u.reid),
        Some(&json!({"pseudonym": pseudonym})),
    );
    assert_eq!(r.status, 400);

    // Pseudonymizing the original ID gives the pseudonym the instances carry.
    let r = request(
        port,
        "POST",
        "/api/pseudonymize/patient",
        Some(&u.reid),
        Some(&json!({"patient_id": PLANTED_ID, "reason": "link follow-up data"})),
    );
    assert_eq!(r.json()["patient_id"], pseudonym.as_str());
    let r = request(
        port,
        "POST",
        "/api/pseudonymize/patient",
        Some(&u.reid),
        Some(&json!({"patient_id": LINKED_ID, "reason": "link cohort data"})),
    );
    assert_eq!(r.status, 200);

    let records = assert_chain_intact(&g, &u.auditor);
    let outcomes: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("reid.patient", "revealed"),
            ("reid.uid", "revealed"),
            ("reid.accession", "revealed"),
            ("reid.patient", "rejected: no valid reason"),
            ("reid.patient", "rejected: no valid reason"),
            ("pseudonymize.patient", "issued"),
            ("pseudonymize.patient", "issued"),
        ]
    );
    assert_eq!(records[0]["actor"], "api:rita");
    assert_eq!(records[0]["subject"], pseudonym.as_str());
    assert_eq!(records[0]["reason"], "incidental finding");
    assert_eq!(records[0]["ticket"], "IRB-2026-17");

    // Stop, take the secrets away, read the sled files as bytes.
    g.kill9();
    let data = g.data.clone();
    std::fs::rename(data.join("secrets.toml"), tmp.path().join("secrets.away")).unwrap();
    let mut scanned = 0;
    for f in files_under(&data.join("keystore")) {
        let bytes = std::fs::read(&f).unwrap();
        scanned += bytes.len();
        for needle in [
            PLANTED_ID,
            PLANTED_NAME,
            "Plantedname",
            PLANTED_ACCESSION,
            PLANTED_BIRTH,
            PLANTED_STUDY_UID,
            "1.2.826.0.1.3680043.9.7777.1",
            LINKED_ID,
        ] {
            assert!(
                find(&bytes, needle.as_bytes()).is_none(),
                "{needle} in clear in {}",
                f.display()
            );
        }
    }
    assert!(scanned > 0, "the key store has files");
    let log = g.log();
    for needle in [PLANTED_ID, "Plantedname", PLANTED_ACCESSION, LINKED_ID] {
        assert!(!log.contains(needle), "{needle} in the gateway log");
    }
}

#[test]
fn tampering_with_one_audit_record_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut g, u) = gateway_with_users(tmp.path(), "");
    let port = g.http_port();
    for i in 0..3 {
        let r = request(
            port,
            "POST",
            "/api/reid/uid",
            Some(&u.reid),
            Some(&json!({"uid": format!("2.25.{i}"), "reason": "quality check"})),
        );
        assert_eq!(r.status, 404);
    }
    assert_eq!(assert_chain_intact(&g, &u.auditor).len(), 3);
    g.kill9();
    let o = cli(&g.config, &["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("intact: 4 records"), "{}", text(&o));

    // Edit the reason of record 2 directly in the sled files.
    {
        let db = sled::open(g.data.join("keystore")).unwrap();
        let tree = db.open_tree("audit").unwrap();
        let key = 2u64.to_be_bytes();
        let mut rec: Value = serde_json::from_slice(&tree.get(key).unwrap().unwrap()).unwrap();
        rec["reason"] = json!("nothing to see here");
        tree.insert(key, serde_json::to_vec(&rec).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let o = cli(&g.config, &["audit", "verify"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("record 2 was edited"), "{}", text(&o));
    g.restart();
    let a = audit(&g, &u.auditor);
    assert_eq!(a["chain"]["intact"], false);
    assert_eq!(a["chain"]["first_bad_seq"], 2);
}

#[test]
fn failed_logins_are_rate_limited_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, u) = gateway_with_users(tmp.path(), "max_auth_failures = 3\nlockout_secs = 600\n");
    let port = g.http_port();
    for _ in 0..3 {
        let r = request(port, "GET", "/api/status", Some("dg_bad"), None);
        assert_eq!(r.status, 401);
    }
    // Locked out: even a valid token is refused now, with Retry-After.
    let r = request(port, "GET", "/api/status", Some(&u.operator), None);
    assert_eq!(r.status, 429, "{}", r.body);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 600);
    // Health and metrics stay reachable for monitoring.
    assert!(g.http_get("/healthz").0.contains("200"));
    // The lock-out lives in memory; the audit log shows how it came about.
    let mut g = g;
    g.kill9();
    let o = cli(&g.config, &["audit", "export"]);
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[2]["outcome"]
        .as_str()
        .unwrap()
        .ends_with("address locked out"));
    assert!(lines.iter().all(|l| l["actor"] == "anonymous@127.0.0.1"));
    let o = cli(&g.config, &["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn https_when_a_certificate_is_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    let o = std::process::Command::new(tool("openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let extra = format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let (g, u) = gateway_with_users(tmp.path(), &extra);
    // Waits for the HTTP listener's log line (it can follow the DICOM one).
    let port = g.http_port();
    assert!(
        g.log().contains("scheme=\"https\"") || g.log().contains("scheme=https"),
        "{}",
        g.log()
    );
    let url = format!("https://127.0.0.1:{port}/api/status");
    let o = std::process::Command::new(tool("curl"))
        .args(["-s", "--cacert"])
        .arg(&cert)
        .args(["-H", &format!("Authorization: Bearer {}", u.operator), &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "curl over TLS: {}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["node"]["ae_title"], "DEIDGATE");
    // Plain HTTP on the same port gets no answer.
    let o = std::process::Command::new(tool("curl"))
        .args(["-s", "--max-time", "5", &url.replace("https", "http")])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("DEIDGATE"));
}

#[test]
fn cli_commands_reach_a_running_gateway_through_its_admin_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, u) = gateway_with_users(tmp.path(), "");
    let outs = send(
        &g,
        tmp.path(),
        &planted_instances(&tmp.path().join("in"), 1),
    );
    let pseudonym = deidgate::dicom::text(&header(&outs[0]).unwrap(), tags::PATIENT_ID);
    let socket = g.data.join("admin.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // A user added while serving can use the API at once.
    let late = add_user(&g.config, "lena", &["operator"]);
    let r = request(g.http_port(), "GET", "/api/status", Some(&late), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let o = cli(&g.config, &["users", "list"]);
    assert!(text(&o).contains("lena\toperator"), "{}", text(&o));

    let o = cli(
        &g.config,
        &["reid", "patient", &pseudonym, "--reason", "tumour board"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(PLANTED_ID));
    let o = cli(
        &g.config,
        &["reid", "patient", "NOSUCHPSEUDONYM0", "--reason", "typo"],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("no record"), "{}", text(&o));

    let pass = tmp.path().join("pass");
    std::fs::write(&pass, "backup passphrase for the test").unwrap();
    let backup = tmp.path().join("live.backup");
    let o = cli(
        &g.config,
        &[
            "keys",
            "backup",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(find(&std::fs::read(&backup).unwrap(), PLANTED_ID.as_bytes()).is_none());
    let o = cli(&g.config, &["keys", "rotate-encryption"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("stop it"), "{}", text(&o));

    let o = cli(&g.config, &["audit", "verify"]);
    assert!(text(&o).contains("intact: 2 records"), "{}", text(&o));
    // The API and the CLI write to the same chain.
    let records = assert_chain_intact(&g, &u.auditor);
    let actors: Vec<_> = records
        .iter()
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert!(actors[0].starts_with("cli:"), "{actors:?}");
    assert!(records.iter().all(|r| !r.to_string().contains(PLANTED_ID)));
}

/// The test harness's own start: a port that another process took between
/// `write_config` choosing it and the gateway binding it (as a concurrent
/// test's peer can) must not pass for a running gateway. Before the harness
/// waited for the gateway's own "listening" line, its connect check reached
/// the other listener and the test failed minutes later (CI-style flake of
/// 7 Dec: "cannot listen on 127.0.0.1:33851: Address already in use").
#[test]
fn a_gateway_whose_port_was_taken_starts_on_another() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let toml = std::fs::read_to_string(&config).unwrap();
    let port_line = toml.lines().find(|l| l.starts_with("port = ")).unwrap();
    std::fs::write(&config, toml.replace(port_line, &format!("port = {taken}"))).unwrap();
    let mut g = Gateway::start_configured(tmp.path(), &config);
    assert_ne!(g.port, taken, "{}", g.log());
    assert!(g.alive(), "{}", g.log());
    let o = g.echo("ECHOSCU", "DEIDGATE");
    assert!(o.status.success(), "{}", text(&o));
    drop(squatter);
}
