//! `deidgate serve` against real DICOM peers (DCMTK echoscu/storescu) and
//! against hostile ones (garbage bytes, vanishing peers, bad data sets):
//! what is acknowledged ends up de-identified in `out/`, exactly once, even
//! across `kill -9`; nothing else takes the process down.

mod common;

use common::gateway::*;
use common::*;
use dicom_dictionary_std::{tags, uids};
use dicom_ul::association::client::ClientAssociation;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::{ClientAssociationOptions, Pdu};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn scp_config_is_embedded_and_checked() {
    use deidgate::config::Config;
    let c = Config::embedded();
    assert_eq!(c.scp.max_pdu_length, 16384);
    assert_eq!(c.scp.max_associations, 32);
    assert!(c.scp.check_called_ae && c.scp.allowed_ips.is_empty());
    for (toml, key) in [
        ("[scp]\nallowed_ips = [\"pacs.example\"]\n", "allowed_ips"),
        ("[scp]\nmax_pdu_length = 10\n", "max_pdu_length"),
        ("[scp]\nmax_associations = 0\n", "max_associations"),
        (
            "[scp]\nallowed_calling_ae_titles = [\"\"]\n",
            "allowed_calling_ae_titles",
        ),
        ("[scp]\nmax_pdu = 1\n", "max_pdu"),
    ] {
        let e = Config::parse(toml, "site.toml").unwrap_err().to_string();
        assert!(e.starts_with("site.toml:") && e.contains(key), "{e}");
    }
}

#[test]
fn echoscu_gets_success() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start(tmp.path(), "");
    let o = g.echo("ECHOSCU", "DEIDGATE");
    assert!(o.status.success(), "{}\n{}", text(&o), g.log());
    assert!(g.log().contains("listening"), "{}", g.log());
}

#[test]
fn storescu_folders_arrive_deidentified() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(tmp.path(), "");
    let dirs = [
        data_dir().join("dicom/mr"),
        data_dir().join("derived/head_mr_t1_sag_lowres"),
    ];
    let files: Vec<PathBuf> = dirs.iter().flat_map(|d| files_under(d)).collect();
    let profile = scu_profile(tmp.path(), &files);
    let t = Instant::now();
    let o = storescu_cmd(&g, &profile, "STORESCU", &dirs)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let log = text(&o);
    let stored = stored_files(&log);
    eprintln!("storescu: {} instances stored in {secs:.2} s", stored.len());
    // Everything DICOM in these folders is sendable; only the .gz is not.
    let dicom: Vec<_> = files.iter().filter(|f| header(f).is_some()).collect();
    assert_eq!(stored.len(), dicom.len(), "{log}\n{}", g.log());
    assert!(g.alive());

    // Head MR waits for its whole series and takes the MRI route
    // (tests/mri_route.rs); everything else comes out instance by instance.
    let single: Vec<PathBuf> = stored
        .iter()
        .filter(|f| {
            let h = header(f).unwrap();
            let class = h.meta().media_storage_sop_class_uid().to_string();
            !deidgate::routes::mri::select::is_head_mr(&h, &class)
        })
        .cloned()
        .collect();
    assert!(single.len() < stored.len());
    let expected = expected_names(&g, &single);
    let out = wait_for_outputs(&g, &expected);
    assert_eq!(out.len(), expected.len(), "outputs: {out:?}");

    // The originals' identifiers appear in no output.
    let mut originals = BTreeSet::new();
    for f in &stored {
        let obj = header(f).unwrap();
        originals.extend(values_of(&obj, &|t, _| {
            [tags::PATIENT_ID, tags::PATIENT_NAME, tags::SOP_INSTANCE_UID].contains(&t)
        }));
    }
    assert!(!originals.is_empty());
    for p in &out {
        let (ok, dump) = dcmdump(p);
        assert!(ok, "dcmdump fails on {}: {dump}", p.display());
        let obj = dicom_object::open_file(p).unwrap();
        let (bytes, txt) = (scannable_bytes(p), all_text(&obj));
        for v in &originals {
            assert!(
                !survives(v, &bytes, &txt),
                "{v:?} survives in {}",
                p.display()
            );
        }
    }
    assert!(dir_is_empty(&g.spool("incoming")));
}

#[test]
fn disallowed_callers_are_rejected_at_association() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        tmp.path(),
        "[scp]\nallowed_calling_ae_titles = [\"GOODSCU\"]\n",
    );
    let o = g.echo("BADSCU", "DEIDGATE");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Rejected"), "{}", text(&o));
    let mr = vec![data_dir().join("dicom/mr/MR_small.dcm")];
    let profile = scu_profile(tmp.path(), &mr);
    let o = storescu_cmd(&g, &profile, "BADSCU", &mr).output().unwrap();
    assert!(!o.status.success() || stored_files(&text(&o)).is_empty());
    // The called AE title must be ours.
    let o = g.echo("GOODSCU", "SOMEONEELSE");
    assert!(!o.status.success(), "{}", text(&o));
    let o = g.echo("GOODSCU", "DEIDGATE");
    assert!(o.status.success(), "{}\n{}", text(&o), g.log());
    poll("the rejection in the log", &g, || {
        g.log().contains("association rejected")
    });
    assert!(outputs(&g).is_empty());

    // By peer address: loopback is not on this list.
    let tmp2 = tempfile::tempdir().unwrap();
    let g2 = Gateway::start(tmp2.path(), "[scp]\nallowed_ips = [\"10.9.9.0/24\"]\n");
    assert!(!g2.echo("ANY", "DEIDGATE").status.success());
    let tmp3 = tempfile::tempdir().unwrap();
    let g3 = Gateway::start(tmp3.path(), "[scp]\nallowed_ips = [\"127.0.0.0/8\"]\n");
    assert!(g3.echo("ANY", "DEIDGATE").status.success());
}

// ---------------------------------------------------------------- raw peers

fn raw_association(port: u16) -> (ClientAssociation<TcpStream>, u8) {
    let a = ClientAssociationOptions::new()
        .calling_ae_title("RAWSCU")
        .called_ae_title("DEIDGATE")
        .with_presentation_context(
            uids::MR_IMAGE_STORAGE,
            vec![uids::EXPLICIT_VR_LITTLE_ENDIAN],
        )
        .establish(("127.0.0.1", port))
        .expect("associate");
    let pc = a.presentation_contexts()[0].id;
    (a, pc)
}

/// A C-STORE-RQ command set (Implicit VR LE).
fn store_rq(message_id: u16, class: &str, instance: &str) -> Vec<u8> {
    let mut body = Vec::new();
    let mut el = |e: u16, v: &[u8]| {
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&e.to_le_bytes());
        body.extend_from_slice(&(v.len() as u32).to_le_bytes());
        body.extend_from_slice(v);
    };
    let uid = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        if b.len() % 2 == 1 {
            b.push(0);
        }
        b
    };
    el(0x0002, &uid(class));
    el(0x0100, &1u16.to_le_bytes());
    el(0x0110, &message_id.to_le_bytes());
    el(0x0700, &0u16.to_le_bytes());
    el(0x0800, &0u16.to_le_bytes());
    el(0x1000, &uid(instance));
    let mut out = vec![0, 0, 0, 0, 4, 0, 0, 0];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn pdata(pc: u8, command: bool, is_last: bool, data: &[u8]) -> Pdu {
    Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: if command {
                PDataValueType::Command
            } else {
                PDataValueType::Data
            },
            is_last,
            data: data.to_vec(),
        }],
    }
}

/// Send the command and `dataset` in fragments; `complete` false stops
/// before the last fragment.
fn send_store(
    a: &mut ClientAssociation<TcpStream>,
    pc: u8,
    command: &[u8],
    dataset: &[u8],
    complete: bool,
) {
    a.send(&pdata(pc, true, true, command)).unwrap();
    let chunks: Vec<&[u8]> = dataset.chunks(4000).collect();
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        if last && !complete {
            return;
        }
        a.send(&pdata(pc, false, last, c)).unwrap();
    }
}

/// The Status (0000,0900) of the next response.
fn response_status(a: &mut ClientAssociation<TcpStream>) -> u16 {
    let Pdu::PData { data } = a.receive().expect("a response") else {
        panic!("expected P-DATA");
    };
    let b = &data[0].data;
    let mut pos = 0;
    while pos + 8 <= b.len() {
        let elem = u16::from_le_bytes([b[pos + 2], b[pos + 3]]);
        let len = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        if elem == 0x0900 {
            return u16::from_le_bytes([b[pos + 8], b[pos + 9]]);
        }
        pos += 8 + len;
    }
    panic!("no status in the response");
}

/// MR_small's data set bytes (after its file meta group) and its SOP UID.
fn mr_small() -> (Vec<u8>, String) {
    let path = data_dir().join("dicom/mr/MR_small.dcm");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[128..132], b"DICM");
    let group_len = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    let obj = header(&path).unwrap();
    assert_eq!(
        obj.meta().transfer_syntax().trim_end_matches('\0'),
        uids::EXPLICIT_VR_LITTLE_ENDIAN
    );
    (
        bytes[144 + group_len..].to_vec(),
        deidgate::dicom::text(&obj, tags::SOP_INSTANCE_UID),
    )
}

#[test]
fn garbage_and_vanishing_peers_do_not_take_it_down() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(tmp.path(), "");
    let addr = ("127.0.0.1", g.port);
    // Random bytes instead of an association request.
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for first in [0x01u8, 0x04, 0x07, 0xFF] {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut b = noise.clone();
        b[0] = first;
        let _ = s.write_all(&b);
    }
    // A truncated A-ASSOCIATE-RQ: a real one cut short, then the peer leaves.
    let rq = {
        let pdu = Pdu::AssociationRQ(dicom_ul::pdu::AssociationRQ {
            protocol_version: 1,
            calling_ae_title: "RAWSCU".into(),
            called_ae_title: "DEIDGATE".into(),
            application_context_name: "1.2.840.10008.3.1.1.1".into(),
            presentation_contexts: vec![dicom_ul::pdu::PresentationContextProposed {
                id: 1,
                abstract_syntax: uids::VERIFICATION.into(),
                transfer_syntaxes: vec![uids::IMPLICIT_VR_LITTLE_ENDIAN.into()],
            }],
            user_variables: vec![dicom_ul::pdu::UserVariableItem::MaxLength(16384)],
        });
        let mut b = Vec::new();
        dicom_ul::write_pdu(&mut b, &pdu).unwrap();
        b
    };
    {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&rq[..rq.len() / 2]).unwrap();
    }
    // Garbage in the middle of an association.
    {
        let (mut a, _) = raw_association(g.port);
        let s = a.inner_stream();
        let _ = s.write_all(&[0x04, 0x00, 0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3]);
        let _ = s.write_all(&noise);
    }
    // A peer that vanishes halfway through a data set.
    let (dataset, sop) = mr_small();
    {
        let (mut a, pc) = raw_association(g.port);
        send_store(
            &mut a,
            pc,
            &store_rq(1, uids::MR_IMAGE_STORAGE, &sop),
            &dataset,
            false,
        );
    }
    // Still serving, nothing half-received left behind, nothing stored.
    let o = g.echo("ECHOSCU", "DEIDGATE");
    assert!(o.status.success(), "{}\n{}", text(&o), g.log());
    assert!(g.alive());
    poll("partial spool files to be removed", &g, || {
        dir_is_empty(&g.spool("incoming"))
    });
    assert!(g.spool_drained());
    assert!(outputs(&g).is_empty());
    let log = g.log();
    assert!(log.contains("not an association request"), "{log}");
    assert!(log.contains("association aborted"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn bad_data_sets_get_failure_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(tmp.path(), "");
    let (dataset, sop) = mr_small();
    let (mut a, pc) = raw_association(g.port);
    // Cut inside the pixel data: does not parse -> C000, quarantined.
    let cut = &dataset[..dataset.len() - 1000];
    send_store(
        &mut a,
        pc,
        &store_rq(1, uids::MR_IMAGE_STORAGE, &sop),
        cut,
        true,
    );
    assert_eq!(response_status(&mut a), 0xC000, "{}", g.log());
    // Parses, but is not the instance the command names -> A900.
    send_store(
        &mut a,
        pc,
        &store_rq(2, uids::MR_IMAGE_STORAGE, "1.2.3.4.5"),
        &dataset,
        true,
    );
    assert_eq!(response_status(&mut a), 0xA900, "{}", g.log());
    // The same association still stores a good one.
    send_store(
        &mut a,
        pc,
        &store_rq(3, uids::MR_IMAGE_STORAGE, &sop),
        &dataset,
        true,
    );
    assert_eq!(response_status(&mut a), 0x0000, "{}", g.log());
    a.release().unwrap();
    let expected = expected_names(&g, &[data_dir().join("dicom/mr/MR_small.dcm")]);
    let out = wait_for_outputs(&g, &expected);
    assert_eq!(out.len(), 1, "{out:?}");
    // Refused instances are not acknowledged data: none is quarantined, a
    // capped diagnostic copy with its reason is kept in refused/.
    let q = deidgate::pipeline::quarantine::Quarantine::new(g.data.join("quarantine"));
    assert!(q.list().unwrap().is_empty(), "{:?}", q.list());
    let reasons: Vec<String> = files_under(&g.data.join("refused"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("does not parse")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("differs from the C-STORE command")),
        "{reasons:?}"
    );

    // Real peer: storescu sends the malformed corpus (what it can read);
    // the gateway answers each and stays up.
    let dir = data_dir().join("malformed");
    let profile = scu_profile(tmp.path(), &files_under(&dir));
    let o = storescu_cmd(&g, &profile, "STORESCU", &[dir])
        .output()
        .unwrap();
    assert!(text(&o).contains("Received Store Response"), "{}", text(&o));
    assert!(g.alive(), "{}", g.log());
    assert!(g.echo("ECHOSCU", "DEIDGATE").status.success());
    poll("the spool to drain", &g, || g.spool_drained());
}

#[test]
fn association_limit_rejects_then_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start(tmp.path(), "[scp]\nmax_associations = 1\n");
    let (a, _) = raw_association(g.port);
    let o = g.echo("ECHOSCU", "DEIDGATE");
    assert!(!o.status.success(), "{}", text(&o));
    a.release().unwrap();
    let t = Instant::now();
    // The slot frees once the release is processed.
    while !g.echo("ECHOSCU", "DEIDGATE").status.success() {
        assert!(t.elapsed() < DEADLINE, "{}", g.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(g.log().contains("too many associations"), "{}", g.log());
    // The refusal is counted with the other rejections.
    let body = g.http_get("/metrics").1;
    assert!(
        body.lines()
            .any(|l| l == "deidgate_associations_rejected_total 1"),
        "{body}"
    );
}

#[test]
fn kill_9_mid_transfer_loses_no_acknowledged_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(tmp.path(), "");
    // 500 distinct instances; the gateway is killed after 200 acknowledgements.
    let series = tmp.path().join("in");
    let files = make_instances(&series, 500);
    let profile = scu_profile(tmp.path(), &files);
    let mut scu = storescu_cmd(&g, &profile, "STORESCU", &[series])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (log, err) = (log.clone(), scu.stderr.take().unwrap());
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = log.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        })
    };
    let t = Instant::now();
    loop {
        let n = stored_files(&log.lock().unwrap()).len();
        if n >= 200 || scu.try_wait().unwrap().is_some() {
            break;
        }
        assert!(t.elapsed() < DEADLINE, "storescu stalled:\n{}", g.log());
        std::thread::sleep(Duration::from_millis(2));
    }
    g.kill9();
    let _ = scu.wait();
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    let stored = stored_files(&log);
    eprintln!(
        "acknowledged before kill -9: {} of {}",
        stored.len(),
        files.len()
    );
    assert!(!stored.is_empty(), "{log}");

    g.restart();
    let expected = expected_names(&g, &stored);
    let out = wait_for_outputs(&g, &expected);
    // Instances spooled but not yet acknowledged may also arrive; never more
    // than were sent, and each once.
    assert!(
        out.len() >= expected.len() && out.len() <= files.len(),
        "{out:?}"
    );
    for p in &out {
        assert!(dcmdump(p).0, "{}", p.display());
    }
    assert!(g.alive());
}

#[test]
fn an_acknowledged_instance_that_is_quarantined_leaves_the_spool() {
    // The first instance of a fresh gateway goes straight to quarantine
    // (BurnedInAnnotation=YES, with the site's rule that keeps such objects
    // back): it is acknowledged, kept with a reason, and the spool still
    // drains (nothing waits for a destination folder).
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        tmp.path(),
        "[filter]\nquarantine_burned_in_annotation = true\n",
    );
    let input = data_dir().join("dicom/us/GREYSCALE_IMAGE.dcm");
    let profile = scu_profile(tmp.path(), std::slice::from_ref(&input));
    let out = storescu_cmd(&g, &profile, "STORESCU", &[input])
        .output()
        .unwrap();
    assert_eq!(stored_files(&text(&out)).len(), 1, "{}", text(&out));
    // The spool log and ready/ are empty once the instance is done.
    poll("the spool to drain", &g, || {
        g.spool_drained() && !quarantine_reasons(&g.data).is_empty()
    });
    let reasons = quarantine_reasons(&g.data);
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("BurnedInAnnotation=YES"));
    assert!(outputs(&g).is_empty());
}

#[test]
fn a_released_instance_is_deidentified_offline_or_live_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    // The site rule that keeps BurnedInAnnotation=YES back for review.
    let mut g = Gateway::start(
        tmp.path(),
        "[filter]\nquarantine_burned_in_annotation = true\n",
    );
    let input = data_dir().join("dicom/us/GREYSCALE_IMAGE.dcm");
    let profile = scu_profile(tmp.path(), std::slice::from_ref(&input));
    let send = |g: &Gateway| {
        let out = storescu_cmd(g, &profile, "STORESCU", std::slice::from_ref(&input))
            .output()
            .unwrap();
        assert_eq!(stored_files(&text(&out)).len(), 1, "{}", text(&out));
        poll("the spool to drain", g, || g.spool_drained());
    };
    let quarantined = |g: &Gateway| -> Vec<String> {
        let o = cli(&g.config, &["quarantine", "list"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    send(&g);
    let ids = quarantined(&g);
    assert_eq!(ids.len(), 1);

    // Offline: the gateway is down, the object waits in the spool.
    g.kill9();
    let o = cli(
        &g.config,
        &["quarantine", "release", &ids[0], "--reason", ""],
    );
    assert!(!o.status.success(), "a release needs a reason");
    let o = cli(
        &g.config,
        &[
            "quarantine",
            "release",
            &ids[0],
            "--reason",
            "pixels reviewed: no text",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(quarantined(&g).is_empty());
    g.restart();
    poll("the released instance", &g, || outputs(&g).len() == 1);
    let out = &outputs(&g)[0];
    let before = dicom_object::open_file(&input).unwrap();
    let after = dicom_object::open_file(out).unwrap();
    let name = |o: &dicom_object::DefaultDicomObject| {
        deidgate::dicom::text(o, dicom_dictionary_std::tags::PATIENT_NAME)
    };
    assert_ne!(name(&after), name(&before), "still de-identified");
    assert_eq!(
        deidgate::dicom::text(&after, dicom_dictionary_std::tags::PATIENT_IDENTITY_REMOVED),
        "YES"
    );

    // Live: released through the running gateway's admin socket.
    std::fs::remove_file(out).unwrap();
    send(&g);
    let ids = quarantined(&g);
    assert_eq!(ids.len(), 1);
    let o = cli(
        &g.config,
        &[
            "quarantine",
            "release",
            &ids[0],
            "--reason",
            "pixels reviewed again",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    poll("the live release", &g, || outputs(&g).len() == 1);
    assert!(quarantined(&g).is_empty());
    let o = cli(&g.config, &["audit", "export"]);
    let releases = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("\"quarantine.release\""))
        .count();
    assert_eq!(releases, 2);
}
