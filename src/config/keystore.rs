//! `[keystore]`: where the reverse map, sealed pixels and the audit chain
//! live. sled (embedded, one node) is the default; PostgreSQL is shared by
//! gateway replicas. The database password comes from `password_file` or the
//! `DEIDGATE_PG_PASSWORD` environment variable, never from the command line
//! nor from the URL.

use serde::Deserialize;
use std::path::PathBuf;

/// Environment variable holding the PostgreSQL password.
pub const PASSWORD_ENV: &str = "DEIDGATE_PG_PASSWORD";

/// Which key-store backend a gateway uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded sled database in the data directory.
    #[default]
    Sled,
    /// A PostgreSQL database shared by every replica.
    Postgres,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoreConfig {
    #[serde(default)]
    pub backend: Backend,
    /// `postgres://user@host:port/database` (no password in it).
    #[serde(default)]
    pub url: String,
    /// A file holding the password (mode 0600); else `DEIDGATE_PG_PASSWORD`.
    #[serde(default)]
    pub password_file: String,
    /// Connections per replica.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// This replica's name in the shared tables (head MR series claims,
    /// quarantine reasons). Empty: `<hostname>:<port>:<8 hex digits of a
    /// hash of the data directory>`, which differs between replicas on one
    /// host. Set it when a replica's host name or port changes but it is
    /// still the same replica (the same data directory).
    #[serde(default)]
    pub replica: String,
}

fn default_pool_size() -> usize {
    8
}

impl Default for KeystoreConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Sled,
            url: String::new(),
            password_file: String::new(),
            pool_size: default_pool_size(),
            replica: String::new(),
        }
    }
}

impl KeystoreConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        if !self.url.starts_with("postgres://") && !self.url.starts_with("postgresql://") {
            return Err(
                "[keystore] url: expected postgres://user@host:port/database with backend = \"postgres\""
                    .into(),
            );
        }
        let parsed: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| format!("[keystore] url: {e}"))?;
        if parsed.get_password().is_some() {
            return Err(format!(
                "[keystore] url: must not carry the password; put it in password_file or {PASSWORD_ENV}"
            ));
        }
        if self.pool_size == 0 || self.pool_size > 256 {
            return Err("[keystore] pool_size: expected 1 to 256".into());
        }
        if self.replica.len() > 128 || self.replica.chars().any(|c| c.is_control()) {
            return Err("[keystore] replica: expected at most 128 printable characters".into());
        }
        Ok(())
    }

    /// This replica's name: `replica`, or derived from the host name, the
    /// DICOM port and the data directory (see the field).
    pub fn replica_id(&self, port: u16, data_dir: &std::path::Path) -> String {
        use sha2::{Digest, Sha256};
        if !self.replica.is_empty() {
            return self.replica.clone();
        }
        let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
        format!("{}:{port}:{}", hostname(), hex::encode(&digest[..4]))
    }

    /// The database password: `password_file` (trailing newline dropped),
    /// else `DEIDGATE_PG_PASSWORD`, else none (trust or peer auth).
    pub fn password(&self) -> anyhow::Result<Option<String>> {
        use anyhow::Context;
        if !self.password_file.is_empty() {
            let path = PathBuf::from(&self.password_file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading [keystore] password_file {}", path.display()))?;
            return Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()));
        }
        Ok(std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()))
    }
}

/// The host name (`gethostname(2)`), or "localhost".
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the name is cut at NUL.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(h) if rc == 0 && !h.is_empty() => h.to_string(),
        _ => "localhost".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(url: &str) -> KeystoreConfig {
        KeystoreConfig {
            backend: Backend::Postgres,
            url: url.into(),
            ..KeystoreConfig::default()
        }
    }

    #[test]
    fn sled_is_the_default_and_needs_nothing() {
        let c = KeystoreConfig::default();
        assert_eq!(c.backend, Backend::Sled);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn postgres_needs_a_url_without_password() {
        assert!(pg("postgres://deid@127.0.0.1:5432/deid").validate().is_ok());
        assert!(pg("").validate().is_err());
        let e = pg("postgres://deid:hunter2@127.0.0.1/deid")
            .validate()
            .unwrap_err();
        assert!(e.contains("password_file") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn replica_id_is_configured_or_differs_by_port_and_data_dir() {
        let c = KeystoreConfig::default();
        let a = c.replica_id(104, std::path::Path::new("/srv/a"));
        assert_eq!(a, c.replica_id(104, std::path::Path::new("/srv/a")));
        assert_ne!(a, c.replica_id(105, std::path::Path::new("/srv/a")));
        assert_ne!(a, c.replica_id(104, std::path::Path::new("/srv/b")));
        assert!(a.contains(":104:"), "{a}");
        let named = KeystoreConfig {
            replica: "building-a-1".into(),
            ..KeystoreConfig::default()
        };
        assert_eq!(
            named.replica_id(104, std::path::Path::new("/x")),
            "building-a-1"
        );
        let bad = KeystoreConfig {
            replica: "a\nb".into(),
            ..pg("postgres://deid@127.0.0.1/deid")
        };
        assert!(bad.validate().is_err());
    }
}
