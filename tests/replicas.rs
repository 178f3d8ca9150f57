//! Gateway replicas on a shared PostgreSQL key store, with the real engines:
//! a throw-away PostgreSQL cluster (initdb/pg_ctl, loopback, SCRAM password),
//! HAProxy as the TCP front end over two `deidgate serve` processes, DCMTK
//! storescu/storescp as the PACS and the archive.
//!
//! Each test skips (with a message) only when the PostgreSQL server binaries
//! are missing, or the tests run as root with no way to drop privileges.

mod common;

use common::gateway::{cli, poll, stored_files, text, Gateway, DEADLINE};
use common::http::request;
use common::peers::{dicom_destination, free_port, storescp, wait_port, Peer};
use common::pg::{password_file, PgCluster, PASSWORD};
use common::{files_under, tool};
use deidgate::keystore::{KeyStore, PatientRecord, PgKeyStore, Secrets, SledKeyStore};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Identifiers planted in the inputs and records: none may reach the database.
const PLANTED_NAME: &str = "PLANTEDSURNAME^GIVENNAME";
const PLANTED_MRN: &str = "PLANTED-MRN-55501";
const PLANTED_BIRTH: &str = "19370412";
const PLANTED_UID: &str = "1.2.826.0.1.3680043.9.55501.77.1";
const PLANTED_ACCESSION: &str = "PLANTEDACC0042";

fn pg_store(pg: &PgCluster, secrets: &Secrets) -> PgKeyStore {
    PgKeyStore::connect_url(&pg.url(), Some(PASSWORD.into()), 4, secrets).expect("connect")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn planted_patient() -> PatientRecord {
    PatientRecord {
        patient_id: PLANTED_MRN.into(),
        issuer: Some("PLANTED-ISSUER".into()),
        name: Some(PLANTED_NAME.into()),
        birth_date: Some(PLANTED_BIRTH.into()),
    }
}

/// `POST /api/reid/patient` on `port` for `pseudonym`, with `reason`.
fn reid_patient(port: u16, token: &str, pseudonym: &str, reason: &str) -> common::http::Response {
    request(
        port,
        "POST",
        "/api/reid/patient",
        Some(token),
        Some(&json!({"pseudonym": pseudonym, "reason": reason})),
    )
}

#[test]
fn postgres_store_holds_only_sealed_values_in_files_and_dump() {
    let Some(pg) = PgCluster::start("sealed") else {
        return;
    };
    let secrets = Secrets::generate();
    let store = pg_store(&pg, &secrets);
    let pixels: Vec<u8> = PLANTED_NAME.as_bytes().repeat(200);
    for i in 0..100 {
        store
            .put_patient(&format!("PSEUDO{i}"), &planted_patient())
            .unwrap();
        store.put_uid(&format!("2.25.{i}"), PLANTED_UID).unwrap();
        store
            .put_accession(&format!("ACCP{i}"), PLANTED_ACCESSION)
            .unwrap();
    }
    store.put_pixels("2.25.7", &pixels).unwrap();
    // Insert-only: a second writer does not replace the first record.
    let other = pg_store(&pg, &secrets);
    other.put_uid("2.25.1", "9.9.9").unwrap();
    assert_eq!(
        other.get_uid("2.25.1").unwrap().as_deref(),
        Some(PLANTED_UID)
    );
    assert_eq!(
        store.get_patient("PSEUDO5").unwrap(),
        Some(planted_patient())
    );
    assert_eq!(
        store.get_accession("ACCP5").unwrap().as_deref(),
        Some(PLANTED_ACCESSION)
    );
    assert_eq!(store.get_pixels("2.25.7").unwrap(), Some(pixels.clone()));
    assert_eq!(store.get_uid("2.25.999").unwrap(), None);
    store
        .audit_append(
            "api:rita",
            "reveal_patient",
            "PSEUDO5",
            "follow-up",
            None,
            "found",
        )
        .unwrap();
    assert_eq!(store.audit_verify(), Ok(1));

    // Another secrets file cannot open the tables: refused with both key ids.
    let wrong = Secrets::generate();
    let e = format!(
        "{:#}",
        PgKeyStore::connect_url(&pg.url(), Some(PASSWORD.into()), 1, &wrong).unwrap_err()
    );
    assert!(
        e.contains(&secrets.key_id) && e.contains(&wrong.key_id),
        "{e}"
    );

    // A record moved under another pseudonym does not open.
    pg.psql("UPDATE patients SET sealed = (SELECT sealed FROM patients WHERE key = 'PSEUDO1') WHERE key = 'PSEUDO2'");
    let fresh = pg_store(&pg, &secrets);
    let e = format!("{:#}", fresh.get_patient("PSEUDO2").unwrap_err());
    assert!(e.contains("failed authentication"), "{e}");

    // Everything on disk: tables and WAL, after a checkpoint.
    pg.psql("CHECKPOINT");
    let sealed_hex = pg.psql("SELECT encode(sealed, 'hex') FROM uids WHERE key = '2.25.3'");
    let sealed = hex::decode(sealed_hex.trim()).unwrap();
    let planted = [
        PLANTED_NAME,
        PLANTED_MRN,
        PLANTED_BIRTH,
        PLANTED_UID,
        PLANTED_ACCESSION,
        "PLANTED-ISSUER",
    ];
    let mut saw_record = false;
    let files = pg.files();
    assert!(!files.is_empty());
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        saw_record |= contains(&bytes, &sealed);
        for p in planted {
            assert!(
                !contains(&bytes, p.as_bytes()),
                "a planted identifier is in {}",
                f.display()
            );
        }
    }
    assert!(
        saw_record,
        "the sealed records were not found in the server's files at all"
    );
    let dump = pg.dump();
    assert!(
        contains(&dump, sealed_hex.trim().as_bytes()),
        "the dump lacks the records"
    );
    for p in planted {
        assert!(
            !contains(&dump, p.as_bytes()),
            "a planted identifier is in pg_dump"
        );
    }
}

/// Child side of the two-process audit test: does nothing unless the
/// parent test started this binary with the environment below.
#[test]
fn audit_appender_child() {
    let (Ok(url), Ok(secrets), Ok(tag)) = (
        std::env::var("DEIDGATE_TEST_PG_URL"),
        std::env::var("DEIDGATE_TEST_SECRETS"),
        std::env::var("DEIDGATE_TEST_TAG"),
    ) else {
        return;
    };
    let n: usize = std::env::var("DEIDGATE_TEST_APPENDS")
        .unwrap()
        .parse()
        .unwrap();
    let secrets = Secrets::load(Path::new(&secrets)).unwrap();
    let store = Arc::new(
        PgKeyStore::connect_url(
            &url,
            std::env::var("DEIDGATE_PG_PASSWORD").ok(),
            8,
            &secrets,
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            let tag = tag.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    store
                        .audit_append(
                            &format!("{tag}-t{t}"),
                            "test.append",
                            &format!("{tag}-{t}-{i}"),
                            "",
                            None,
                            "ok",
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn two_processes_of_eight_threads_append_one_chain() {
    let Some(pg) = PgCluster::start("audit") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let secrets_path = tmp.path().join("secrets.toml");
    let secrets = Secrets::init(&secrets_path).unwrap();
    let store = pg_store(&pg, &secrets); // creates the schema once
    const N: usize = 500;
    let children: Vec<_> = ["p0", "p1"]
        .iter()
        .map(|tag| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "audit_appender_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("DEIDGATE_TEST_PG_URL", pg.url())
                .env("DEIDGATE_PG_PASSWORD", PASSWORD)
                .env("DEIDGATE_TEST_SECRETS", &secrets_path)
                .env("DEIDGATE_TEST_TAG", tag)
                .env("DEIDGATE_TEST_APPENDS", N.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "appender failed: {}", text(&out));
    }
    // One chain: verify walks seq 1..=8000 with every link and the head.
    assert_eq!(store.audit_verify(), Ok(2 * 8 * N));
    // No gap, no fork, nothing twice: every append is there exactly once.
    let subjects = pg.psql(
        "SELECT convert_from(body, 'UTF8')::json->>'subject' FROM audit_records ORDER BY seq",
    );
    let mut seen = BTreeSet::new();
    for s in subjects.lines() {
        assert!(seen.insert(s.to_string()), "{s} appended twice");
    }
    assert_eq!(seen.len(), 2 * 8 * N);
    // Both processes interleaved on the one chain.
    let first_p1 = subjects.lines().position(|s| s.starts_with("p1-")).unwrap();
    let first_p0 = subjects.lines().position(|s| s.starts_with("p0-")).unwrap();
    assert!(first_p0 < 2 * 8 * N && first_p1 < 2 * 8 * N);
    // Tampering is still detected on the shared chain.
    pg.psql("DELETE FROM audit_records WHERE seq = 17");
    assert!(store.audit_verify().is_err());
}

#[test]
fn keys_migrate_copies_a_sled_store_and_verifies_it() {
    let Some(pg) = PgCluster::start("migrate") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pw = password_file(tmp.path());
    let config = common::gateway::write_config(
        tmp.path(),
        &format!(
            "[keystore]\nurl = \"{}\"\npassword_file = {:?}\n[[destination]]\nname = \"out\"\ntype = \"folder\"\n",
            pg.url(),
            pw.display().to_string()
        ),
    );
    let o = cli(&config, &["keys", "init"]);
    assert!(o.status.success(), "{}", text(&o));
    let data = tmp.path().join("data");
    let secrets = Secrets::load(&data.join("secrets.toml")).unwrap();
    {
        let sled = SledKeyStore::open(&data.join("keystore"), &secrets).unwrap();
        for i in 0..50 {
            sled.put_patient(&format!("PSEUDO{i}"), &planted_patient())
                .unwrap();
            sled.put_uid(&format!("2.25.{i}"), &format!("1.2.3.{i}"))
                .unwrap();
        }
        sled.put_accession("ACCP", PLANTED_ACCESSION).unwrap();
        sled.put_pixels("2.25.1", b"original pixels").unwrap();
        for i in 0..7 {
            sled.audit()
                .append(
                    "cli:root",
                    "reveal_uid",
                    &format!("2.25.{i}"),
                    "qa",
                    None,
                    "found",
                )
                .unwrap();
        }
        sled.flush().unwrap();
    }
    let o = cli(&config, &["keys", "migrate", "--to", "postgres"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("patients: copied 50, 50 in the database"),
        "{out}"
    );
    assert!(
        out.contains("audit: copied 7 records; the database chain verifies with 7 records"),
        "{out}"
    );
    // A rerun is safe: nothing new, the chain is recognised as the same.
    let o = cli(&config, &["keys", "migrate", "--to", "postgres"]);
    assert!(o.status.success(), "{}", text(&o));
    let store = pg_store(&pg, &secrets);
    assert_eq!(
        store.get_patient("PSEUDO9").unwrap(),
        Some(planted_patient())
    );
    assert_eq!(store.get_uid("2.25.9").unwrap().as_deref(), Some("1.2.3.9"));
    assert_eq!(
        store.get_pixels("2.25.1").unwrap().as_deref(),
        Some(&b"original pixels"[..])
    );
    assert_eq!(store.audit_verify(), Ok(7));
    // With the backend switched, `audit verify` walks the shared chain.
    let mut cfg = std::fs::read_to_string(&config).unwrap();
    cfg = cfg.replace("[keystore]\n", "[keystore]\nbackend = \"postgres\"\n");
    std::fs::write(&config, cfg).unwrap();
    let o = cli(&config, &["audit", "verify"]);
    assert!(
        o.status.success() && text(&o).contains("intact: 7 records"),
        "{}",
        text(&o)
    );
}

// ------------------------------------------------------------ replicas

#[test]
fn a_replica_starts_and_acknowledges_while_the_database_is_down() {
    let Some(pg) = PgCluster::start("late") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pw = password_file(tmp.path());
    let config = common::gateway::write_config(
        tmp.path(),
        &format!(
            "[keystore]\nbackend = \"postgres\"\nurl = \"{}\"\npassword_file = {:?}\n\
             [[destination]]\nname = \"out\"\ntype = \"folder\"\n",
            pg.url(),
            pw.display().to_string()
        ),
    );
    let o = cli(&config, &["keys", "init"]);
    assert!(o.status.success(), "{}", text(&o));
    pg.stop_server();
    let g = Gateway::start_configured(tmp.path(), &config);
    let inputs = patient_instances(&tmp.path().join("in"), "ECHO", 4);
    let (ok, log) = storescu(g.port, tmp.path(), &inputs);
    assert_eq!(ok.len(), 4, "{log}");
    poll("the key_store fault", &g, || {
        let (status, body) = healthz(&g);
        status.contains("503") && body.contains("key_store")
    });
    assert!(
        common::gateway::outputs(&g).is_empty(),
        "emitted without the database"
    );
    pg.start_server();
    poll("the held instances", &g, || {
        common::gateway::outputs(&g).len() == 4
    });
    let secrets = Secrets::load(&g.data.join("secrets.toml")).unwrap();
    let store = pg_store(&pg, &secrets);
    for f in common::gateway::outputs(&g) {
        assert!(store.get_uid(&sop_uid(&f).unwrap()).unwrap().is_some());
        assert!(store.get_patient(&patient_id(&f)).unwrap().is_some());
    }
    poll("healthz after the database is back", &g, || {
        healthz(&g).0.contains("200")
    });
}

/// `n` instances of one patient: MR_small with the patient's identifiers.
fn patient_instances(dir: &Path, patient: &str, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let src = common::data_dir().join("dicom/mr/MR_small.dcm");
    (0..n)
        .map(|i| {
            let mut o = dicom_object::open_file(&src).unwrap();
            let uid = format!(
                "1.2.826.0.1.3680043.9.55501.{}.{}",
                patient.len() * 1000 + patient.bytes().map(u32::from).sum::<u32>() as usize,
                i + 1
            );
            let mut put =
                |tag, vr, v: &str| o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
            put(tags::SOP_INSTANCE_UID, VR::UI, &uid);
            put(tags::PATIENT_ID, VR::LO, &format!("{patient}-MRN"));
            put(tags::PATIENT_NAME, VR::PN, &format!("{patient}^PLANTED"));
            put(tags::PATIENT_BIRTH_DATE, VR::DA, PLANTED_BIRTH);
            o.update_meta(|m| m.media_storage_sop_instance_uid = uid.clone());
            let p = dir.join(format!("{patient}-{i:03}.dcm"));
            o.write_to_file(&p).unwrap();
            p
        })
        .collect()
}

fn sop_uid(f: &Path) -> Option<String> {
    let o = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(f)
        .ok()?;
    Some(deidgate::dicom::text(&o, tags::SOP_INSTANCE_UID))
}

fn patient_id(f: &Path) -> String {
    let o = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(f)
        .unwrap();
    deidgate::dicom::text(&o, tags::PATIENT_ID)
}

/// HAProxy in TCP mode over the replicas, killed when dropped.
fn haproxy(dir: &Path, port: u16, balance: &str, backends: &[u16]) -> Peer {
    let mut cfg = format!(
        "global\n    maxconn 200\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\n\
         frontend dicom\n    bind 127.0.0.1:{port}\n    default_backend gateways\n\
         backend gateways\n    balance {balance}\n"
    );
    for (i, p) in backends.iter().enumerate() {
        cfg += &format!("    server r{i} 127.0.0.1:{p} check inter 300 fall 1 rise 1\n");
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new(tool("haproxy"))
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    wait_port(port);
    Peer(child)
}

/// storescu to `port`, one association; the files acknowledged.
fn storescu(port: u16, dir: &Path, inputs: &[PathBuf]) -> (Vec<PathBuf>, String) {
    let profile = common::gateway::scu_profile(dir, inputs);
    let out = Command::new(tool("storescu"))
        .args(["-v", "-aet", "MODALITY", "-aec", "DEIDGATE", "-nh", "-xf"])
        .arg(&profile)
        .arg("Test")
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args(inputs)
        .output()
        .unwrap();
    let log = text(&out);
    (stored_files(&log), log)
}

struct Replicas {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    pg: PgCluster,
    a: Gateway,
    b: Gateway,
    scp_dir: PathBuf,
    _scp: Peer,
    front: u16,
    _haproxy: Peer,
    secrets: Secrets,
}

impl Replicas {
    fn start(pg: PgCluster) -> Replicas {
        Replicas::start_with(pg, "")
    }

    /// Two replicas whose configs add `extra` (TOML tables) before the
    /// destinations.
    fn start_with(pg: PgCluster, extra: &str) -> Replicas {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let scp_port = free_port();
        let scp_dir = dir.join("storescp");
        let scp = storescp(&scp_dir, scp_port);
        let shared = dir.join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        let pw = password_file(&shared);
        let secrets_path = shared.join("secrets.toml");
        // One config per replica; only the data directory and ports differ.
        let replica_toml = format!(
            "[secrets]\npath = {:?}\n[keystore]\nbackend = \"postgres\"\nurl = \"{}\"\npassword_file = {:?}\n{extra}{}",
            secrets_path.display().to_string(),
            pg.url(),
            pw.display().to_string(),
            dicom_destination("archive", "STORESCP", scp_port)
        );
        let mut configs = Vec::new();
        for name in ["a", "b"] {
            let d = dir.join(name);
            std::fs::create_dir_all(&d).unwrap();
            configs.push((d.clone(), common::gateway::write_config(&d, &replica_toml)));
        }
        let o = cli(&configs[0].1, &["keys", "init"]);
        assert!(o.status.success(), "{}", text(&o));
        let secrets = Secrets::load(&secrets_path).unwrap();
        let a = Gateway::start_configured(&configs[0].0, &configs[0].1);
        let b = Gateway::start_configured(&configs[1].0, &configs[1].1);
        let front = free_port();
        let hap = haproxy(&dir, front, "roundrobin", &[a.port, b.port]);
        Replicas {
            _tmp: tmp,
            dir,
            pg,
            a,
            b,
            scp_dir,
            _scp: scp,
            front,
            _haproxy: hap,
            secrets,
        }
    }

    fn expected(&self, inputs: &[PathBuf]) -> BTreeSet<String> {
        let p = deidgate::deid::pseudonym::Pseudonymizer::new(self.secrets.pseudonym_key, "");
        inputs.iter().map(|f| p.uid(&sop_uid(f).unwrap())).collect()
    }

    /// SOP UID -> how many times storescp received it.
    fn received(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for f in files_under(&self.scp_dir) {
            if let Some(uid) = sop_uid(&f) {
                *m.entry(uid).or_insert(0) += 1;
            }
        }
        m
    }

    fn wait_received(&self, expected: &BTreeSet<String>) -> BTreeMap<String, usize> {
        let t = Instant::now();
        loop {
            let got = self.received();
            if expected.iter().all(|u| got.contains_key(u)) {
                return got;
            }
            assert!(
                t.elapsed() < DEADLINE,
                "not every acknowledged instance reached storescp:\nA:\n{}\nB:\n{}",
                self.a.log(),
                self.b.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Output files of one replica's folder destination.
    fn outputs(g: &Gateway) -> Vec<PathBuf> {
        common::gateway::outputs(g)
    }
}

fn healthz(g: &Gateway) -> (String, String) {
    g.http_get("/healthz")
}

#[test]
fn two_replicas_behind_haproxy_share_one_key_store() {
    let Some(pg) = PgCluster::start("replicas") else {
        return;
    };
    let r = Replicas::start(pg);
    let inputs = r.dir.join("in");

    // 1. One patient, one association per instance: round robin spreads it
    //    over both replicas, which give it one pseudonym.
    let p1 = patient_instances(&inputs, "ALPHA", 6);
    let mut acked = Vec::new();
    for f in &p1 {
        let (ok, log) = storescu(r.front, &r.dir, std::slice::from_ref(f));
        assert_eq!(ok.len(), 1, "{log}");
        acked.extend(ok);
    }
    let expected = r.expected(&acked);
    let got = r.wait_received(&expected);
    for u in &expected {
        assert_eq!(got[u], 1, "{u} reached storescp {} times", got[u]);
    }
    let (out_a, out_b) = (Replicas::outputs(&r.a), Replicas::outputs(&r.b));
    assert!(
        !out_a.is_empty() && !out_b.is_empty(),
        "both replicas should have worked: {} / {}",
        out_a.len(),
        out_b.len()
    );
    let pseudonyms: BTreeSet<String> = out_a.iter().chain(&out_b).map(|f| patient_id(f)).collect();
    assert_eq!(
        pseudonyms.len(),
        1,
        "one patient, one pseudonym: {pseudonyms:?}"
    );
    let alpha = pseudonyms.into_iter().next().unwrap();

    // 2. A patient only replica A saw is re-identified on replica B.
    let p2 = patient_instances(&inputs, "BRAVO", 3);
    let (ok, log) = storescu(r.a.port, &r.dir, &p2);
    assert_eq!(ok.len(), 3, "{log}");
    let bravo_uids = r.expected(&p2);
    r.wait_received(&bravo_uids);
    let bravo = Replicas::outputs(&r.a)
        .iter()
        .find(|f| bravo_uids.contains(&sop_uid(f).unwrap()))
        .map(|f| patient_id(f))
        .expect("A wrote BRAVO");
    assert!(Replicas::outputs(&r.b)
        .iter()
        .all(|f| !bravo_uids.contains(&sop_uid(f).unwrap())));
    // Users are shared: both are created with replica A's config, and
    // rita's token works on B.
    let tok_b = common::gateway::add_user(&r.a.config, "rita", &["reid", "auditor"]);
    let tok_a = common::gateway::add_user(&r.a.config, "ada", &["reid"]);
    let why = "incidental finding follow-up";
    let res = reid_patient(r.b.http_port(), &tok_b, &bravo, why);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.json()["revealed"]["patient_id"],
        "BRAVO-MRN",
        "{}",
        res.body
    );
    let res = reid_patient(r.a.http_port(), &tok_a, &alpha, why);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.json()["revealed"]["patient_id"],
        "ALPHA-MRN",
        "{}",
        res.body
    );
    // One audit chain, with the records of both replicas, verified on B.
    let res = request(
        r.b.http_port(),
        "GET",
        "/api/audit?limit=1000",
        Some(&tok_b),
        None,
    );
    assert_eq!(res.status, 200, "{}", res.body);
    let audit = res.json();
    assert_eq!(audit["chain"]["intact"], true, "{}", res.body);
    let actors: BTreeSet<String> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["actor"].as_str().unwrap().to_string())
        .collect();
    assert!(
        actors.contains("api:rita") && actors.contains("api:ada"),
        "{actors:?}"
    );
    // A revocation on one replica holds on the other.
    let o = cli(&r.b.config, &["users", "revoke", "ada"]);
    assert!(o.status.success(), "{}", text(&o));
    let res = reid_patient(r.a.http_port(), &tok_a, &alpha, why);
    assert_eq!(res.status, 401, "{}", res.body);

    // 3. PostgreSQL down for ~10 s mid-stream: acknowledged, held, healthz
    //    says why, nothing emitted; everything drains after the restart.
    let store = pg_store(&r.pg, &r.secrets);
    r.pg.stop_server();
    let p3 = patient_instances(&inputs, "CHARLIE", 8);
    let (ok, log) = storescu(r.a.port, &r.dir, &p3);
    assert_eq!(ok.len(), 8, "acknowledged while the spool has room: {log}");
    let charlie = r.expected(&p3);
    poll("the key_store fault on /healthz", &r.a, || {
        let (status, body) = healthz(&r.a);
        status.contains("503") && body.contains("key_store")
    });
    std::thread::sleep(Duration::from_secs(10));
    let during = r.received();
    assert!(
        charlie.iter().all(|u| !during.contains_key(u)),
        "emitted while the key store was down"
    );
    assert!(Replicas::outputs(&r.a)
        .iter()
        .all(|f| !charlie.contains(&sop_uid(f).unwrap())));
    r.pg.start_server();
    r.wait_received(&charlie);
    poll("healthz after the database is back", &r.a, || {
        healthz(&r.a).0.contains("200")
    });

    // 4. kill -9 of the replica receiving a stream, then restart it:
    //    nothing acknowledged is lost.
    let p4 = patient_instances(&inputs, "DELTA", 120);
    let before = (Replicas::outputs(&r.a).len(), Replicas::outputs(&r.b).len());
    let profile = common::gateway::scu_profile(&r.dir, &p4);
    let scu = Command::new(tool("storescu"))
        .args(["-v", "-aet", "MODALITY", "-aec", "DEIDGATE", "-nh", "-xf"])
        .arg(&profile)
        .arg("Test")
        .arg("127.0.0.1")
        .arg(r.front.to_string())
        .args(&p4)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = r;
    let t = Instant::now();
    // Mid-stream: once the receiving replica has written a few instances.
    let victim_is_a = loop {
        if Replicas::outputs(&r.a).len() > before.0 + 10 {
            break true;
        }
        if Replicas::outputs(&r.b).len() > before.1 + 10 {
            break false;
        }
        assert!(t.elapsed() < DEADLINE, "the stream never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    {
        let victim = if victim_is_a { &mut r.a } else { &mut r.b };
        victim.kill9();
    }
    let log = text(&scu.wait_with_output().unwrap());
    let acked = stored_files(&log);
    assert!(!acked.is_empty());
    {
        let victim = if victim_is_a { &mut r.a } else { &mut r.b };
        victim.restart();
    }
    let delta = r.expected(&acked);
    let got = r.wait_received(&delta);
    // At least once: an instance forwarded just before the kill, but not yet
    // marked sent, is sent again (same UID, same content) after the restart.
    let twice: Vec<_> = delta.iter().filter(|u| got[*u] > 1).collect();
    assert!(
        acked.len() < p4.len(),
        "the kill came after the stream ended"
    );
    eprintln!(
        "kill -9 mid-stream: {} of {} acknowledged, all delivered; {} delivered again after the restart",
        acked.len(),
        p4.len(),
        twice.len()
    );

    // Every instance emitted by either replica has its reverse-map record.
    for (uid, _) in r.received() {
        assert!(
            store.get_uid(&uid).unwrap().is_some(),
            "{uid} emitted without its record"
        );
    }
    for f in files_under(&r.scp_dir) {
        let pid = patient_id(&f);
        assert!(
            store.get_patient(&pid).unwrap().is_some(),
            "patient {pid} emitted without its record"
        );
    }
    assert!(store.audit_verify().unwrap() >= 2);
}

// ------------------------------------------------- head MR series, split

/// Quarantine reasons of one replica.
fn quarantine_reasons(g: &Gateway) -> Vec<String> {
    common::quarantine_reasons(&g.data)
}

fn head_series(name: &str) -> Vec<PathBuf> {
    let mut v = files_under(&common::data_dir().join("mri/decubitus_dicom").join(name));
    v.sort();
    v
}

#[test]
fn a_head_series_split_across_replicas_is_quarantined_and_affinity_forwards_it() {
    let Some(pg) = PgCluster::start("split") else {
        return;
    };
    // quiet_secs: the first half waits on A while the second half goes to B.
    let r = Replicas::start_with(pg, "[mri]\nmodel = \"box\"\nquiet_secs = 10\n");

    // 1. No affinity: the halves of one series reach different replicas.
    let split = head_series("HFS");
    let (first, second) = split.split_at(split.len() / 2);
    let (ok, log) = storescu(r.a.port, &r.dir, first);
    assert_eq!(ok.len(), first.len(), "{log}");
    let (ok, log) = storescu(r.b.port, &r.dir, second);
    assert_eq!(ok.len(), second.len(), "{log}");
    // B quarantines what it receives at once; A when its part is complete.
    poll("both parts in quarantine", &r.a, || {
        quarantine_reasons(&r.a).len() == first.len()
            && quarantine_reasons(&r.b).len() == second.len()
    });
    for (g, other) in [(&r.a, &r.b), (&r.b, &r.a)] {
        for reason in quarantine_reasons(g) {
            assert!(
                reason.contains("head MR series: arrived split across replicas")
                    && reason.contains("source affinity"),
                "{reason}"
            );
            // Names the other replica: its port is part of its derived name.
            assert!(reason.contains(&format!(":{}:", other.port)), "{reason}");
        }
        assert!(common::gateway::dir_is_empty(&g.data.join("series/open")));
        assert!(common::gateway::dir_is_empty(
            &g.data.join("series/claimed")
        ));
    }
    // The claims table holds no UID: only keyed hashes and replica names.
    let keys = r.pg.psql("SELECT key, split FROM series_claims");
    assert!(keys.contains("|t"), "{keys}");
    for f in &split {
        let o = dicom_object::OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(f)
            .unwrap();
        let series = deidgate::dicom::text(&o, tags::SERIES_INSTANCE_UID);
        let p = deidgate::deid::pseudonym::Pseudonymizer::new(r.secrets.pseudonym_key, "");
        assert!(!keys.contains(&series) && !keys.contains(&p.uid(&series)));
    }

    // 2. With source affinity (HAProxy `balance source`), the whole series
    //    reaches one replica and is forwarded.
    let whole = head_series("HFP");
    let front = free_port();
    std::fs::create_dir_all(r.dir.join("affinity")).unwrap();
    let _affinity = haproxy(
        &r.dir.join("affinity"),
        front,
        "source",
        &[r.a.port, r.b.port],
    );
    let (ok, log) = storescu(front, &r.dir, &whole);
    assert_eq!(ok.len(), whole.len(), "{log}");
    let expected = r.expected(&whole);
    let got = r.wait_received(&expected);
    for u in &expected {
        assert_eq!(got[u], 1, "{u} reached storescp {} times", got[u]);
    }
    // Nothing of the split series was forwarded, nothing more quarantined.
    let split_uids = r.expected(&split);
    assert!(
        got.keys().all(|u| !split_uids.contains(u)),
        "part of the split series reached storescp"
    );
    assert_eq!(
        quarantine_reasons(&r.a).len() + quarantine_reasons(&r.b).len(),
        split.len()
    );
}

// --------------------------------------------- reverse-map write batches

#[test]
fn a_worker_batch_reaches_the_database_with_its_flush() {
    let Some(pg) = PgCluster::start("batch") else {
        return;
    };
    let secrets = Secrets::generate();
    let store = Arc::new(pg_store(&pg, &secrets));
    let count =
        |pg: &PgCluster| -> usize { pg.psql("SELECT count(*) FROM uids").trim().parse().unwrap() };
    const N: usize = 2000;
    const SETTLE: usize = 32;
    // One statement per record, as every thread but a worker writes.
    let t = Instant::now();
    for i in 0..N {
        store.put_uid(&format!("2.25.1{i}"), PLANTED_UID).unwrap();
    }
    let single = t.elapsed();
    assert_eq!(count(&pg), N);
    // A worker: nothing reaches the database before its flush; it reads its
    // own pending records; a flush writes the whole batch.
    let s = Arc::clone(&store);
    let batched = std::thread::spawn(move || {
        s.defer_writes_on_this_thread();
        s.put_uid("2.25.900", PLANTED_UID).unwrap();
        s.put_patient("PSEUDOB", &planted_patient()).unwrap();
        assert_eq!(s.get_uid("2.25.900").unwrap().as_deref(), Some(PLANTED_UID));
        let t = Instant::now();
        for i in 0..N {
            s.put_uid(&format!("2.25.2{i}"), PLANTED_UID).unwrap();
            if i % SETTLE == SETTLE - 1 {
                s.flush().unwrap();
            }
        }
        s.flush().unwrap();
        t.elapsed()
    });
    let elapsed = batched.join().unwrap();
    assert_eq!(count(&pg), 2 * N + 1);
    assert_eq!(
        store.get_patient("PSEUDOB").unwrap(),
        Some(planted_patient())
    );
    // Pending records of a worker are not in the database before its flush.
    let s = Arc::clone(&store);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        s.defer_writes_on_this_thread();
        s.put_uid("2.25.901", PLANTED_UID).unwrap();
        done_tx.send(()).unwrap();
        rx.recv().unwrap();
        s.flush().unwrap();
    });
    done_rx.recv().unwrap();
    assert_eq!(
        store.get_uid("2.25.901").unwrap(),
        None,
        "written before the flush"
    );
    tx.send(()).unwrap();
    worker.join().unwrap();
    assert!(store.get_uid("2.25.901").unwrap().is_some());
    eprintln!(
        "reverse-map writes: {:.0} us per record one statement each, {:.0} us per record in batches of {SETTLE}",
        single.as_micros() as f64 / N as f64,
        elapsed.as_micros() as f64 / N as f64
    );
}
