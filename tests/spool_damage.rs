//! A damaged record in the middle of the spool's write-ahead log (issue 18):
//! `deidgate serve` replays every intact record after it, reports the damage
//! (ERROR line, `/metrics`, `/api/status`) and keeps a copy of the segment.
//!
//! The acknowledged-but-unprocessed instances are put into the log the way
//! the receiver does it (`Spool::accept` on the gateway's own database)
//! while the gateway is stopped: the only way to have 100 of them waiting
//! at a known place in the log without racing the workers.

mod common;

use common::gateway::*;
use common::http::request;
use common::*;
use deidgate::pipeline::spool::Spool;
use std::path::{Path, PathBuf};

/// Instances in the log; the damaged one (record 32, counting from 1).
const INSTANCES: usize = 100;
const DAMAGED: usize = 31;

#[test]
fn a_damaged_record_in_the_middle_of_the_log_loses_only_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    // Creates the data directory, secrets and key store, as `serve` would.
    let operator = add_user(&config, "otto", &["operator"]);
    let data = tmp.path().join("data");
    let files = make_instances(&tmp.path().join("in"), INSTANCES);
    let ids = log_instances(&data, &files);

    let wal = data.join("spool").join("wal");
    let (seg, record_start) = damage_payload(&wal, &ids[DAMAGED], &files[DAMAGED]);
    let stem = seg.file_stem().unwrap().to_string_lossy().to_string();

    let mut g = Gateway::start_configured(tmp.path(), &config);
    let survivors: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != DAMAGED)
        .map(|(_, f)| f.clone())
        .collect();
    let expected = expected_names(&g, &survivors);
    let out = wait_for_outputs(&g, &expected);
    assert_eq!(out.len(), INSTANCES - 1, "{out:?}");

    // Reported at ERROR, with the count, the offset and the kept copy.
    let log = g.log();
    let error = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("damaged_records=1"))
        .unwrap_or_else(|| panic!("no ERROR line for the damage:\n{log}"));
    assert!(
        error.contains(&format!("offset {record_start} to ")),
        "{error}"
    );
    assert!(error.contains(&ids[DAMAGED]), "{error}");
    assert!(error.contains(&format!("damaged/{stem}.seg")), "{error}");
    assert!(
        log.contains("instances=99"),
        "resumed the 99 intact:\n{log}"
    );
    let kept = wal.join("damaged").join(format!("{stem}.seg"));
    let report = std::fs::read_to_string(wal.join("damaged").join(format!("{stem}.txt")))
        .expect("the damage report");
    assert!(
        report.contains(&format!("offset {record_start} to ")),
        "{report}"
    );
    assert!(
        report.contains(&format!("intact records replayed: {}", INSTANCES - 1)),
        "{report}"
    );

    let metrics = g.http_get("/metrics").1;
    assert!(
        has_line(&metrics, "deidgate_spool_damaged_records_total 1"),
        "{metrics}"
    );
    assert!(
        has_line(&metrics, "deidgate_spool_damaged_segments 1"),
        "{metrics}"
    );
    let status = request(g.http_port(), "GET", "/api/status", Some(&operator), None);
    assert_eq!(status.status, 200, "{}", status.body);
    let spool = &status.json()["spool"];
    assert_eq!(spool["damaged_records"], 1, "{}", status.body);
    assert_eq!(spool["damaged_segments_kept"], 1, "{}", status.body);

    // Its intact records done, the segment is retired; the copy stays, and
    // a restart still counts it.
    poll("the damaged segment to be retired", &g, || !seg.exists());
    let copy = std::fs::read(&kept).expect("the kept copy");
    assert!(copy
        .windows(ids[DAMAGED].len())
        .any(|w| w == ids[DAMAGED].as_bytes()));
    g.kill9();
    g.restart();
    let metrics = g.http_get("/metrics").1;
    assert!(
        has_line(&metrics, "deidgate_spool_damaged_segments 1"),
        "{metrics}"
    );
    assert!(
        has_line(&metrics, "deidgate_spool_damaged_records_total 0"),
        "nothing new: {metrics}"
    );
    assert!(g.alive());
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

/// Accept every file into the gateway's spool log exactly as the receiver
/// does, and close the log without processing anything; returns the spool
/// ids in order.
fn log_instances(data: &Path, files: &[PathBuf]) -> Vec<String> {
    let db_dir = deidgate::runtime::keystore_dir(data);
    let db = deidgate::keystore::sled_store::open_db(&db_dir).expect("open the key store");
    let spool = Spool::open_logged(data, &db).unwrap();
    let ids = files
        .iter()
        .map(|f| {
            let (id, tmp) = spool.new_incoming();
            let bytes = std::fs::read(f).unwrap();
            spool.accept(&id, &tmp, &bytes).unwrap();
            assert!(!tmp.exists(), "logged, not spooled as a file");
            id
        })
        .collect();
    drop(spool);
    db.flush().unwrap();
    ids
}

/// Flip 16 bytes in the middle of the payload of the record `id` (which
/// holds `file`'s bytes); returns its segment and the record's offset there.
fn damage_payload(wal: &Path, id: &str, file: &Path) -> (PathBuf, usize) {
    let payload_len = std::fs::read(file).unwrap().len();
    for e in std::fs::read_dir(wal).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "seg") {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let Some(at) = find(&bytes, id.as_bytes()) else {
            continue;
        };
        // The record starts at its magic (either format), the last one
        // before its id.
        let start = bytes[..at]
            .windows(4)
            .rposition(|w| w == b"DGW2" || w == b"DGW1")
            .expect("the record's magic");
        let mid = at + id.len() + payload_len / 2;
        bytes[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0x5a);
        std::fs::write(&path, &bytes).unwrap();
        return (path, start);
    }
    panic!("record {id} not found in {}", wal.display());
}
