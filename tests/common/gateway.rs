//! A `deidgate serve` process under test, and the DCMTK storescu helpers
//! the network tests share.
#![allow(dead_code)]

use super::*;
use dicom_dictionary_std::{tags, uids};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Writes `dir/gateway.toml`: a free loopback port, data in `dir/data`, HTTP
/// on an ephemeral port, then `extra_toml`.
pub fn write_config(dir: &Path, extra_toml: &str) -> PathBuf {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.join("data");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nport = {port}\ndata_dir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n{extra_toml}",
            data.display().to_string()
        ),
    )
    .unwrap();
    config
}

/// Runs `deidgate --config CONFIG ARGS...` to completion.
pub fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deidgate"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("DEIDGATE_CONFIG")
        .output()
        .expect("run deidgate")
}

/// One `deidgate anonymize` run: its output, quarantine reasons, log and
/// config (for later commands on the same data).
pub struct Run {
    pub output: Option<PathBuf>,
    pub reasons: String,
    pub log: String,
    pub config: PathBuf,
}

pub fn anonymize_logged(dir: &Path, input: &Path, toml: &str) -> Run {
    std::fs::create_dir_all(dir).unwrap();
    let config = write_config(dir, toml);
    let out = dir.join("out");
    let o = cli(
        &config,
        &["anonymize", input.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let files = files_under(&out);
    assert!(files.len() <= 1);
    let reasons: String = quarantine_reasons(&dir.join("data")).concat();
    Run {
        output: files.into_iter().next(),
        reasons,
        log: text(&o),
        config,
    }
}

/// Creates a user with `roles` and returns its token.
pub fn add_user(config: &Path, name: &str, roles: &[&str]) -> String {
    let mut args = vec!["users", "add", name];
    for r in roles {
        args.extend(["--role", r]);
    }
    let o = cli(config, &args);
    assert!(o.status.success(), "users add failed: {}", text(&o));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Generous: debug builds on a busy machine. Only ever a bound on polling.
pub const DEADLINE: Duration = Duration::from_secs(300);

/// What `deidgate serve` logs once its DICOM listener is bound.
const LISTENING: &str = "serve: listening address=";

/// A running `deidgate serve`, killed when dropped.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub data: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Gateway {
    /// Start on a free loopback port with a fresh data dir under `dir`.
    pub fn start(dir: &Path, extra_toml: &str) -> Gateway {
        let config = write_config(dir, extra_toml);
        Gateway::start_configured(dir, &config)
    }

    /// Start with a config written by [`write_config`] (after, say, users
    /// were added with the CLI, which needs the key store unlocked).
    ///
    /// The port [`write_config`] chose was free when it looked, but another
    /// test's process can take it before the gateway binds it (the gateway
    /// then exits, and a connect test would reach that other process). So
    /// this waits for the gateway's own "listening" line, logged once its
    /// DICOM listener is bound, and on "cannot listen" starts again on
    /// another free port, up to three times.
    pub fn start_configured(dir: &Path, config: &Path) -> Gateway {
        let log = dir.join("gateway.log");
        for attempt in 0.. {
            let text = std::fs::read_to_string(config).unwrap();
            let port: u16 = text
                .lines()
                .find_map(|l| l.strip_prefix("port = ")?.trim().parse().ok())
                .expect("config has a port");
            // Lines of earlier runs in the same log do not count.
            let seen = |what: &str| {
                strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default())
                    .matches(what)
                    .count()
            };
            let (listening_before, refused_before) = (seen(LISTENING), seen("cannot listen on"));
            let child = spawn(config, &log);
            let mut g = Gateway {
                child,
                port,
                data: dir.join("data"),
                config: config.to_path_buf(),
                log: log.clone(),
            };
            let t = Instant::now();
            while g.alive() && seen(LISTENING) == listening_before {
                assert!(
                    t.elapsed() < DEADLINE,
                    "deidgate never listened:\n{}",
                    g.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let taken = !g.alive() && seen("cannot listen on") > refused_before;
            if taken && attempt < 3 {
                let free = TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let moved = text.replace(&format!("port = {port}\n"), &format!("port = {free}\n"));
                std::fs::write(config, moved).unwrap();
                continue;
            }
            g.wait_ready();
            return g;
        }
        unreachable!()
    }

    pub fn wait_ready(&mut self) {
        let t = Instant::now();
        loop {
            assert!(self.alive(), "deidgate exited:\n{}", self.log());
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                t.elapsed() < DEADLINE,
                "deidgate never listened:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL, as a power cut would: no cleanup runs.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Start again on the same port and data dir.
    pub fn restart(&mut self) {
        let http_lines = |g: &Gateway| {
            g.log()
                .lines()
                .filter(|l| l.contains("HTTP: /healthz"))
                .count()
        };
        let before = http_lines(self);
        self.child = spawn(&self.config, &self.log);
        self.wait_ready();
        // So that http_port() reads this run's port, not the last one's.
        if before > 0 {
            let log = self.log.clone();
            let count = move || {
                strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default())
                    .lines()
                    .filter(|l| l.contains("HTTP: /healthz"))
                    .count()
            };
            poll("the HTTP listener after restart", self, || count() > before);
        }
    }

    /// The HTTP port the gateway logged last (it binds an ephemeral one in
    /// tests); waits for the line, which follows the DICOM listener's.
    pub fn http_port(&self) -> u16 {
        let t = Instant::now();
        loop {
            let port = self
                .log()
                .lines()
                .rev()
                .filter(|l| l.contains("HTTP: /healthz"))
                .find_map(|l| {
                    let port = l.split("address=").nth(1)?.split(':').nth(1)?;
                    let digits: String = port.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().ok()
                });
            if let Some(p) = port {
                return p;
            }
            assert!(
                t.elapsed() < DEADLINE,
                "the gateway never logged its HTTP address:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET `path` from the gateway's HTTP server: (status line, body).
    /// Every acknowledged instance is through the pipeline: `/metrics` says
    /// the spool (its log and `ready/`) is empty.
    pub fn spool_drained(&self) -> bool {
        self.http_get("/metrics")
            .1
            .lines()
            .any(|l| l == "deidgate_spool_ready 0")
    }

    pub fn http_get(&self, path: &str) -> (String, String) {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port())).expect("connect HTTP");
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
        (
            head.lines().next().unwrap_or("").to_string(),
            body.to_string(),
        )
    }

    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    pub fn out(&self) -> PathBuf {
        self.data.join("out")
    }

    pub fn spool(&self, sub: &str) -> PathBuf {
        self.data.join("spool").join(sub)
    }

    pub fn echo(&self, calling: &str, called: &str) -> Output {
        Command::new(tool("echoscu"))
            .args(["-aet", calling, "-aec", called, "127.0.0.1"])
            .arg(self.port.to_string())
            .output()
            .unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_deidgate"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("DEIDGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start deidgate")
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn poll(what: &str, g: &Gateway, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(
            t.elapsed() < DEADLINE,
            "timed out waiting for {what}:\n{}",
            g.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

/// The header of an input file (up to the pixel data). Corrupt files are
/// screened first: the parser can spend minutes on a bogus length.
pub fn header(path: &Path) -> Option<dicom_object::DefaultDicomObject> {
    let bytes = std::fs::read(path).ok()?;
    deidgate::pipeline::precheck::check(&bytes).ok()?;
    dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Auto)
        .read_until(tags::PIXEL_DATA)
        .from_reader(&bytes[..])
        .ok()
}

/// A storescu association profile proposing, for every SOP class among the
/// inputs, each transfer syntax those inputs use (plus Explicit VR LE), so
/// every file is sent in its own syntax.
pub fn scu_profile(dir: &Path, inputs: &[PathBuf]) -> PathBuf {
    let mut classes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in inputs {
        let Some(obj) = header(f) else { continue };
        let ts = obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        for class in [
            obj.meta()
                .media_storage_sop_class_uid()
                .trim_end_matches('\0')
                .to_string(),
            deidgate::dicom::text(&obj, tags::SOP_CLASS_UID),
        ] {
            let class = class.trim_end_matches(['\0', ' ']).to_string();
            if !class.is_empty() && class.chars().all(|c| c.is_ascii_digit() || c == '.') {
                let set = classes.entry(class).or_default();
                set.insert(ts.clone());
                set.insert(uids::EXPLICIT_VR_LITTLE_ENDIAN.to_string());
            }
        }
    }
    let all_ts: BTreeSet<&String> = classes.values().flatten().collect();
    let name = |ts: &String| format!("TS{}", all_ts.iter().position(|t| *t == ts).unwrap());
    let mut cfg = String::from("[[TransferSyntaxes]]\n");
    for ts in &all_ts {
        cfg += &format!("[{}]\nTransferSyntax1 = {ts}\n", name(ts));
    }
    cfg += "[[PresentationContexts]]\n[Contexts]\n";
    let mut n = 0;
    for (class, set) in &classes {
        for ts in set {
            n += 1;
            cfg += &format!("PresentationContext{n} = {class}\\{}\n", name(ts));
        }
    }
    assert!(n <= 128, "too many presentation contexts: {n}");
    cfg += "[[Profiles]]\n[Test]\nPresentationContexts = Contexts\n";
    let p = dir.join("storescu.cfg");
    std::fs::write(&p, cfg).unwrap();
    p
}

pub fn storescu_cmd(g: &Gateway, profile: &Path, calling: &str, inputs: &[PathBuf]) -> Command {
    let mut c = Command::new(tool("storescu"));
    c.args([
        "-v", "-aet", calling, "-aec", "DEIDGATE", "+sd", "+r", "-nh", "-xf",
    ])
    .arg(profile)
    .arg("Test")
    .arg("127.0.0.1")
    .arg(g.port.to_string())
    .args(inputs);
    c
}

/// The files storescu got a Success response for, from its `-v` log.
pub fn stored_files(log: &str) -> Vec<PathBuf> {
    let mut current = None;
    let mut out = Vec::new();
    for l in log.lines() {
        if let Some(f) = l.strip_prefix("I: Sending file: ") {
            current = Some(PathBuf::from(f.trim()));
        } else if l.contains("Received Store Response (Success)") {
            out.extend(current.take());
        }
    }
    out
}

/// De-identified objects in `out/` (not temp files).
pub fn outputs(g: &Gateway) -> Vec<PathBuf> {
    if !g.out().exists() {
        return Vec::new();
    }
    files_under(&g.out())
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".dcm") && !n.starts_with('.')
        })
        .collect()
}

pub fn dir_is_empty(d: &Path) -> bool {
    std::fs::read_dir(d)
        .map(|mut r| r.next().is_none())
        .unwrap_or(true)
}

/// The output file name each input gets: its keyed pseudonymous SOP UID.
pub fn expected_names(g: &Gateway, inputs: &[PathBuf]) -> BTreeSet<String> {
    let secrets = deidgate::keystore::Secrets::load(&g.data.join("secrets.toml")).unwrap();
    let p = deidgate::deid::pseudonym::Pseudonymizer::new(secrets.pseudonym_key, "");
    inputs
        .iter()
        .map(|f| {
            let obj = header(f).expect("a stored input parses");
            format!(
                "{}.dcm",
                p.uid(&deidgate::dicom::text(&obj, tags::SOP_INSTANCE_UID))
            )
        })
        .collect()
}

/// Wait until the spool is drained and every expected name is in `out/`;
/// then every output name must occur once.
pub fn wait_for_outputs(g: &Gateway, expected: &BTreeSet<String>) -> Vec<PathBuf> {
    poll("the de-identified outputs", g, || {
        let names: BTreeSet<String> = outputs(g)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        g.spool_drained() && expected.is_subset(&names)
    });
    let out = outputs(g);
    let names: BTreeSet<_> = out
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(
        names.len(),
        out.len(),
        "an instance was written twice: {out:?}"
    );
    out
}

/// storescu `inputs` into the gateway as AE `calling`; every file must be
/// acknowledged (the route tests' common first step).
pub fn send_all(g: &Gateway, dir: &Path, calling: &str, inputs: &[PathBuf]) {
    let profile = scu_profile(dir, inputs);
    let out = storescu_cmd(g, &profile, calling, inputs).output().unwrap();
    assert_eq!(
        stored_files(&text(&out)).len(),
        inputs.len(),
        "{}",
        text(&out)
    );
}

/// The Pixel Data element's bytes as stored.
pub fn pixel_bytes(o: &dicom_object::DefaultDicomObject) -> Vec<u8> {
    o.element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec()
}

/// The code values in DeidentificationMethodCodeSequence (113102 and co.).
pub fn method_codes(o: &dicom_object::DefaultDicomObject) -> Vec<String> {
    o.element(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .ok()
        .and_then(|e| e.items().map(|items| items.to_vec()))
        .unwrap_or_default()
        .iter()
        .map(|i| deidgate::dicom::text(i, tags::CODE_VALUE))
        .collect()
}
