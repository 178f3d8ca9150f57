//! Forwarding to real archives: DCMTK storescp and Orthanc, started by the
//! tests on loopback ports. Every acknowledged instance arrives, de-identified,
//! exactly once; a destination outage queues and delivers later.

mod common;

use common::gateway::*;
use common::peers::*;
use common::*;
use dicom_dictionary_std::tags;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// SOP Instance UIDs of the DICOM files under `dir`.
fn sop_uids(files: &[PathBuf]) -> Vec<String> {
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

/// Every received file is read by dcmdump and carries none of the originals.
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
            if !v.is_empty() {
                needles.insert(v);
            }
        }
    }
    // Across files only values long enough not to recur by chance are
    // checked (short IDs like "0010" are checked per file by the corpus test).
    let long: Vec<&String> = needles.iter().filter(|n| n.len() >= 6).collect();
    let ac = aho_corasick::AhoCorasick::new(&long).unwrap();
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

/// Wait until the spool and the outbox are empty (everything delivered or
/// dead-lettered) and the peer holds at least `expected` files.
fn wait_forwarded(
    g: &Gateway,
    dest: &str,
    peer_files: impl Fn() -> Vec<PathBuf>,
    expected: usize,
) -> Vec<PathBuf> {
    let outbox = g.data.join("outbox").join(dest);
    poll("forwarding to the peer", g, || {
        g.spool_drained() && files_under(&outbox).is_empty() && peer_files().len() >= expected
    });
    peer_files()
}

#[test]
fn every_instance_is_forwarded_to_storescp() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let scp_dir = tmp.path().join("storescp");
    let _scp = storescp(&scp_dir, port);
    // Head MR series are held until complete; a short quiet period lets
    // them through within the test.
    let config = dicom_destination("pacs", "STORESCP", port) + "\n[mri]\nquiet_secs = 2\n";
    let g = Gateway::start(tmp.path(), &config);
    let data = data_dir();
    let mut inputs = files_under(&data.join("dicom"));
    inputs.extend(files_under(&data.join("derived")));
    inputs.retain(|f| header(f).is_some());
    let stored = send(&g, tmp.path(), &inputs);
    // What the folder sink holds is what was acknowledged and not quarantined.
    poll("the spool to drain", &g, || g.spool_drained());
    poll("held head MR series to be processed", &g, || {
        ["open", "claimed"]
            .iter()
            .all(|d| files_under(&g.data.join("series").join(d)).is_empty())
    });
    let out = outputs(&g);
    let received = wait_forwarded(&g, "pacs", || files_under(&scp_dir), out.len() - 3);
    let (a, b): (BTreeSet<String>, BTreeSet<String>) = (
        sop_uids(&out).into_iter().collect(),
        sop_uids(&received).into_iter().collect(),
    );
    // SOP classes storescp does not offer (e.g. Color Palette) are refused
    // at negotiation and dead-lettered with that reason, never dropped.
    let dead: BTreeSet<String> = sop_uids(&files_under(&g.data.join("dead_letter/pacs")))
        .into_iter()
        .collect();
    for l in g.log().lines().filter(|l| l.contains("dead-lettered")) {
        assert!(
            l.contains("no presentation context") || l.contains("association failed while sending"),
            "unexpected dead letter: {l}"
        );
    }
    assert!(dead.len() <= 3, "too many dead letters: {dead:?}");
    let delivered_or_dead: BTreeSet<String> = b.union(&dead).cloned().collect();
    // Some inputs share a SOP Instance UID (the MR_small variants in several
    // transfer syntaxes): each received copy is forwarded, so the peer may
    // hold a few more files than there are distinct instances, never fewer.
    assert_eq!(
        a, delivered_or_dead,
        "the peer holds what the gateway de-identified"
    );
    assert!(
        received.len() <= stored.len(),
        "more deliveries than acknowledged instances"
    );
    eprintln!(
        "{} acknowledged, {} de-identified, {} forwarded",
        stored.len(),
        out.len(),
        received.len()
    );
    assert!(out.len() >= 150, "only {} outputs", out.len());
    assert_clean(&received, &stored);
}

#[test]
fn destination_outage_queues_then_delivers_each_instance_once() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens there yet
    let g = Gateway::start(tmp.path(), &dicom_destination("pacs", "STORESCP", port));
    let inputs = make_instances(&tmp.path().join("in"), 200);
    let stored = send(&g, tmp.path(), &inputs);
    assert_eq!(
        stored.len(),
        200,
        "all 200 acknowledged while the archive is down"
    );
    let outbox = g.data.join("outbox/pacs");
    poll("all 200 queued", &g, || files_under(&outbox).len() == 200);
    // The archive comes back.
    let scp_dir = tmp.path().join("storescp");
    let _scp = storescp(&scp_dir, port);
    let received = wait_forwarded(&g, "pacs", || files_under(&scp_dir), 200);
    poll("the outbox to empty", &g, || {
        files_under(&outbox).is_empty()
    });
    // Give a duplicate every chance to show up before counting.
    std::thread::sleep(Duration::from_secs(3));
    let received_now = files_under(&scp_dir);
    assert_eq!(received_now.len(), 200, "each instance exactly once");
    let uids: BTreeSet<String> = sop_uids(&received).into_iter().collect();
    assert_eq!(uids.len(), 200);
    assert!(
        g.log().contains("will retry"),
        "the outage was retried:\n{}",
        g.log()
    );
    // The same story in /metrics, and the gateway reports itself healthy.
    let (status, body) = g.http_get("/metrics");
    assert!(status.contains("200"), "{status}");
    for want in [
        "deidgate_instances_stored_total 200",
        "deidgate_instances_deidentified_total 200",
        "deidgate_forward_delivered_total{destination=\"pacs\"} 200",
        "deidgate_forward_queue_depth{destination=\"pacs\"} 0",
        "deidgate_forward_dead_letter_total{destination=\"pacs\"} 0",
        // Each of the 200 (small) instances was synced in the spool log
        // before its Success.
        "deidgate_spool_syncs_total 200",
    ] {
        assert!(
            body.lines().any(|l| l == want),
            "missing {want:?} in:\n{body}"
        );
    }
    assert!(
        !body.contains("deidgate_forward_retries_total{destination=\"pacs\"} 0\n"),
        "{body}"
    );
    assert!(g.http_get("/healthz").0.contains("200"));
}

/// Minimal HTTP GET against Orthanc's REST API on loopback.
fn http_get(port: u16, path: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    serde_json::from_str(buf.split_once("\r\n\r\n")?.1).ok()
}

#[test]
fn every_instance_is_forwarded_to_orthanc() {
    let tmp = tempfile::tempdir().unwrap();
    let (dicom_port, http_port) = (free_port(), free_port());
    let storage = tmp.path().join("orthanc-storage");
    let cfg = serde_json::json!({
        "Name": "deidgate-test",
        "StorageDirectory": storage,
        "IndexDirectory": tmp.path().join("orthanc-index"),
        "StorageCompression": false,
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": false,
        "AuthenticationEnabled": false,
        "DicomCheckCalledAet": false,
        "Plugins": []
    });
    let cfg_path = tmp.path().join("orthanc.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let orthanc = Command::new(tool("Orthanc"))
        .arg(&cfg_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("orthanc.log")).unwrap())
        .spawn()
        .unwrap();
    let _orthanc = Peer(orthanc);
    wait_port(dicom_port);
    wait_port(http_port);
    let g = Gateway::start(
        tmp.path(),
        &dicom_destination("orthanc", "ORTHANC", dicom_port),
    );
    let data = data_dir();
    let mut inputs = files_under(&data.join("dicom/mr"));
    inputs.extend(files_under(&data.join("derived/head_mr_t1_sag_lowres")));
    inputs.extend(files_under(&data.join("dicom/ct")));
    inputs.retain(|f| header(f).is_some());
    let stored = send(&g, tmp.path(), &inputs);
    poll("the spool to drain", &g, || g.spool_drained());
    let out = outputs(&g);
    let count = || {
        http_get(http_port, "/statistics")
            .and_then(|v| v["CountInstances"].as_u64())
            .unwrap_or(0) as usize
    };
    poll("Orthanc to hold every instance", &g, || {
        count() >= out.len()
    });
    assert_eq!(count(), out.len());
    let ours: BTreeSet<String> = sop_uids(&out).into_iter().collect();
    let stored_in_orthanc: Vec<PathBuf> = files_under(&storage)
        .into_iter()
        .filter(|p| p.extension().is_none() && !p.to_string_lossy().contains("index"))
        .collect();
    let theirs: BTreeSet<String> = sop_uids(&stored_in_orthanc).into_iter().collect();
    assert_eq!(
        ours, theirs,
        "Orthanc holds exactly what the gateway de-identified"
    );
    eprintln!(
        "{} acknowledged, {} forwarded to Orthanc",
        stored.len(),
        out.len()
    );
    assert_clean(&stored_in_orthanc, &stored);
}

/// Pixel Data bytes and transfer syntax of a file.
fn pixels(path: &Path) -> (String, Vec<u8>) {
    let o = dicom_object::open_file(path).unwrap();
    let ts = o
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let px = o
        .element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec();
    (ts, px)
}

#[test]
fn compressed_instances_are_decoded_for_a_peer_that_accepts_only_uncompressed() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let scp_dir = tmp.path().join("storescp");
    std::fs::create_dir_all(&scp_dir).unwrap();
    // No +xa: this storescp accepts uncompressed transfer syntaxes only.
    let _scp = Peer(
        Command::new(tool("storescp"))
            .args(["-aet", "STORESCP", "+uf", "-od"])
            .arg(&scp_dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port);
    // The chest and text routes would write these images native; this test
    // is about the forwarder's own transcoding, so they are explicitly off.
    let config = dicom_destination("pacs", "STORESCP", port)
        + "\n[chest]\nenabled = false\n[text]\nenabled = false\n";
    let g = Gateway::start(tmp.path(), &config);
    let ts = data_dir().join("dicom/ts");
    // (input, dcmtk decompressor for an exact comparison, when lossless)
    let cases = [
        ("SC_rgb_rle.dcm", Some("dcmdrle")),
        ("JPEG-LL.dcm", Some("dcmdjpeg")),
        ("SC_rgb_small_odd_jpeg.dcm", None),
        // JPEG-LS near-lossless (CharLS): decoding is exact, so dcmtk's
        // decoder must give the same bytes.
        ("JPEGLSNearLossless_16.dcm", Some("dcmdjpls")),
    ];
    let mut inputs: Vec<PathBuf> = cases.iter().map(|(f, _)| ts.join(f)).collect();
    inputs.push(data_dir().join("dicom/cr_dx/RG1_J2KR.dcm"));
    // 12-bit JPEG extended has no decoder in this build: it must be
    // dead-lettered with the reason, never sent compressed or dropped.
    inputs.push(ts.join("JPGExtended.dcm"));
    send(&g, tmp.path(), &inputs);
    poll("the spool to drain", &g, || g.spool_drained());
    let out = outputs(&g);
    assert_eq!(out.len(), inputs.len(), "{}", g.log());
    let received = wait_forwarded(&g, "pacs", || files_under(&scp_dir), inputs.len() - 1);
    assert_eq!(received.len(), inputs.len() - 1);
    let by_uid = |files: &[PathBuf], uid: &str| {
        files
            .iter()
            .find(|f| {
                sop_uids(std::slice::from_ref(f))
                    .first()
                    .map(String::as_str)
                    == Some(uid)
            })
            .cloned()
    };
    for input in &inputs[..inputs.len() - 1] {
        // The gateway's own (still compressed) output of this input.
        let out_file = out
            .iter()
            .find(|o| {
                let a = dicom_object::open_file(o).unwrap();
                let b = dicom_object::open_file(input).unwrap();
                let rows = |x: &dicom_object::DefaultDicomObject| {
                    deidgate::dicom::text(x, tags::ROWS)
                        + &deidgate::dicom::text(x, tags::COLUMNS)
                        + x.meta().transfer_syntax()
                };
                rows(&a) == rows(&b)
            })
            .unwrap_or_else(|| panic!("no output for {}", input.display()));
        let uid = &sop_uids(std::slice::from_ref(out_file))[0];
        let got =
            by_uid(&received, uid).unwrap_or_else(|| panic!("{} not received", input.display()));
        let (got_ts, got_px) = pixels(&got);
        assert!(
            ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"].contains(&got_ts.as_str()),
            "{}: received in {got_ts}",
            input.display()
        );
        let o = dicom_object::open_file(&got).unwrap();
        let num = |t| deidgate::dicom::text(&o, t).parse::<usize>().unwrap_or(1);
        let expected = num(tags::ROWS)
            * num(tags::COLUMNS)
            * num(tags::SAMPLES_PER_PIXEL)
            * num(tags::BITS_ALLOCATED).div_ceil(8)
            * num(tags::NUMBER_OF_FRAMES);
        assert_eq!(got_px.len(), expected + expected % 2, "{}", input.display());
        assert!(dcmdump(&got).0, "{}", got.display());
        let name = input.file_name().unwrap().to_str().unwrap();
        if let Some(Some(tool_name)) = cases.iter().find(|(f, _)| *f == name).map(|(_, t)| t) {
            // dcmtk decodes the same stream: the bytes must be identical.
            let ref_file = tmp.path().join(format!("{name}.ref.dcm"));
            let st = Command::new(tool(tool_name))
                .arg(out_file)
                .arg(&ref_file)
                .status()
                .unwrap();
            assert!(st.success(), "{tool_name} failed on {}", out_file.display());
            assert_eq!(
                pixels(&ref_file).1,
                got_px,
                "{name}: pixels differ from dcmtk's decoding"
            );
        }
    }
    let dead: Vec<PathBuf> = files_under(&g.data.join("dead_letter/pacs"))
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".reason.txt"))
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(g
        .log()
        .lines()
        .any(|l| l.contains("dead-lettered") && l.contains("could not be decoded")));
}

/// The leak scan does not take a chance run of digits in a new
/// pseudonymous UID for a surviving ID, and still finds the ID elsewhere.
#[test]
fn a_new_uid_is_not_read_as_a_leaked_id() {
    let uid = b"\x00(0008,0018)2.25.318116423410963284\x00";
    assert!(find(uid, b"642341").is_some());
    assert!(find(&blank_new_uids(uid.to_vec()), b"642341").is_none());
    let elsewhere = b"2.25.11\x00ID 642341\x00";
    assert!(find(&blank_new_uids(elsewhere.to_vec()), b"642341").is_some());
}
