//! Dead letters an operator can see and retry, against a real archive:
//! DCMTK dcmqrscp, which rejects associations to an AE title its AETable does
//! not list ("called AE title not recognized", rejected-permanent; storescp
//! accepts any called AE title). Such a rejection is dead-lettered at once,
//! listed with its reason, kept across restarts and sent by
//! `deidgate deadletter retry` once the archive knows us.

mod common;

use common::gateway::*;
use common::http::request;
use common::peers::*;
use common::*;
use dicom_dictionary_std::tags;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// dcmqrscp on `port` storing into `dir/db`, knowing only the AE title `ae`.
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

/// The instances the archive holds.
fn archived(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("db"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "index.dat"))
        .collect()
}

/// One instance at the archive, written completely: dcmqrscp creates the
/// file before it has written all of it.
fn archived_whole(dir: &Path) -> bool {
    let a = archived(dir);
    a.len() == 1 && dicom_object::open_file(&a[0]).is_ok()
}

fn deadletter(g: &Gateway, args: &[&str]) -> Output {
    let mut all = vec!["deadletter"];
    all.extend(args);
    let o = cli(&g.config, &all);
    assert!(o.status.success(), "deadletter {args:?}: {}", text(&o));
    o
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Dead-letter files (not their reason files) of destination `pacs`.
fn dead_files(g: &Gateway) -> Vec<PathBuf> {
    files_under(&g.data.join("dead_letter/pacs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect()
}

fn metric(g: &Gateway, line_start: &str) -> Option<String> {
    g.http_get("/metrics")
        .1
        .lines()
        .find(|l| l.starts_with(line_start))
        .map(str::to_string)
}

/// The pseudonymous SOP Instance UIDs of `inputs`, as the gateway names them.
fn uids(g: &Gateway, inputs: &[PathBuf]) -> Vec<String> {
    let names = expected_names(g, inputs);
    names
        .iter()
        .map(|n| n.trim_end_matches(".dcm").to_string())
        .collect()
}

/// Waits until `n` instances are dead-lettered: within 30 s, far below the
/// retry schedule of an outage (72 h).
/// Waits for `n` dead-lettered files, each with its reason beside it (the
/// reason file is written just after the file is linked in).
fn wait_dead(g: &Gateway, n: usize) {
    let t = Instant::now();
    let with_reason = |g: &Gateway| {
        dead_files(g)
            .iter()
            .filter(|f| std::path::Path::new(&format!("{}.reason.txt", f.display())).exists())
            .count()
    };
    while with_reason(g) < n {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "not dead-lettered promptly:\n{}",
            g.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_rejected_called_ae_title_is_dead_lettered_at_once_listed_and_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let arc_dir = tmp.path().join("archive");
    let refusing = archive(&arc_dir, port, "ARCHIVE");
    let g = Gateway::start(tmp.path(), &dicom_destination("pacs", "PACS", port));
    let inputs = make_instances(&tmp.path().join("in"), 1);
    send_all(&g, tmp.path(), "MODALITY", &inputs);
    wait_dead(&g, 1);
    let uid = &uids(&g, &inputs)[0];
    let id = format!("pacs/{uid}");
    assert!(
        !g.log().contains("will retry"),
        "a permanent rejection is not retried:\n{}",
        g.log()
    );
    assert!(archived(&arc_dir).is_empty());

    // The reason, next to the file and in the list.
    let file = &dead_files(&g)[0];
    let reason = std::fs::read_to_string(format!("{}.reason.txt", file.display())).unwrap();
    assert!(
        reason.contains("called AE title not recognized") && reason.contains("\"PACS\""),
        "{reason}"
    );
    let list = stdout(&deadletter(&g, &["list"]));
    let row = list
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{list}"));
    let cols: Vec<&str> = row.split('\t').collect();
    assert_eq!(cols[..3], ["pacs", id.as_str(), "1"], "{row}");
    assert!(cols[3].ends_with('Z'), "a time: {row}");
    assert!(
        cols[4].contains("rejected permanently: called AE title not recognized"),
        "{row}"
    );
    let show = stdout(&deadletter(&g, &["show", &id]));
    assert!(show.contains(&file.display().to_string()), "{show}");
    assert!(show.contains("called AE title not recognized"), "{show}");
    assert_eq!(
        metric(&g, "deidgate_forward_dead_letters{").as_deref(),
        Some("deidgate_forward_dead_letters{destination=\"pacs\"} 1")
    );

    // The archive learns our AE title; one command sends everything again.
    drop(refusing);
    let _accepting = archive(&arc_dir, port, "PACS");
    let t = Instant::now();
    let retried = stdout(&deadletter(&g, &["retry", "--all"]));
    assert!(
        retried.contains(&format!("queued again: {id}")),
        "{retried}"
    );
    poll("the retried instance at the archive", &g, || {
        archived_whole(&arc_dir)
    });
    // Woken at once, not at its next scheduled attempt.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let got = dicom_object::open_file(&archived(&arc_dir)[0]).unwrap();
    assert_eq!(deidgate::dicom::text(&got, tags::SOP_INSTANCE_UID), *uid);
    let original = header(&inputs[0]).unwrap();
    for t in [
        tags::PATIENT_ID,
        tags::PATIENT_NAME,
        tags::STUDY_INSTANCE_UID,
    ] {
        let (was, is) = (
            deidgate::dicom::text(&original, t),
            deidgate::dicom::text(&got, t),
        );
        assert!(was.is_empty() || was != is, "{t:?} kept: {is}");
    }
    assert!(dead_files(&g).is_empty());
    assert!(files_under(&g.data.join("dead_letter/pacs")).is_empty());
    poll("the gauge to drop", &g, || {
        metric(&g, "deidgate_forward_dead_letters{").as_deref()
            == Some("deidgate_forward_dead_letters{destination=\"pacs\"} 0")
    });
    assert!(!stdout(&deadletter(&g, &["list"])).contains(&id));
    let unknown = cli(&g.config, &["deadletter", "show", "pacs/2.25.1"]);
    assert!(!unknown.status.success());

    // Every command is in the audit log, with the actor.
    let audit = stdout(&cli(&g.config, &["audit", "export"]));
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (action, subject) in [
        ("deadletter.list", "*"),
        ("deadletter.show", id.as_str()),
        ("deadletter.retry", id.as_str()),
        ("deadletter.show", "pacs/2.25.1"),
    ] {
        assert!(
            records.iter().any(|r| r["action"] == action
                && r["subject"] == subject
                && r["actor"].as_str().unwrap().starts_with("cli:")),
            "no {action} of {subject} in:\n{audit}"
        );
    }
}

#[test]
fn dead_letters_stay_listed_and_counted_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let arc_dir = tmp.path().join("archive");
    let refusing = archive(&arc_dir, port, "ARCHIVE");
    let config = write_config(tmp.path(), &dicom_destination("pacs", "PACS", port));
    let token = add_user(&config, "olga", &["operator"]);
    let mut g = Gateway::start_configured(tmp.path(), &config);
    let inputs = make_instances(&tmp.path().join("in"), 3);
    send_all(&g, tmp.path(), "MODALITY", &inputs);
    wait_dead(&g, 3);
    poll("the spool to drain", &g, || g.spool_drained());
    let uids = uids(&g, &inputs);

    // Purged while the gateway runs (a bare UID names it at every destination).
    let purged = stdout(&deadletter(&g, &["purge", &uids[0]]));
    assert!(
        purged.contains(&format!("purged pacs/{}", uids[0])),
        "{purged}"
    );
    assert_eq!(dead_files(&g).len(), 2);

    // Retried while the gateway is down: queued for its next start.
    g.kill9();
    drop(refusing);
    let _accepting = archive(&arc_dir, port, "PACS");
    let retried = stdout(&deadletter(&g, &["retry", &format!("pacs/{}", uids[1])]));
    assert!(
        retried.contains("sent when the gateway starts"),
        "{retried}"
    );
    g.restart();
    poll("the retried instance at the archive", &g, || {
        archived_whole(&arc_dir)
    });
    let got = dicom_object::open_file(&archived(&arc_dir)[0]).unwrap();
    assert_eq!(deidgate::dicom::text(&got, tags::SOP_INSTANCE_UID), uids[1]);

    // One is left: the gauge, the status page and the list say so.
    assert_eq!(
        metric(&g, "deidgate_forward_dead_letters{").as_deref(),
        Some("deidgate_forward_dead_letters{destination=\"pacs\"} 1")
    );
    let status = request(g.http_port(), "GET", "/api/status", Some(&token), None).json();
    let pacs = status["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "pacs")
        .unwrap()
        .clone();
    assert_eq!(pacs["dead_lettered"], 1, "{status}");
    let list = stdout(&deadletter(&g, &["list"]));
    let rows: Vec<&str> = list.lines().filter(|l| l.starts_with("pacs\t")).collect();
    assert_eq!(rows.len(), 1, "{list}");
    assert!(rows[0].contains(&uids[2]), "{list}");
    assert!(
        g.log().contains("dead letters waiting"),
        "announced at start:\n{}",
        g.log()
    );
}

#[test]
fn orphaned_outbox_files_are_removed_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens: the instances stay queued
    let mut g = Gateway::start(tmp.path(), &dicom_destination("pacs", "STORESCP", port));
    let inputs = make_instances(&tmp.path().join("in"), 2);
    send_all(&g, tmp.path(), "MODALITY", &inputs);
    let outbox = g.data.join("outbox/pacs");
    // Queued durably (the spool lets go only after the database is flushed).
    poll("both queued", &g, || {
        files_under(&outbox).len() == 2 && g.spool_drained()
    });
    g.kill9();
    let queued = files_under(&outbox);
    // What a kill -9 between placing and queueing leaves, and a temp file.
    let orphan = outbox.join("2.25.4242.1700000000000000000.dcm");
    std::fs::copy(&queued[0], &orphan).unwrap();
    let temp = outbox.join(".2.25.4243.1.dcm.tmp4194304");
    std::fs::write(&temp, b"half").unwrap();
    let stray = g.data.join("dead_letter/pacs/2.25.4244.1.dcm");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::copy(&queued[1], &stray).unwrap();
    g.restart();
    assert!(!orphan.exists() && !temp.exists() && !stray.exists());
    assert_eq!(files_under(&outbox), queued, "queued files are kept");
    let line = g
        .log()
        .lines()
        .find(|l| l.contains("removed outbox files no queued job refers to"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no clean-up logged:\n{}", g.log()));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("strays=1"), "{line}");
    // The temp file may have gone with the other stale temps already.
    assert!(
        line.contains("orphans=1") || line.contains("orphans=2"),
        "{line}"
    );
    // The queue itself is intact: both arrive once the archive is up.
    let scp_dir = tmp.path().join("storescp");
    let _scp = storescp(&scp_dir, port);
    poll("both delivered", &g, || {
        files_under(&scp_dir).len() == 2 && files_under(&outbox).is_empty()
    });
}
