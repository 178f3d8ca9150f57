//! The `deidgate` binary as an operator uses it: keys, batch anonymization
//! (parallel, rerunnable, quarantining what it cannot handle), re-identification
//! with audit.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn deidgate(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deidgate"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("USER", "test-broker")
        .output()
        .expect("run deidgate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn keys_init_is_private_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let o = deidgate(&data, &["keys", "init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mode = std::fs::metadata(data.join("secrets.toml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let before = std::fs::read(data.join("secrets.toml")).unwrap();
    let o = deidgate(&data, &["keys", "init"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("exist"), "{}", stderr(&o));
    assert_eq!(std::fs::read(data.join("secrets.toml")).unwrap(), before);
}

#[test]
fn anonymize_is_rerunnable_and_reid_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let out = tmp.path().join("out");
    let input = data_dir().join("dicom/mr_tag_tests");
    let o = deidgate(
        &data,
        &[
            "anonymize",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--jobs",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let first: Vec<_> = files_under(&out)
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    assert_eq!(first.len(), files_under(&input).len(), "{}", stderr(&o));
    // Output names are pseudonymous UIDs, never the input names.
    for (p, _) in &first {
        let rel = p.strip_prefix(&out).unwrap().to_string_lossy().to_string();
        let ok = rel.split('/').all(|s| {
            s == "unknown"
                || s.trim_end_matches(".dcm")
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.')
        });
        assert!(ok, "{rel}");
    }
    // Running again gives exactly the same files.
    let o = deidgate(
        &data,
        &["anonymize", input.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert!(o.status.success());
    let second: Vec<_> = files_under(&out)
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    assert_eq!(first, second);

    // Re-identify one patient: needs a reason, is audited, and the chain verifies.
    let obj = deidgate::dicom::parse(&first[0].1).unwrap();
    let pseudonym = deidgate::dicom::text(&obj, dicom_dictionary_std::tags::PATIENT_ID);
    let o = deidgate(&data, &["reid", "patient", &pseudonym]);
    assert!(
        !o.status.success(),
        "a lookup without --reason must be refused"
    );
    let o = deidgate(
        &data,
        &[
            "reid",
            "patient",
            &pseudonym,
            "--reason",
            "incidental finding",
            "--ticket",
            "IRB-7",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("PatientID: "), "{}", stdout(&o));
    let o = deidgate(
        &data,
        &["reid", "patient", "NOSUCHPSEUDONYM0", "--reason", "typo"],
    );
    assert!(!o.status.success());
    let o = deidgate(&data, &["audit", "verify"]);
    assert!(
        stdout(&o).contains("2 records"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = deidgate(&data, &["audit", "export"]);
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["actor"], "cli:test-broker");
    assert_eq!(lines[0]["outcome"], "revealed");
    assert_eq!(lines[0]["ticket"], "IRB-7");
    assert_eq!(lines[1]["outcome"], "not_found");
    // The audit log never holds the revealed identity.
    let original_id = stdout(&deidgate(
        &data,
        &["reid", "patient", &pseudonym, "--reason", "check"],
    ))
    .lines()
    .find_map(|l| l.strip_prefix("PatientID: ").map(str::to_string))
    .unwrap();
    assert!(!stdout(&deidgate(&data, &["audit", "export"])).contains(&original_id));
}

#[test]
fn malformed_files_are_quarantined_with_reasons_never_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let out = tmp.path().join("out");
    let input = data_dir().join("malformed");
    let o = deidgate(
        &data,
        &["anonymize", input.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let n_in = files_under(&input).len();
    let written = files_under(&out).len();
    let q = files_under(&data.join("quarantine"));
    let reasons: Vec<_> = q.iter().filter(|p| p.ends_with("reason.txt")).collect();
    eprintln!(
        "{n_in} malformed inputs: {written} written, {} quarantined",
        reasons.len()
    );
    assert_eq!(
        written + reasons.len(),
        n_in,
        "every input is accounted for"
    );
    assert!(reasons.len() >= 5, "the broken files are quarantined");
    for r in reasons {
        let t = std::fs::read_to_string(r).unwrap();
        assert!(
            t.starts_with("reason: ") && t.lines().next().unwrap().len() > 12,
            "{t}"
        );
    }
    // Operators can read a reason and purge one object, then all.
    let list = stdout(&deidgate(&data, &["quarantine", "list"]));
    let first = list
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    assert!(stdout(&deidgate(&data, &["quarantine", "show", &first])).starts_with("reason: "));
    assert!(!deidgate(&data, &["quarantine", "show", "../etc"])
        .status
        .success());
    assert!(deidgate(&data, &["quarantine", "purge", &first])
        .status
        .success());
    assert_eq!(
        stdout(&deidgate(&data, &["quarantine", "list"]))
            .lines()
            .count(),
        list.lines().count() - 1
    );
    assert!(deidgate(&data, &["quarantine", "purge", "--all"])
        .status
        .success());
    assert_eq!(stdout(&deidgate(&data, &["quarantine", "list"])), "");
    // Everything that was written is readable DICOM.
    for f in files_under(&out) {
        assert!(dcmdump(&f).0, "{}", f.display());
    }
}

/// De-identifies the mr_tag_tests folder into `out` with data dir `data`;
/// returns (pseudonymous PatientID, original PatientID) of one output.
fn populate(data: &Path, out: &Path) -> (String, String) {
    let input = data_dir().join("dicom/mr_tag_tests");
    let o = deidgate(
        data,
        &["anonymize", input.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let first = files_under(out)[0].clone();
    let obj = deidgate::dicom::parse(&std::fs::read(&first).unwrap()).unwrap();
    let pseudonym = deidgate::dicom::text(&obj, dicom_dictionary_std::tags::PATIENT_ID);
    let o = deidgate(data, &["reid", "patient", &pseudonym, "--reason", "setup"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let original = stdout(&o)
        .lines()
        .find_map(|l| l.strip_prefix("PatientID: ").map(str::to_string))
        .unwrap();
    (pseudonym, original)
}

fn reid_patient(data: &Path, pseudonym: &str) -> Output {
    deidgate(data, &["reid", "patient", pseudonym, "--reason", "check"])
}

#[test]
fn rotate_encryption_keeps_pseudonyms_and_old_key_no_longer_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let (pseudonym, original) = populate(&data, &tmp.path().join("out1"));
    let old_secrets = std::fs::read_to_string(data.join("secrets.toml")).unwrap();
    let old_id = stdout(&deidgate(&data, &["keys", "id"])).trim().to_string();

    let o = deidgate(&data, &["keys", "rotate-encryption"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("pseudonyms unchanged"),
        "{}",
        stdout(&o)
    );
    let new_id = stdout(&deidgate(&data, &["keys", "id"])).trim().to_string();
    assert_ne!(old_id, new_id);
    assert!(!data.join("secrets.toml.rotating").exists());
    let mode = std::fs::metadata(data.join("secrets.toml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // Same pseudonym, same identity, under the new key.
    let o = reid_patient(&data, &pseudonym);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("PatientID: {original}")));
    // New instances of the same patient get the same pseudonym.
    let (again, _) = populate(&data, &tmp.path().join("out2"));
    assert_eq!(again, pseudonym);
    // The old secrets file no longer opens the reverse map.
    std::fs::write(data.join("secrets.toml"), old_secrets).unwrap();
    let o = reid_patient(&data, &pseudonym);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("sealed with key id"), "{}", stderr(&o));
}

#[test]
fn backup_restores_into_a_new_data_dir_and_reveals_nothing_without_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let (pseudonym, original) = populate(&data, &tmp.path().join("out"));
    let o = deidgate(&data, &["users", "add", "rita", "--role", "reid"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let backup = tmp.path().join("keys.backup");
    let pass = tmp.path().join("pass.txt");
    std::fs::write(&pass, "a long backup passphrase\n").unwrap();
    let pass_arg = ["--passphrase-file", pass.to_str().unwrap()];

    let o = deidgate(&data, &["keys", "backup", backup.to_str().unwrap()]);
    assert!(!o.status.success(), "no passphrase given");
    let mut args = vec!["keys", "backup", backup.to_str().unwrap()];
    args.extend(pass_arg);
    let o = deidgate(&data, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&backup).unwrap();
    assert!(find(&bytes, original.as_bytes()).is_none());
    assert!(find(&bytes, pseudonym.as_bytes()).is_none());
    let o = deidgate(&data, &args);
    assert!(!o.status.success(), "refuses to overwrite a backup");

    // Restore elsewhere: same pseudonyms resolve, users and audit come along.
    let data2 = tmp.path().join("d2");
    let wrong = tmp.path().join("wrong.txt");
    std::fs::write(&wrong, "not the right passphrase").unwrap();
    let o = deidgate(
        &data2,
        &[
            "keys",
            "restore",
            backup.to_str().unwrap(),
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
    let mut args = vec!["keys", "restore", backup.to_str().unwrap()];
    args.extend(pass_arg);
    let o = deidgate(&data2, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = reid_patient(&data2, &pseudonym);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("PatientID: {original}")));
    assert!(stdout(&deidgate(&data2, &["users", "list"])).contains("rita\treid"));
    // The restored audit log holds the original's records plus the new lookup.
    let o = deidgate(&data2, &["audit", "verify"]);
    assert!(stdout(&o).contains("intact: 2 records"), "{}", stdout(&o));
    // The restored site keeps the pseudonym key but has its own encryption key.
    let s1 = std::fs::read_to_string(data.join("secrets.toml")).unwrap();
    let s2 = std::fs::read_to_string(data2.join("secrets.toml")).unwrap();
    let line = |s: &str, k: &str| s.lines().find(|l| l.starts_with(k)).unwrap().to_string();
    assert_eq!(line(&s1, "pseudonym_key"), line(&s2, "pseudonym_key"));
    assert_ne!(line(&s1, "encryption_key"), line(&s2, "encryption_key"));
}

/// Offline runs load the chest model on the first radiograph only: a folder
/// of MR never pays for it, a folder with a chest CR loads it once.
#[test]
fn anonymize_loads_the_chest_model_only_when_a_radiograph_comes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, file: &str| {
        let input = tmp.path().join(format!("in-{name}"));
        std::fs::create_dir_all(&input).unwrap();
        std::fs::copy(data_dir().join(file), input.join("x.dcm")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_deidgate"))
            .arg("--data-dir")
            .arg(tmp.path().join("d"))
            .arg("anonymize")
            .arg(&input)
            .arg(tmp.path().join(format!("out-{name}")))
            .env("RUST_LOG", "deidgate=info")
            .output()
            .expect("run deidgate");
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let mr = run("mr", "dicom/mr/MR_small.dcm");
    assert!(
        mr.contains("the model loads on the first chest radiograph"),
        "{mr}"
    );
    assert!(!mr.contains("deformation model loaded"), "{mr}");
    let cr = run("cr", "dicom/cr_dx/RG1_UNCR.dcm");
    assert_eq!(cr.matches("deformation model loaded").count(), 1, "{cr}");
    assert!(cr.contains("1 written"), "{cr}");
}
