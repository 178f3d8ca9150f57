//! The review of quarantine and dead letters, and the flow chart, on the
//! operator page: through the API (every role against the new endpoints,
//! the preview PNG, release, retry and purge, each audited) and in headless
//! Chromium (a reviewer previews a quarantined ultrasound and releases it;
//! an operator without the role gets 403 and no pixels; the chart shows the
//! send). A quarantined object: the US image with BurnedInAnnotation=YES
//! under the site rule `quarantine_burned_in_annotation`. Dead letters: a
//! DCMTK dcmqrscp that does not know the called AE title (rejected
//! permanently, dead-lettered at once), later replaced on its port by a
//! storescp, which accepts any called AE title (dcmqrscp itself crashes on
//! storing this ultrasound).
//! Screenshots go to `target/screenshots/review-*.png`.

mod common;

use common::gateway::*;
use common::peers::*;
use common::webdriver::{screenshot_path, Browser};
use common::*;
use dicom_dictionary_std::tags;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const RELEASE_REASON: &str = "Pixels reviewed: the annotation is a probe label, no patient text";

/// dcmqrscp on `port` storing into `dir/db`, knowing only the AE title `ae`
/// (as in tests/dead_letter.rs).
fn archive(dir: &Path, port: u16, ae: &str) -> Peer {
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    let cfg = dir.join(format!("dcmqrscp-{ae}.cfg"));
    std::fs::write(
        &cfg,
        format!(
            "NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n\
             HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n\
             AETable BEGIN\n{ae} {} RW (1000, 1024mb) ANY\nAETable END\n",
            db.display()
        ),
    )
    .unwrap();
    let child = Command::new(tool("dcmqrscp"))
        .args(["--single-process", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    Peer(child)
}

/// What the accepting peer (storescp) received.
fn received(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
}

/// `n` distinct MR instances. Their InstitutionName is one no other
/// attribute holds (the original's, TOSHIBA, is also in Manufacturer, which
/// an output check may flag): these tests are about review, not that.
fn mr_instances(dir: &Path, n: usize) -> Vec<PathBuf> {
    let files = make_instances(dir, n);
    for f in &files {
        let mut o = dicom_object::open_file(f).unwrap();
        o.put(dicom_core::DataElement::new(
            tags::INSTITUTION_NAME,
            dicom_core::VR::LO,
            dicom_core::value::PrimitiveValue::from("Review Test Hospital"),
        ));
        o.write_to_file(f).unwrap();
    }
    files
}

fn ultrasound() -> PathBuf {
    data_dir().join("dicom/us/GREYSCALE_IMAGE.dcm")
}

/// The identities of the inputs, which no listing may show.
fn identities(inputs: &[PathBuf]) -> Vec<String> {
    let mut v = Vec::new();
    for f in inputs {
        let h = header(f).unwrap();
        for t in [tags::PATIENT_ID, tags::PATIENT_NAME] {
            let value = deidgate::dicom::text(&h, t);
            let family = value.split('^').next().unwrap_or("").trim().to_string();
            if family.len() > 3 {
                v.push(family);
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

/// A gateway with the burned-in-annotation rule, a folder destination `out`
/// and a DICOM destination `pacs` (called AE title PACS) on `archive_port`.
fn gateway(dir: &Path, archive_port: u16, users: &[(&str, &[&str])]) -> (Gateway, Vec<String>) {
    let config = write_config(
        dir,
        &format!(
            "[filter]\nquarantine_burned_in_annotation = true\n{}",
            dicom_destination("pacs", "PACS", archive_port)
        ),
    );
    let tokens = users
        .iter()
        .map(|(name, roles)| add_user(&config, name, roles))
        .collect();
    (Gateway::start_configured(dir, &config), tokens)
}

/// One raw HTTP/1.0 exchange (so the body is never chunked): status,
/// lower-cased headers, body bytes.
fn raw(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let end = find(&bytes, b"\r\n\r\n").expect("HTTP head") + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, bytes[end..].to_vec())
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn call(port: u16, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, bytes) = raw(port, method, path, Some(token), body.as_ref());
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: {status}, not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

fn review(port: u16, token: &str) -> Value {
    let (status, v) = call(port, "GET", "/api/review", token, None);
    assert_eq!(status, 200, "{v}");
    v
}

fn audit(port: u16, auditor: &str) -> Vec<Value> {
    let (status, v) = call(port, "GET", "/api/audit?limit=10000", auditor, None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["chain"]["intact"], true, "{v}");
    v["records"].as_array().unwrap().clone()
}

/// The outputs in `out/` whose SOP class is Ultrasound Image Storage.
fn us_outputs(g: &Gateway) -> Vec<PathBuf> {
    outputs(g)
        .into_iter()
        .filter(|p| {
            header(p).is_some_and(|h| {
                deidgate::dicom::text(&h, tags::SOP_CLASS_UID) == "1.2.840.10008.5.1.4.1.1.6.1"
            })
        })
        .collect()
}

/// The PNG's greys: (width, height, darkest, brightest).
fn png_stats(png: &[u8]) -> (u32, u32, u8, u8) {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .expect("a PNG")
        .to_luma8();
    let (lo, hi) = img
        .pixels()
        .fold((255u8, 0u8), |(lo, hi), p| (lo.min(p.0[0]), hi.max(p.0[0])));
    (img.width(), img.height(), lo, hi)
}

#[test]
fn review_endpoints_preview_release_retry_and_purge_by_role() {
    let tmp = tempfile::tempdir().unwrap();
    let arc_port = free_port();
    let arc_dir = tmp.path().join("archive");
    let refusing = archive(&arc_dir, arc_port, "ARCHIVE");
    let (g, tokens) = gateway(
        tmp.path(),
        arc_port,
        &[
            ("rita", &["reviewer"]),
            ("otto", &["operator"]),
            ("ann", &["auditor"]),
        ],
    );
    let (reviewer, operator, auditor) = (&tokens[0], &tokens[1], &tokens[2]);
    let port = g.http_port();

    let mut inputs = mr_instances(&tmp.path().join("in"), 2);
    inputs.push(ultrasound());
    send_all(&g, tmp.path(), "MODALITY", &inputs);
    let secret = identities(&inputs);
    assert!(!secret.is_empty());
    poll("one quarantined object and two dead letters", &g, || {
        let r = review(port, operator);
        r["quarantine"]["total"] == 1 && r["dead_letters"]["total"] == 2
    });

    // Anyone else: 401; the auditor: 403, for every new endpoint.
    let r = review(port, reviewer);
    let text = r.to_string();
    for s in &secret {
        assert!(!text.contains(s.as_str()), "the review lists {s:?}: {text}");
    }
    let q = &r["quarantine"]["objects"][0];
    let id = q["id"].as_str().unwrap().to_string();
    assert_eq!(q["modality"], "US", "{q}");
    assert_eq!(q["sop_class"], "Ultrasound Image Storage", "{q}");
    assert_eq!(q["frames"], 1, "{q}");
    assert!(
        q["reason"]
            .as_str()
            .unwrap()
            .contains("BurnedInAnnotation=YES"),
        "{q}"
    );
    assert!(q["time"].as_str().unwrap().starts_with("20"), "{q}");
    assert!(q.get("origin").is_none(), "{q}");
    for d in r["dead_letters"]["letters"].as_array().unwrap() {
        assert_eq!(d["destination"], "pacs", "{d}");
        assert_eq!(d["modality"], "MR", "{d}");
        assert_eq!(d["sop_class"], "MR Image Storage", "{d}");
        assert_eq!(d["retryable"], true, "{d}");
        assert!(d["id"].as_str().unwrap().starts_with("pacs/"), "{d}");
        assert!(
            d["reason"]
                .as_str()
                .unwrap()
                .contains("called AE title not recognized"),
            "{d}"
        );
    }
    let letters: Vec<String> = r["dead_letters"]["letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let preview = format!("/api/quarantine/{id}/preview");
    let endpoints: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/review".into(), None),
        ("GET", "/api/flow".into(), None),
        ("GET", preview.clone(), None),
        (
            "POST",
            format!("/api/quarantine/{id}/release"),
            Some(json!({"reason": "x"})),
        ),
        ("POST", format!("/api/quarantine/{id}/purge"), None),
        (
            "POST",
            "/api/deadletter/retry".into(),
            Some(json!({"id": letters[0]})),
        ),
        (
            "POST",
            "/api/deadletter/purge".into(),
            Some(json!({"id": letters[0]})),
        ),
    ];
    for (method, path, body) in &endpoints {
        let (status, headers, _) = raw(port, method, path, None, body.as_ref());
        assert_eq!(status, 401, "{method} {path}");
        assert_eq!(header_of(&headers, "cache-control"), Some("no-store"));
        let (status, v) = call(port, method, path, auditor, body.clone());
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("role"), "{v}");
    }
    // The operator may not see pixels or release; the reviewer may not
    // retry or purge.
    let (status, headers, body) = raw(port, "GET", &preview, Some(operator), None);
    assert_eq!(status, 403);
    assert_ne!(header_of(&headers, "content-type"), Some("image/png"));
    assert!(!body.starts_with(b"\x89PNG"));
    for (method, path, body) in &endpoints[3..] {
        let who = if path.contains("release") {
            operator
        } else {
            reviewer
        };
        let (status, v) = call(port, method, path, who, body.clone());
        assert_eq!(status, 403, "{method} {path}: {v}");
    }

    // The reviewer's preview: a downscaled PNG of the frame, windowed.
    let (status, headers, png) = raw(port, "GET", &preview, Some(reviewer), None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&png));
    assert_eq!(header_of(&headers, "content-type"), Some("image/png"));
    assert_eq!(header_of(&headers, "cache-control"), Some("no-store"));
    assert_eq!(header_of(&headers, "x-preview-frames"), Some("1"));
    assert_eq!(
        header_of(&headers, "x-preview-window"),
        Some("window 127/254")
    );
    let (w, h, lo, hi) = png_stats(&png);
    assert_eq!((w, h), (512, 384), "1024x768 halved");
    assert!(hi > lo + 100, "a picture, not a blank: {lo}..{hi}");
    for (path, expected) in [
        (format!("{preview}?frame=2"), 422),
        (format!("{preview}?frame=x"), 400),
        ("/api/quarantine/nothex/preview".to_string(), 400),
        ("/api/quarantine/0123456789abcdef/preview".to_string(), 404),
    ] {
        let (status, v) = call(port, "GET", &path, reviewer, None);
        assert_eq!(status, expected, "{path}: {v}");
    }

    // A peer that accepts us: the release goes through, and one dead
    // letter is retried to it.
    drop(refusing);
    let got = tmp.path().join("received");
    let _accepting = storescp(&got, arc_port);
    let release = format!("/api/quarantine/{id}/release");
    let (status, v) = call(
        port,
        "POST",
        &release,
        reviewer,
        Some(json!({"reason": "  "})),
    );
    assert_eq!(status, 400, "{v}");
    let (status, v) = call(
        port,
        "POST",
        &release,
        reviewer,
        Some(json!({ "reason": RELEASE_REASON })),
    );
    assert_eq!(status, 200, "{v}");
    assert!(v["message"].as_str().unwrap().contains("released"), "{v}");
    poll("the released ultrasound in out/", &g, || {
        us_outputs(&g).len() == 1
    });
    assert_eq!(review(port, operator)["quarantine"]["total"], 0);
    let (status, v) = call(
        port,
        "POST",
        &release,
        reviewer,
        Some(json!({"reason": "again"})),
    );
    assert_eq!(status, 404, "{v}");

    let retry = json!({ "id": letters[0] });
    let (status, v) = call(port, "POST", "/api/deadletter/retry", operator, Some(retry));
    assert_eq!(status, 200, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("queued again"),
        "{v}"
    );
    poll(
        "the retried MR and the released US at the archive",
        &g,
        || received(&got).len() == 2,
    );
    let (status, v) = call(
        port,
        "POST",
        "/api/deadletter/purge",
        operator,
        Some(json!({ "id": "pacs/2.25.1" })),
    );
    assert_eq!(status, 404, "{v}");
    let (status, v) = call(
        port,
        "POST",
        "/api/deadletter/purge",
        operator,
        Some(json!({ "id": letters[1] })),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(review(port, operator)["dead_letters"]["total"], 0);

    // Sent again, quarantined again; the operator purges it.
    send_all(&g, tmp.path(), "MODALITY", &[ultrasound()]);
    poll("the ultrasound quarantined again", &g, || {
        review(port, operator)["quarantine"]["total"] == 1
    });
    let again = review(port, operator)["quarantine"]["objects"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let purge = format!("/api/quarantine/{again}/purge");
    let (status, v) = call(port, "POST", &purge, operator, None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(review(port, reviewer)["quarantine"]["total"], 0);
    assert!(!g.data.join("quarantine").join(&again).exists());

    // The chart's counts, for the reviewer too.
    poll("the hour's totals", &g, || {
        let (_, f) = call(port, "GET", "/api/flow", reviewer, None);
        let t = &f["totals"];
        f["minutes"].as_array().unwrap().len() == 60
            && t["received"].as_u64() >= Some(4)
            && t["deidentified"].as_u64() >= Some(3)
            && t["quarantined"].as_u64() >= Some(2)
            && t["forwarded"].as_u64() >= Some(2)
            && t["dead_lettered"].as_u64() >= Some(2)
    });

    // Every preview, release, retry and purge is in the audit log, with
    // its actor; the refusals too.
    let records = audit(port, auditor);
    let find = |action: &str, actor: &str, subject: &str| {
        records
            .iter()
            .filter(|r| r["action"] == action && r["actor"] == actor && r["subject"] == subject)
            .cloned()
            .collect::<Vec<_>>()
    };
    let previews = find("quarantine.preview", "api:rita", &id);
    let outcomes: Vec<&str> = previews
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"shown frame 1 of 1 (512x384, window 127/254)"),
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.starts_with("not_rendered: frame 2")),
        "{outcomes:?}"
    );
    let released = find("quarantine.release", "api:rita", &id);
    assert_eq!(released.len(), 1, "{records:#?}");
    assert_eq!(released[0]["reason"], RELEASE_REASON);
    assert_eq!(find("deadletter.retry", "api:otto", &letters[0]).len(), 1);
    assert_eq!(find("deadletter.purge", "api:otto", &letters[1]).len(), 1);
    assert_eq!(find("quarantine.purge", "api:otto", &again).len(), 1);
    assert!(records.iter().any(|r| r["actor"] == "api:otto"
        && r["subject"] == format!("GET {preview}")
        && r["outcome"] == "denied: role reviewer required"));
    for r in &records {
        let s = r.to_string();
        for secret in &secret {
            assert!(
                !s.contains(secret.as_str()),
                "the audit log holds {secret:?}: {s}"
            );
        }
    }
}

/// Counts the chart's bars of `series` with a value above zero.
fn bars(b: &Browser, series: &str) -> u64 {
    b.execute_script(
        "return Array.from(document.querySelectorAll('#flow-chart rect.bar'))\
           .filter(r => r.dataset.series === arguments[0] && Number(r.dataset.value) > 0).length;",
        &[json!(series)],
    )
    .as_u64()
    .unwrap_or(0)
}

/// The preview canvas: (hidden, width, height, darkest, brightest red).
fn canvas(b: &Browser) -> Value {
    b.execute_script(
        "const c = document.getElementById('preview-canvas');\
         if (!c.width || !c.height) return [c.hidden, c.width, c.height, 0, 0];\
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;\
         let lo = 255, hi = 0;\
         for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }\
         return [c.hidden, c.width, c.height, lo, hi];",
        &[],
    )
}

/// Clicks the first button `action` of the table `tbody` in the page's own
/// script: the tables are redrawn every few seconds, so a WebDriver element
/// reference could go stale between finding and clicking.
fn click_row_button(b: &Browser, tbody: &str, action: &str) {
    let clicked = b.execute_script(
        "const b = document.querySelector('#' + arguments[0] + ' button[data-action=\"' + arguments[1] + '\"]');\
         if (!b || b.disabled) return false; b.click(); return true;",
        &[json!(tbody), json!(action)],
    );
    assert_eq!(clicked, Value::Bool(true), "no {action} button in #{tbody}");
}

fn shot(b: &Browser, name: &str) -> PathBuf {
    let path = screenshot_path(name);
    let png = b.screenshot(&path);
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}");
    eprintln!("screenshot: {}", path.display());
    path
}

fn element_shot(b: &Browser, css: &str, name: &str) -> PathBuf {
    let path = screenshot_path(name);
    let png = b.element_screenshot(&b.find(css), &path);
    assert!(png.starts_with(b"\x89PNG") && png.len() > 1_000, "{name}");
    eprintln!("screenshot: {}", path.display());
    path
}

fn use_token(b: &Browser, token: &str) {
    b.send_keys(&b.find("#token"), token);
    b.click(&b.find("#use-token"));
}

#[test]
fn reviewer_previews_and_releases_a_quarantined_ultrasound_in_chromium() {
    common::webdriver::require_chromium();
    let tmp = tempfile::tempdir().unwrap();
    let arc_port = free_port();
    let arc_dir = tmp.path().join("archive");
    let refusing = archive(&arc_dir, arc_port, "ARCHIVE");
    let (g, tokens) = gateway(
        tmp.path(),
        arc_port,
        &[
            ("rita", &["reviewer", "operator"]),
            ("olga", &["operator"]),
            ("audrey", &["auditor"]),
        ],
    );
    let (reviewer, operator, auditor) = (&tokens[0], &tokens[1], &tokens[2]);
    let http = g.http_port();
    let mut inputs = mr_instances(&tmp.path().join("in"), 3);
    inputs.push(ultrasound());
    let secret = identities(&inputs);
    send_all(&g, tmp.path(), "MODALITY", &inputs);

    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{http}/"));
    let no_identity = |what: &str| {
        let html = b.page_source();
        for s in &secret {
            assert!(!html.contains(s.as_str()), "{what}: the page shows {s:?}");
        }
    };

    // The operator: the lists and the chart, but no pixels.
    use_token(&b, operator);
    b.wait_for(
        "the quarantined ultrasound and three dead letters listed",
        DEADLINE,
        |b| {
            (
                b.text_of("#review-quarantine"),
                b.text_of("#review-dl-total"),
            )
        },
        |(q, d)| q.contains("Ultrasound Image Storage") && q.contains("US") && d == "(3)",
    );
    let q = b.text_of("#review-quarantine");
    assert!(q.contains("BurnedInAnnotation=YES"), "{q}");
    let dead = b.text_of("#review-dead");
    assert!(
        dead.contains("MR Image Storage") && dead.contains("pacs"),
        "{dead}"
    );
    b.wait_for(
        "the chart's bars for the send",
        DEADLINE,
        |b| {
            (
                bars(b, "received"),
                bars(b, "deidentified"),
                bars(b, "quarantined"),
                bars(b, "dead_lettered"),
            )
        },
        |(r, d, q, dl)| *r > 0 && *d > 0 && *q > 0 && *dl > 0,
    );
    let legend = b.text_of("#flow-legend");
    assert!(legend.contains("received 4 in the hour"), "{legend}");
    no_identity("the operator's review");
    b.execute_script("document.getElementById('flow').scrollIntoView();", &[]);
    shot(&b, "review-operator.png");
    element_shot(&b, "#flow", "review-flow-chart.png");

    click_row_button(&b, "review-quarantine", "preview");
    let refused = b.wait_for(
        "the role refusal of the preview",
        DEADLINE,
        |b| b.text_of("#preview-error"),
        |t| !t.is_empty(),
    );
    assert!(
        refused.starts_with("403") && refused.contains("reviewer"),
        "{refused}"
    );
    assert_eq!(canvas(&b), json!([true, 0, 0, 0, 0]), "no pixels");
    b.execute_script(
        "document.getElementById('preview-panel').scrollIntoView();",
        &[],
    );
    shot(&b, "review-operator-403.png");

    // The reviewer: the pixels, then the release.
    use_token(&b, reviewer);
    b.wait_for(
        "the list for the reviewer",
        DEADLINE,
        |b| b.text_of("#review-quarantine"),
        |q| q.contains("Ultrasound Image Storage"),
    );
    click_row_button(&b, "review-quarantine", "preview");
    let info = b.wait_for(
        "the preview",
        DEADLINE,
        |b| b.text_of("#preview-info"),
        |t| t.starts_with("frame 1 of 1"),
    );
    assert!(
        info.contains("512×384") && info.contains("window 127/254"),
        "{info}"
    );
    assert_eq!(b.text_of("#preview-error"), "");
    let c = canvas(&b);
    assert_eq!(c[0], false, "visible: {c}");
    assert_eq!(
        (c[1].as_u64(), c[2].as_u64()),
        (Some(512), Some(384)),
        "{c}"
    );
    assert!(
        c[4].as_u64().unwrap() > c[3].as_u64().unwrap() + 100,
        "a picture, not a blank: {c}"
    );
    no_identity("the reviewer's preview");
    b.execute_script(
        "document.getElementById('preview-panel').scrollIntoView();",
        &[],
    );
    shot(&b, "review-preview.png");
    element_shot(&b, "#preview-canvas", "review-preview-canvas.png");

    // The audit log holds the preview under the reviewer, the refusal
    // under the operator.
    let id = b.text_of("#preview-id");
    let records = audit(http, auditor);
    assert!(
        records.iter().any(|r| r["action"] == "quarantine.preview"
            && r["actor"] == "api:rita"
            && r["subject"] == id.as_str()
            && r["outcome"]
                .as_str()
                .unwrap()
                .starts_with("shown frame 1 of 1")),
        "no preview of {id} audited: {records:#?}"
    );
    assert!(records.iter().any(|r| r["actor"] == "api:olga"
        && r["subject"] == format!("GET /api/quarantine/{id}/preview")
        && r["outcome"] == "denied: role reviewer required"));

    // A peer that accepts us; retry one dead letter from the page.
    drop(refusing);
    let got = tmp.path().join("received");
    let _accepting = storescp(&got, arc_port);
    click_row_button(&b, "review-dead", "retry-d");
    b.wait_for(
        "the retry's message",
        DEADLINE,
        |b| b.text_of("#review-message"),
        |t| t.contains("queued again"),
    );
    poll("the retried instance at the archive", &g, || {
        received(&got).len() == 1
    });

    // A release without a reason is refused by the page; with one it goes.
    b.click(&b.find("#release-submit"));
    b.wait_for(
        "the missing-reason message",
        DEADLINE,
        |b| b.text_of("#preview-error"),
        |t| t.contains("reason is required"),
    );
    b.send_keys(&b.find("#release-reason"), RELEASE_REASON);
    b.click(&b.find("#release-submit"));
    b.wait_for(
        "the release's message",
        DEADLINE,
        |b| b.text_of("#review-message"),
        |t| t.contains("released"),
    );
    assert_eq!(canvas(&b), json!([true, 0, 0, 0, 0]), "pixels gone");
    poll("the released ultrasound in out/", &g, || {
        us_outputs(&g).len() == 1
    });
    let out = dicom_object::open_file(&us_outputs(&g)[0]).unwrap();
    assert_eq!(
        deidgate::dicom::text(&out, tags::PATIENT_IDENTITY_REMOVED),
        "YES"
    );
    poll("the released ultrasound at the archive", &g, || {
        received(&got).len() == 2
    });
    b.wait_for(
        "the emptied quarantine and the forwarded bars",
        DEADLINE,
        |b| (b.text_of("#review-q-total"), bars(b, "forwarded")),
        |(q, f)| q == "(0)" && *f > 0,
    );
    b.execute_script("document.getElementById('flow').scrollIntoView();", &[]);
    shot(&b, "review-released.png");
    let records = audit(http, auditor);
    assert!(records.iter().any(|r| r["action"] == "quarantine.release"
        && r["actor"] == "api:rita"
        && r["subject"] == id.as_str()
        && r["reason"] == RELEASE_REASON));
    assert!(records
        .iter()
        .any(|r| r["action"] == "deadletter.retry" && r["actor"] == "api:rita"));

    // Forgetting the token clears the lists.
    b.click(&b.find("#forget-token"));
    b.wait_for(
        "the lists cleared",
        DEADLINE,
        |b| b.text_of("#review-dead"),
        |t| t.is_empty(),
    );
}
