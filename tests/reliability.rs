//! Faults that must not lose or hide acknowledged data, met as a hospital
//! would meet them: a SOP Instance UID reused by another patient, a full
//! disk, and instances refused with a failure status. The gateway runs as
//! `deidgate serve` and receives from DCMTK storescu; archives are DCMTK
//! storescp.

mod common;

use common::gateway::*;
use common::peers::*;
use common::*;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// CT_small.dcm, and a copy that keeps its SOP Instance UID but belongs to
/// another patient (as a modality that reuses UIDs would send it).
fn two_patients_one_uid(dir: &Path, uid: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let src = data_dir().join("dicom/ct/CT_small.dcm");
    let mut paths = Vec::new();
    for (i, patient) in [None, Some(("OTHER-PATIENT-4711", "Other^Patient"))]
        .iter()
        .enumerate()
    {
        let mut o = dicom_object::open_file(&src).unwrap();
        let put = |o: &mut dicom_object::DefaultDicomObject, tag, vr, v: &str| {
            o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)))
        };
        put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, uid);
        o.update_meta(|m| m.media_storage_sop_instance_uid = uid.to_string());
        if let Some((id, name)) = patient {
            put(&mut o, tags::PATIENT_ID, VR::LO, id);
            put(&mut o, tags::PATIENT_NAME, VR::PN, name);
        }
        let p = dir.join(format!("{i}.dcm"));
        o.write_to_file(&p).unwrap();
        paths.push(p);
    }
    (paths[0].clone(), paths[1].clone())
}

/// (SOP Instance UID, PatientID) of each DICOM file.
fn uid_and_patient(files: &[PathBuf]) -> BTreeSet<(String, String)> {
    files
        .iter()
        .filter_map(|f| header(f))
        .map(|o| {
            let t = |tag| deidgate::dicom::text(&o, tag);
            (t(tags::SOP_INSTANCE_UID), t(tags::PATIENT_ID))
        })
        .collect()
}

fn send_one(g: &Gateway, dir: &Path, input: &Path) {
    let profile = scu_profile(dir, &[input.to_path_buf()]);
    let o = storescu_cmd(g, &profile, "MODALITY", &[input.to_path_buf()])
        .output()
        .unwrap();
    assert_eq!(stored_files(&text(&o)).len(), 1, "{}", text(&o));
}

fn quarantine_reasons(g: &Gateway) -> Vec<String> {
    deidgate::pipeline::quarantine::Quarantine::new(g.data.join("quarantine"))
        .list()
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

fn metric(g: &Gateway, name: &str) -> String {
    let (_, body) = g.http_get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
        .unwrap_or_else(|| panic!("{name} missing in:\n{body}"))
}

#[test]
fn a_second_patient_with_the_same_uid_is_quarantined_not_swapped_in() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start(tmp.path(), "");
    let (first, second) =
        two_patients_one_uid(&tmp.path().join("in"), "1.2.826.0.1.3680043.9.7777.901");
    send_one(&g, tmp.path(), &first);
    poll("the first output", &g, || outputs(&g).len() == 1);
    let before = std::fs::read(&outputs(&g)[0]).unwrap();
    send_one(&g, tmp.path(), &second);
    poll("the second to be kept back", &g, || {
        g.spool_drained() && !quarantine_reasons(&g).is_empty()
    });
    // The first patient's output is untouched; the second waits for a person.
    let out = outputs(&g);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        std::fs::read(&out[0]).unwrap(),
        before,
        "first output replaced"
    );
    let reasons = quarantine_reasons(&g);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("duplicate SOP Instance UID"),
        "{reasons:?}"
    );
    assert!(
        !reasons[0].contains("OTHER-PATIENT-4711"),
        "PHI in the reason"
    );
    assert_eq!(metric(&g, "deidgate_duplicate_uids_total"), "1");
    // A resend of the first patient's instance is no conflict.
    send_one(&g, tmp.path(), &first);
    poll("the resend", &g, || g.spool_drained());
    assert_eq!(metric(&g, "deidgate_duplicate_uids_total"), "1");
    let log = g.log();
    assert!(log.contains("duplicate SOP Instance UID"), "{log}");
    assert!(!log.contains("OTHER-PATIENT-4711") && !log.contains("Other^Patient"));
}

#[test]
fn with_new_uid_both_patients_reach_the_archive_whether_it_is_up_or_down() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port(); // the archive is down at first
    let g = Gateway::start(
        tmp.path(),
        &format!(
            "{}[filter]\nduplicate_sop_instance_uid = \"new_uid\"\n",
            dicom_destination("pacs", "STORESCP", port)
        ),
    );
    let (a1, a2) = two_patients_one_uid(&tmp.path().join("down"), "1.2.826.0.1.3680043.9.7777.902");
    send_one(&g, tmp.path(), &a1);
    send_one(&g, tmp.path(), &a2);
    let outbox = g.data.join("outbox/pacs");
    poll("both queued while the archive is down", &g, || {
        files_under(&outbox).len() == 2
    });
    let scp_dir = tmp.path().join("storescp");
    let _scp = storescp(&scp_dir, port);
    poll("both delivered", &g, || files_under(&scp_dir).len() == 2);
    // And once more with the archive up.
    let (b1, b2) = two_patients_one_uid(&tmp.path().join("up"), "1.2.826.0.1.3680043.9.7777.903");
    send_one(&g, tmp.path(), &b1);
    send_one(&g, tmp.path(), &b2);
    poll("all four delivered", &g, || {
        g.spool_drained() && files_under(&outbox).is_empty() && files_under(&scp_dir).len() >= 4
    });
    std::thread::sleep(Duration::from_secs(2));
    let received = files_under(&scp_dir);
    assert_eq!(received.len(), 4, "each exactly once: {received:?}");
    let pairs = uid_and_patient(&received);
    let uids: BTreeSet<_> = pairs.iter().map(|(u, _)| u.clone()).collect();
    let patients: BTreeSet<_> = pairs.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(uids.len(), 4, "four distinct UIDs: {pairs:?}");
    assert_eq!(patients.len(), 2, "two patients: {pairs:?}");
    assert!(quarantine_reasons(&g).is_empty());
    assert_eq!(metric(&g, "deidgate_duplicate_uids_total"), "2");
}

#[test]
fn anonymize_keeps_both_and_gives_the_same_bytes_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    two_patients_one_uid(&input, "1.2.826.0.1.3680043.9.7777.904");
    // An identical copy is no conflict: it has the first one's output.
    std::fs::copy(input.join("0.dcm"), input.join("0-copy.dcm")).unwrap();
    let config = write_config(
        tmp.path(),
        "[filter]\nduplicate_sop_instance_uid = \"new_uid\"\n",
    );
    let run = |out: &Path| {
        let o = cli(
            &config,
            &[
                "anonymize",
                input.to_str().unwrap(),
                out.to_str().unwrap(),
                "--jobs",
                "2",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        files_under(out)
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(out).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = run(&tmp.path().join("out1"));
    let second = run(&tmp.path().join("out2"));
    assert_eq!(
        first.len(),
        2,
        "both patients written: {:?}",
        first.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(first, second, "the same bytes every run");
    let paths: Vec<PathBuf> = files_under(&tmp.path().join("out1"));
    assert_eq!(uid_and_patient(&paths).len(), 2);
}

/// A tmpfs of `mb` MiB mounted for one test, unmounted when dropped; `None`
/// (with a message) when this process may not mount.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let root = unsafe { libc::geteuid() } == 0;
        let ok = root
            && std::process::Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={mb}m,mode=0700"),
                    "tmpfs",
                ])
                .arg(at)
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIP: mounting a {mb} MiB tmpfs needs root; the disk-full case was not run");
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }

    fn free(&self) -> u64 {
        deidgate::pipeline::disk::free_bytes(&self.0).unwrap()
    }

    /// Fill with a file until `leave` bytes are free (0: until ENOSPC).
    fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xA5u8; 1 << 16];
        while self.free() > leave {
            let n = (self.free() - leave).min(chunk.len() as u64) as usize;
            if f.write_all(&chunk[..n]).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The /healthz status line; `None` while nothing listens (the process
/// may be executing itself again to reopen its key store).
fn healthz(g: &Gateway) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", g.http_port())).ok()?;
    write!(s, "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf.lines().next()?.to_string())
}

/// Stores `inputs` with storescu; the files it reports stored.
fn send_many(g: &Gateway, dir: &Path, inputs: &[PathBuf]) -> (Vec<PathBuf>, String) {
    let profile = scu_profile(dir, inputs);
    let o = storescu_cmd(g, &profile, "MODALITY", inputs)
        .output()
        .unwrap();
    (stored_files(&text(&o)), text(&o))
}

/// The gateway's config with its data dir on `disk` and a disk reserve of
/// `reserve_mb`.
fn config_on(dir: &Path, disk: &Path, reserve_mb: u64) -> PathBuf {
    let config = write_config(dir, "");
    let quoted = |p: PathBuf| format!("{:?}", p.display().to_string());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&quoted(dir.join("data")), &quoted(disk.join("data")))
        .replacen(
            "[node]\n",
            &format!("[node]\ndisk_reserve_mb = {reserve_mb}\n"),
            1,
        );
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn below_the_disk_reserve_the_receiver_answers_a700_and_recovers_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), 96) else {
        return;
    };
    let config = config_on(tmp.path(), &disk.0, 24);
    let mut g = Gateway::start_configured(tmp.path(), &config);
    g.data = disk.0.join("data");
    let inputs = make_instances(&tmp.path().join("in"), 16);
    let (ok, log) = send_many(&g, tmp.path(), &inputs[..10]);
    assert_eq!(ok.len(), 10, "{log}");
    poll("ten outputs", &g, || outputs(&g).len() == 10);
    // Another program leaves 16 MiB free: below the 24 MiB reserve.
    let filler = disk.fill(16 << 20);
    let (ok, log) = send_many(&g, tmp.path(), &inputs[10..13]);
    assert!(
        ok.is_empty(),
        "nothing is acknowledged below the reserve:\n{log}"
    );
    assert!(
        log.contains("Refused: OutOfResources"),
        "A700 expected:\n{log}"
    );
    let (status, body) = g.http_get("/healthz");
    assert!(
        status.contains("503") && body.contains("disk_space"),
        "{status}\n{body}"
    );
    // Space returns: the same process takes instances again, healthy.
    std::fs::remove_file(filler).unwrap();
    let (ok, log) = send_many(&g, tmp.path(), &inputs[13..]);
    assert_eq!(ok.len(), 3, "{log}");
    poll("thirteen outputs", &g, || {
        outputs(&g).len() == 13 && g.spool_drained()
    });
    assert!(
        g.http_get("/healthz").0.contains("200"),
        "{}",
        g.http_get("/healthz").1
    );
    assert!(quarantine_reasons(&g).is_empty());
}

#[test]
fn a_disk_filled_by_another_program_holds_what_was_acknowledged_until_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), 96) else {
        return;
    };
    // The reserve is off: the worst case, the disk fills under the pipeline.
    let config = config_on(tmp.path(), &disk.0, 0);
    let mut g = Gateway::start_configured(tmp.path(), &config);
    g.data = disk.0.join("data");
    let pid = g.child.id();
    let inputs = make_instances(&tmp.path().join("in"), 15);
    let (ok, log) = send_many(&g, tmp.path(), &inputs[..5]);
    assert_eq!(ok.len(), 5, "{log}");
    poll("five outputs", &g, || {
        outputs(&g).len() == 5 && g.spool_drained()
    });
    let filler = disk.fill(0);
    // The spool log's segment was allocated beforehand: these are durable
    // and acknowledged, but nothing can be written after them.
    let (ok, log) = send_many(&g, tmp.path(), &inputs[5..]);
    let acknowledged = ok.len();
    eprintln!("acknowledged on a full disk: {acknowledged} of 10");
    assert!(acknowledged > 0, "{log}");
    poll("/healthz to fail", &g, || {
        healthz(&g).is_some_and(|s| s.contains("503"))
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        quarantine_reasons(&g).is_empty(),
        "an I/O error is no reason to quarantine"
    );
    std::fs::remove_file(filler).unwrap();
    poll("every acknowledged instance out", &g, || {
        outputs(&g).len() == 5 + acknowledged && g.spool_drained()
    });
    poll("/healthz to pass", &g, || {
        healthz(&g).is_some_and(|s| s.contains("200"))
    });
    assert!(g.alive(), "{}", g.log());
    assert_eq!(g.child.id(), pid);
    assert!(
        quarantine_reasons(&g).is_empty(),
        "{:?}",
        quarantine_reasons(&g)
    );
    let log = g.log();
    eprintln!(
        "key store reopened by re-executing: {}",
        log.contains("restarting the process to reopen it")
    );
}

#[test]
fn a_data_dir_too_small_to_start_names_its_path_and_leaves_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), 8) else {
        return;
    };
    let config = config_on(tmp.path(), &disk.0, 0);
    let log = tmp.path().join("gateway.log");
    let mut child = spawn(&config, &log);
    let status = child.wait().unwrap();
    let out = strip_ansi(&std::fs::read_to_string(&log).unwrap());
    assert!(!status.success(), "{out}");
    let data = disk.0.join("data").display().to_string();
    assert!(
        out.contains("No space left") && out.contains(&data),
        "{out}"
    );
    let temps: Vec<_> = files_under(&disk.0)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}
