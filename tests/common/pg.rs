//! A throw-away PostgreSQL cluster for the replica tests: `initdb` and
//! `pg_ctl` from Debian's packages, run as an unprivileged user when the
//! tests run as root (initdb refuses root), listening on a loopback port
//! with a password (SCRAM) for one superuser.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The password of the test cluster's role (not a secret: a loopback test).
pub const PASSWORD: &str = "test-only-password";
/// The role the gateways connect as.
pub const ROLE: &str = "deidgate";

/// A running cluster; stopped (immediately) and removed when dropped.
pub struct PgCluster {
    base: PathBuf,
    pub data: PathBuf,
    bin: PathBuf,
    pub port: u16,
    /// `Some(user)` when the server runs as another user than us.
    run_as: Option<String>,
}

/// The directory of the newest PostgreSQL server binaries.
fn server_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn uid_gid(user: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(user).ok()?;
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

fn runuser() -> Option<PathBuf> {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl PgCluster {
    /// Starts a fresh cluster, or says why it cannot (no server binaries,
    /// or root without a way to drop privileges) and returns `None`.
    pub fn start(tag: &str) -> Option<PgCluster> {
        let Some(bin) = server_bin() else {
            eprintln!(
                "SKIP: no PostgreSQL server under /usr/lib/postgresql/*/bin: run scripts/test.sh, \
                 which installs Debian's postgresql"
            );
            return None;
        };
        let run_as = if is_root() {
            if runuser().is_none() || uid_gid("nobody").is_none() {
                eprintln!(
                    "SKIP: running as root without runuser or a 'nobody' user: initdb refuses root"
                );
                return None;
            }
            Some("nobody".to_string())
        } else {
            None
        };
        let base = std::env::temp_dir().join(format!(
            "deidgate-pg-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
        let pwfile = base.join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if let Some(user) = &run_as {
            let (uid, gid) = uid_gid(user).unwrap();
            for p in [&base, &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
            }
        }
        let port = super::peers::free_port();
        let c = PgCluster {
            data: base.join("data"),
            base,
            bin,
            port,
            run_as,
        };
        let out = c.run(
            "initdb",
            &[
                "-D",
                c.data.to_str().unwrap(),
                "-U",
                ROLE,
                "--auth=scram-sha-256",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        c.start_server();
        Some(c)
    }

    fn run(&self, prog: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(prog);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new(runuser().unwrap());
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir(&self.base).output().unwrap()
    }

    /// `pg_ctl start` (again) on the same port; waits until it accepts.
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=100",
            self.port,
            self.base.display()
        );
        let log = self.base.join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "300",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `pg_ctl stop -m fast`: open connections are cut, as in an outage.
    pub fn stop_server(&self) {
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        assert!(out.status.success(), "pg_ctl stop failed: {}", text(&out));
    }

    /// `postgres://deidgate@127.0.0.1:PORT/postgres` (no password in it).
    pub fn url(&self) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL with `psql` (the client needs no privilege drop).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                ROLE,
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(out.status.success(), "psql failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// A plain-SQL `pg_dump` of the database.
    pub fn dump(&self) -> Vec<u8> {
        let out = Command::new(self.bin.join("pg_dump"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                ROLE,
                "postgres",
            ])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_dump failed: {}", text(&out));
        out.stdout
    }

    /// The server's own files (tables, WAL), read as root or as their owner.
    pub fn files(&self) -> Vec<PathBuf> {
        super::files_under(&self.data)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

/// Writes the password to `dir/pgpass` (mode 0600) for `[keystore] password_file`.
pub fn password_file(dir: &Path) -> PathBuf {
    let p = dir.join("pgpass");
    std::fs::write(&p, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}
