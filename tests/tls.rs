//! DICOM TLS with real peers: DCMTK storescu/storescp built with OpenSSL,
//! against the gateway's TLS listener and its TLS forwarder. Every
//! certificate is made here with the openssl command line: a test CA, a
//! server certificate for localhost/127.0.0.1, a client certificate, and a
//! second, untrusted CA with its own client certificate.

mod common;

use common::gateway::*;
use common::peers::*;
use common::*;
use dicom_dictionary_std::tags;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The test PKI, under one folder.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
}

/// A self-signed CA `name`.crt / `name`.key.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=deidgate test {name}"),
        ],
    );
}

/// A leaf `name`.crt / `name`.key signed by `ca`, for localhost and
/// 127.0.0.1, usable as server and as client certificate.
fn make_leaf(dir: &Path, name: &str, ca: &str) {
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

fn make_pki(root: &Path) -> Pki {
    let dir = root.join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    make_ca(&dir, "ca");
    make_leaf(&dir, "server", "ca");
    make_leaf(&dir, "client", "ca");
    make_ca(&dir, "rogue-ca");
    make_leaf(&dir, "rogue", "rogue-ca");
    Pki { dir }
}

/// storescu to 127.0.0.1:`port` with `tls` options (empty: plain TCP).
fn storescu(dir: &Path, port: u16, tls: &[String], inputs: &[PathBuf]) -> Output {
    let profile = scu_profile(dir, inputs);
    Command::new(tool("storescu"))
        .args([
            "-v", "-aet", "MODALITY", "-aec", "DEIDGATE", "+sd", "+r", "-nh", "-xf",
        ])
        .arg(&profile)
        .arg("Test")
        .args(tls)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args(inputs)
        .output()
        .unwrap()
}

fn tls_args(pki: &Pki, client: Option<&str>) -> Vec<String> {
    let mut a = Vec::new();
    match client {
        Some(c) => a.extend([
            "+tls".to_string(),
            pki.path(&format!("{c}.key")),
            pki.path(&format!("{c}.crt")),
        ]),
        None => a.push("+tla".to_string()),
    }
    a.extend(["+cf".to_string(), pki.path("ca.crt")]);
    a
}

fn receiver_config(pki: &Pki, tls_port: u16) -> String {
    format!(
        "[scp]\ntls_cert = {:?}\ntls_key = {:?}\ntls_client_ca = {:?}\ntls_port = {tls_port}\n",
        pki.path("server.crt"),
        pki.path("server.key"),
        pki.path("ca.crt"),
    )
}

#[test]
fn tls_receiver_accepts_trusted_clients_only() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    let tls_port = free_port();
    let g = Gateway::start(tmp.path(), &receiver_config(&pki, tls_port));
    wait_port(tls_port);
    let mut inputs = make_instances(&tmp.path().join("in"), 5);
    // The last one (a distinct SOP instance) is for the refused attempts.
    let more = vec![inputs.pop().unwrap()];

    // A client certificate signed by tls_client_ca: every instance stored,
    // and de-identified in out/.
    let o = storescu(
        tmp.path(),
        tls_port,
        &tls_args(&pki, Some("client")),
        &inputs,
    );
    assert_eq!(stored_files(&text(&o)).len(), inputs.len(), "{}", text(&o));
    let out = wait_for_outputs(&g, &expected_names(&g, &inputs));
    assert_eq!(out.len(), inputs.len());
    let originals: BTreeSet<String> = inputs
        .iter()
        .map(|f| deidgate::dicom::text(&header(f).unwrap(), tags::SOP_INSTANCE_UID))
        .collect();
    let patient_id = deidgate::dicom::text(&header(&inputs[0]).unwrap(), tags::PATIENT_ID);
    for f in &out {
        let h = header(f).unwrap();
        assert!(!originals.contains(&deidgate::dicom::text(&h, tags::SOP_INSTANCE_UID)));
        assert_ne!(deidgate::dicom::text(&h, tags::PATIENT_ID), patient_id);
    }
    let log = g.log();
    assert!(log.contains("listening for DICOM TLS"), "{log}");

    // No client certificate, an untrusted one, plain TCP on the TLS port:
    // refused, nothing stored.
    for (what, args) in [
        ("no client certificate", tls_args(&pki, None)),
        (
            "an untrusted client certificate",
            tls_args(&pki, Some("rogue")),
        ),
        ("plain TCP on the TLS port", Vec::new()),
    ] {
        let o = storescu(tmp.path(), tls_port, &args, &more);
        assert!(
            stored_files(&text(&o)).is_empty() && !o.status.success(),
            "{what} must be refused:\n{}",
            text(&o)
        );
    }
    let refused = g
        .log()
        .lines()
        .filter(|l| l.contains("TLS connection refused"))
        .count();
    assert!(refused >= 3, "three refusals logged:\n{}", g.log());

    // The plain port keeps working next to the TLS one.
    let o = storescu(tmp.path(), g.port, &[], &more);
    assert_eq!(stored_files(&text(&o)).len(), 1, "{}", text(&o));
    let all: Vec<PathBuf> = inputs.iter().chain(&more).cloned().collect();
    assert_eq!(wait_for_outputs(&g, &expected_names(&g, &all)).len(), 5);
}

/// storescp with TLS: our server certificate, and client certificates
/// required and checked against the test CA.
fn tls_storescp(pki: &Pki, dir: &Path, port: u16) -> Peer {
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new(tool("storescp"))
        .args(["-aet", "STORESCP", "+xa", "+uf", "-od"])
        .arg(dir)
        .args(["+tls", &pki.path("server.key"), &pki.path("server.crt")])
        .args(["+cf", &pki.path("ca.crt"), "-rc"])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    Peer(child)
}

fn tls_destination(pki: &Pki, port: u16, server_name: &str) -> String {
    let mut d = dicom_destination("pacs", "STORESCP", port);
    d += &format!(
        "tls = true\nca = {:?}\nclient_cert = {:?}\nclient_key = {:?}\n",
        pki.path("ca.crt"),
        pki.path("client.crt"),
        pki.path("client.key")
    );
    if !server_name.is_empty() {
        d += &format!("tls_server_name = {server_name:?}\n");
    }
    d
}

#[test]
fn tls_forwarder_delivers_to_a_verified_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    let port = free_port();
    let scp_dir = tmp.path().join("storescp");
    let _scp = tls_storescp(&pki, &scp_dir, port);
    let g = Gateway::start(tmp.path(), &tls_destination(&pki, port, ""));
    let inputs = make_instances(&tmp.path().join("in"), 20);
    let o = storescu(tmp.path(), g.port, &[], &inputs);
    assert_eq!(stored_files(&text(&o)).len(), 20, "{}", text(&o));
    let outbox = g.data.join("outbox/pacs");
    poll("forwarding over TLS", &g, || {
        g.spool_drained() && files_under(&outbox).is_empty() && files_under(&scp_dir).len() >= 20
    });
    std::thread::sleep(Duration::from_secs(1));
    let received = files_under(&scp_dir);
    assert_eq!(received.len(), 20, "each instance exactly once");
    let out = outputs(&g);
    let sop = |fs: &[PathBuf]| -> BTreeSet<String> {
        fs.iter()
            .map(|f| deidgate::dicom::text(&header(f).unwrap(), tags::SOP_INSTANCE_UID))
            .collect()
    };
    assert_eq!(sop(&received), sop(&out));
    assert!(!g.log().contains("will retry"), "{}", g.log());
}

#[test]
fn tls_forwarder_refuses_a_wrong_server_name_and_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    let port = free_port();
    let scp_dir = tmp.path().join("storescp");
    let _scp = tls_storescp(&pki, &scp_dir, port);
    // The archive's certificate names localhost and 127.0.0.1, not this.
    let g = Gateway::start(tmp.path(), &tls_destination(&pki, port, "wrong.example"));
    let inputs = make_instances(&tmp.path().join("in"), 3);
    let o = storescu(tmp.path(), g.port, &[], &inputs);
    assert_eq!(stored_files(&text(&o)).len(), 3, "{}", text(&o));
    // All three are queued (the worker may still be settling the last when
    // the first two have failed), and the failure has been retried.
    let outbox = g.data.join("outbox/pacs");
    poll("three queued and a retried TLS failure", &g, || {
        files_under(&outbox).len() == 3
            && g.log().lines().filter(|l| l.contains("will retry")).count() >= 2
    });
    let log = g.log();
    let retry = log.lines().find(|l| l.contains("will retry")).unwrap();
    assert!(
        retry.to_lowercase().contains("tls") || retry.contains("certificate"),
        "the retry names the TLS failure: {retry}"
    );
    assert!(!log.contains("dead-lettered"), "{log}");
    assert!(
        files_under(&scp_dir).is_empty(),
        "nothing reaches the archive"
    );
    assert_eq!(files_under(&outbox).len(), 3);

    // A destination whose name matches (127.0.0.1 is in the certificate)
    // delivers them: the same queue, after a restart with the fix.
    drop(g);
    let fixed = tls_destination(&pki, port, "");
    let config = tmp.path().join("gateway.toml");
    let before = std::fs::read_to_string(&config).unwrap();
    let cut = before.find("[[destination]]").unwrap();
    std::fs::write(&config, format!("{}{fixed}", &before[..cut])).unwrap();
    let g = Gateway::start_configured(tmp.path(), &config);
    poll("delivery after fixing the name", &g, || {
        files_under(&scp_dir).len() >= 3
    });
}

#[test]
fn tls_config_is_checked_before_start() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = make_pki(tmp.path());
    for (extra, expected) in [
        (
            "[scp]\ntls_cert = \"x.crt\"\ntls_port = 2762\n".to_string(),
            "tls_cert and tls_key",
        ),
        (
            format!(
                "[scp]\ntls_cert = {:?}\ntls_key = \"/nonexistent.key\"\ntls_port = 2762\n",
                pki.path("server.crt")
            ),
            "cannot read",
        ),
        (
            dicom_destination("p", "PACS", 104) + "tls = true\n",
            "needs ca",
        ),
        (
            dicom_destination("p", "PACS", 104) + &format!("ca = {:?}\n", pki.path("ca.crt")),
            "need tls = true",
        ),
    ] {
        let config = write_config(tmp.path(), &extra);
        let o = cli(&config, &["check"]);
        assert!(
            !o.status.success() && text(&o).contains(expected),
            "{extra}: {}",
            text(&o)
        );
    }
}
