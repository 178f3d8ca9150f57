//! The operator page in a real browser: Debian's headless Chromium, driven
//! through chromedriver, watches the status while instances flow in over
//! DICOM, then re-identifies a pseudonym with a reason. Screenshots go to
//! `target/screenshots/`. The audit log must record the look-up under the
//! pseudonym, never the identity.

mod common;

use common::gateway::*;
use common::http::request;
use common::webdriver::{base64_decode, Browser};
use common::*;
use dicom_dictionary_std::tags;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

const INSTANCES: usize = 60;
const PER_ASSOCIATION: usize = 3;
const REASON: &str = "Incidental finding: the referring clinician must be told";
const TICKET: &str = "IRB-2024-117";

/// Sends `inputs` a few per association, pausing between associations, so
/// that the flow is still live while the page is watched. Returns the files
/// storescu got a Success response for.
fn trickle(g: &Gateway, profile: &Path, inputs: Vec<PathBuf>) -> JoinHandle<Vec<PathBuf>> {
    let cmds: Vec<_> = inputs
        .chunks(PER_ASSOCIATION)
        .map(|batch| storescu_cmd(g, profile, "MODALITY", batch))
        .collect();
    std::thread::spawn(move || {
        let mut stored = Vec::new();
        for mut c in cmds {
            let o = c.output().expect("run storescu");
            stored.extend(stored_files(&text(&o)));
            std::thread::sleep(Duration::from_millis(300));
        }
        stored
    })
}

/// A PNG of a real page: magic, IHDR, IEND, and more than a blank image.
fn assert_png(png: &[u8], path: &Path) {
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&png[12..16], b"IHDR", "{}: no IHDR", path.display());
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(
        width >= 800 && height >= 600,
        "{}: {width}x{height}",
        path.display()
    );
    assert_eq!(
        &png[png.len() - 8..png.len() - 4],
        b"IEND",
        "{}: truncated",
        path.display()
    );
    assert!(
        png.len() > 10_000,
        "{}: only {} bytes",
        path.display(),
        png.len()
    );
    assert_eq!(std::fs::read(path).unwrap(), png);
}

fn screenshot(b: &Browser, name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(name);
    let png = b.screenshot(&path);
    assert_png(&png, &path);
    path
}

fn count(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[test]
fn operator_page_shows_status_and_reidentifies_with_a_reason() {
    // The screenshot decoder, on RFC 4648's vectors.
    for (enc, dec) in [
        ("", ""),
        ("Zg==", "f"),
        ("Zm8=", "fo"),
        ("Zm9vYmFy", "foobar"),
    ] {
        assert_eq!(base64_decode(enc).unwrap(), dec.as_bytes());
    }
    common::webdriver::require_chromium();

    let original = dicom_object::open_file(data_dir().join("dicom/mr/MR_small.dcm")).unwrap();
    let original_id = deidgate::dicom::text(&original, tags::PATIENT_ID);
    let original_name = deidgate::dicom::text(&original, tags::PATIENT_NAME);
    let family = original_name.split('^').next().unwrap().to_string();
    assert!(!original_id.is_empty() && family.len() > 3);
    let no_identity = |what: &str, html: &str| {
        for v in [&original_id, &family] {
            assert!(!html.contains(v.as_str()), "{what}: the page shows {v:?}");
        }
    };

    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    let reid_token = add_user(&config, "alice", &["reid", "operator"]);
    let operator_token = add_user(&config, "olga", &["operator"]);
    let auditor_token = add_user(&config, "audrey", &["auditor"]);
    let g = Gateway::start_configured(tmp.path(), &config);
    let http = g.http_port();

    let inputs = make_instances(&tmp.path().join("in"), INSTANCES);
    let profile = scu_profile(tmp.path(), &inputs);
    let sender = trickle(&g, &profile, inputs);

    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{http}/"));

    // Without a token: a prompt, no numbers, no identity.
    b.wait_for(
        "the token prompt",
        DEADLINE,
        |b| b.text_of("#status-error"),
        |t| t.contains("Enter an API token"),
    );
    assert_eq!(b.text_of("#status-received").trim(), "-");
    no_identity("before any token", &b.page_source());

    // An operator without the reid role sees the status but cannot reveal.
    let token_input = b.find("#token");
    assert_eq!(b.property(&token_input, "type").as_str(), Some("password"));
    b.send_keys(&token_input, &operator_token);
    b.click(&b.find("#use-token"));
    let received = b.wait_for(
        "instances received on the status page",
        DEADLINE,
        |b| b.text_of("#status-received"),
        |t| count(t).is_some_and(|n| n > 0),
    );
    eprintln!("page: {received} received");
    assert_eq!(b.text_of("#status-error"), "");
    assert_eq!(b.property(&token_input, "value").as_str(), Some(""));

    // A de-identified output's pseudonym.
    poll("a de-identified output", &g, || !outputs(&g).is_empty());
    let out = dicom_object::open_file(&outputs(&g)[0]).unwrap();
    let pseudonym = deidgate::dicom::text(&out, tags::PATIENT_ID);
    assert!(!pseudonym.is_empty() && pseudonym != original_id);

    b.select("#reid-kind", "patient");
    b.send_keys(&b.find("#reid-subject"), &pseudonym);
    b.send_keys(&b.find("#reid-reason"), REASON);
    b.send_keys(&b.find("#reid-ticket"), TICKET);
    b.click(&b.find("#reid-submit"));
    let refused = b.wait_for(
        "the role refusal",
        DEADLINE,
        |b| b.text_of("#reid-error"),
        |t| !t.is_empty(),
    );
    assert!(refused.starts_with("403"), "{refused}");
    assert_eq!(b.text_of("#reid-result"), "");
    no_identity("after a refused re-identification", &b.page_source());

    // The reid user: the status keeps updating while instances flow.
    b.send_keys(&token_input, &reid_token);
    b.click(&b.find("#use-token"));
    b.wait_for(
        "the status refreshed with the new token",
        DEADLINE,
        |b| {
            (
                b.text_of("#status-received"),
                b.text_of("#status-deidentified"),
                b.text_of("#destinations"),
            )
        },
        |(r, d, dest)| {
            count(r).is_some_and(|n| n > 0)
                && count(d).is_some_and(|n| n > 0)
                && dest.contains("out")
        },
    );
    for id in ["#status-quarantined", "#status-assoc-active"] {
        let t = b.text_of(id);
        assert!(count(&t).is_some(), "{id} shows {t:?}");
    }
    let rate = b.text_of("#status-rate");
    assert!(rate.trim().parse::<f64>().is_ok(), "rate {rate:?}");
    let html = b.page_source();
    no_identity("on the status page", &html);
    assert!(!html.contains(&reid_token) && !html.contains(&operator_token));
    let shot = screenshot(&b, "operator-status.png");
    eprintln!("screenshot: {}", shot.display());

    // Without a reason: the page's own check refuses (the browser's
    // `required` is lifted so the script is what is tested), nothing is sent.
    let reason = b.find("#reid-reason");
    b.clear(&reason);
    b.execute_script(
        "document.getElementById('reid-reason').required = false; \
         document.getElementById('reid-reason').value = '   ';",
        &[],
    );
    b.click(&b.find("#reid-submit"));
    b.wait_for(
        "the missing-reason message",
        DEADLINE,
        |b| b.text_of("#reid-error"),
        |t| t.contains("reason is required"),
    );
    assert_eq!(b.text_of("#reid-result"), "");
    no_identity("after a submit without a reason", &b.page_source());
    // And the server refuses it too, whatever a client does.
    let r = request(
        http,
        "POST",
        "/api/reid/patient",
        Some(&reid_token),
        Some(&json!({ "pseudonym": pseudonym, "reason": " " })),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.body.contains(&original_id), "{}", r.body);

    // With a reason: the identity appears.
    b.clear(&reason);
    b.send_keys(&reason, REASON);
    b.click(&b.find("#reid-submit"));
    let result = b.wait_for(
        "the re-identified patient",
        DEADLINE,
        |b| b.text_of("#reid-result"),
        |t| t.contains(&original_id),
    );
    assert_eq!(result.lines().next(), Some(pseudonym.as_str()), "{result}");
    assert_eq!(
        result.lines().nth(1),
        Some(format!("patient_id: {original_id}").as_str()),
        "the identifier comes first: {result}"
    );
    assert!(result.contains(&original_name), "{result}");
    assert_eq!(b.text_of("#reid-error"), "");
    let shot = screenshot(&b, "operator-reid.png");
    eprintln!("screenshot: {}", shot.display());

    // Forgetting the token clears the identity from the page.
    b.click(&b.find("#forget-token"));
    b.wait_for(
        "the identity cleared",
        DEADLINE,
        |b| b.page_source(),
        |html| !html.contains(&original_id),
    );

    // Every instance arrived, de-identified.
    let stored = sender.join().unwrap();
    assert_eq!(stored.len(), INSTANCES, "{}", g.log());
    let expected = expected_names(&g, &stored);
    wait_for_outputs(&g, &expected);
    drop(b);

    // The audit log: the look-up under the pseudonym, with its reason.
    let r = request(http, "GET", "/api/audit", Some(&auditor_token), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let log = r.json();
    assert_eq!(log["chain"]["intact"], Value::Bool(true), "{log}");
    let records = log["records"].as_array().unwrap();
    let reid: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "reid.patient")
        .collect();
    let revealed: Vec<&&Value> = reid.iter().filter(|r| r["outcome"] == "revealed").collect();
    assert_eq!(revealed.len(), 1, "{reid:#?}");
    let rec = revealed[0];
    assert_eq!(rec["actor"], "api:alice");
    assert_eq!(rec["subject"], pseudonym.as_str());
    assert_eq!(rec["reason"], REASON);
    assert_eq!(rec["ticket"], TICKET);
    assert!(
        reid.iter()
            .any(|r| r["actor"] == "api:alice"
                && r["outcome"].as_str().unwrap().starts_with("rejected")),
        "the refusal without a reason is audited: {reid:#?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["actor"] == "api:olga"
                && r["outcome"].as_str().unwrap().starts_with("denied")),
        "the role refusal is audited: {records:#?}"
    );
    for r in records {
        let s = r.to_string();
        assert!(
            !s.contains(&original_id) && !s.contains(&family),
            "an audit record holds the identity: {s}"
        );
    }
}
