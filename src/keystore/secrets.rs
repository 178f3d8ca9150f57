//! The two keys the gateway cannot live without, and their file.
//!
//! * `pseudonym_key` (HMAC key) makes pseudonyms deterministic: the same
//!   patient always maps to the same pseudonym, across studies and restarts.
//! * `encryption_key` seals the reverse map in the key store.
//!
//! They are kept apart from the key store on purpose: a copy of the database
//! without this file is useless to an attacker. The file is created `0600`
//! inside a `0700` directory and is never overwritten by this code, because
//! overwriting it silently would destroy longitudinal consistency and make the
//! whole reverse map unreadable.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Comment header written at the top of every secrets file, so whoever finds
/// the file knows what losing it costs.
const HEADER: &str = "\
# deidgate secrets -- KEEP THIS FILE PRIVATE AND BACKED UP (mode 0600).
#
# pseudonym_key : HMAC key that derives pseudonyms. If it is lost, the same
#                 patient will get a NEW pseudonym: longitudinal consistency
#                 with everything already de-identified is lost.
# encryption_key: seals the reverse map (key store). If it is lost, the key
#                 store is unreadable: re-identification becomes impossible.
# key_id        : hex of the first 8 bytes of SHA-256(encryption_key); tells
#                 which key sealed which store. It is not secret.
#
# Anyone holding this file AND the key store can re-identify patients.
# Never edit these values by hand.
";

/// The gateway's key material.
///
/// `Debug` prints only `key_id`, so secrets cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    /// Hex of the first 8 bytes of SHA-256 of `encryption_key`.
    pub key_id: String,
    /// HMAC key for pseudonym derivation.
    pub pseudonym_key: [u8; 32],
    /// XChaCha20-Poly1305 key for the key store.
    pub encryption_key: [u8; 32],
}

/// On-disk representation: hex strings.
#[derive(Serialize, Deserialize)]
struct SecretsFile {
    key_id: Option<String>,
    pseudonym_key: String,
    encryption_key: String,
}

impl Secrets {
    /// Fresh random keys from the operating system's RNG.
    pub fn generate() -> Self {
        let mut pseudonym_key = [0u8; 32];
        let mut encryption_key = [0u8; 32];
        OsRng.fill_bytes(&mut pseudonym_key);
        OsRng.fill_bytes(&mut encryption_key);
        Self::from_keys(pseudonym_key, encryption_key)
    }

    /// Builds secrets from raw keys, deriving `key_id`.
    pub fn from_keys(pseudonym_key: [u8; 32], encryption_key: [u8; 32]) -> Self {
        Self {
            key_id: key_id_of(&encryption_key),
            pseudonym_key,
            encryption_key,
        }
    }

    /// Same pseudonym key, new encryption key: the input of a key rotation
    /// (pseudonyms must not change, only the sealing of the reverse map).
    pub fn with_encryption_key(&self, new: [u8; 32]) -> Secrets {
        Self::from_keys(self.pseudonym_key, new)
    }

    /// Generates secrets and writes them to a NEW file at `path` (mode 0600),
    /// creating missing parent directories (mode 0700).
    ///
    /// Refuses to overwrite an existing file: replacing keys destroys data.
    pub fn init(path: &Path) -> Result<Self> {
        let secrets = Self::generate();
        secrets.write_new(path)?;
        tracing::info!(path = %path.display(), key_id = %secrets.key_id, "created secrets file");
        Ok(secrets)
    }

    /// Reads secrets from `path`, validating hex, lengths and `key_id`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                bail!("secrets file {} does not exist", path.display())
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading secrets file {}", path.display()))
            }
        };
        warn_if_exposed(path);
        Self::parse(&text).with_context(|| format!("invalid secrets file {}", path.display()))
    }

    /// Loads `path` if it exists, otherwise creates it with fresh keys.
    pub fn load_or_init(path: &Path) -> Result<Self> {
        if path.exists() {
            return Self::load(path);
        }
        match Self::init(path) {
            Ok(s) => Ok(s),
            // Another process created it between our check and our create:
            // use theirs, never replace it.
            Err(e) if is_already_exists(&e) => Self::load(path),
            Err(e) => Err(e),
        }
    }

    fn parse(text: &str) -> Result<Self> {
        let file: SecretsFile = toml::from_str(text).context("not valid secrets TOML")?;
        let pseudonym_key = decode_key("pseudonym_key", &file.pseudonym_key)?;
        let encryption_key = decode_key("encryption_key", &file.encryption_key)?;
        let secrets = Self::from_keys(pseudonym_key, encryption_key);
        if let Some(stated) = file.key_id {
            if !stated.eq_ignore_ascii_case(&secrets.key_id) {
                bail!(
                    "key_id {stated} does not match encryption_key (whose id is {}); \
                     the file was edited or corrupted",
                    secrets.key_id
                );
            }
        }
        Ok(secrets)
    }

    fn to_toml(&self) -> Result<String> {
        let file = SecretsFile {
            key_id: Some(self.key_id.clone()),
            pseudonym_key: hex::encode(self.pseudonym_key),
            encryption_key: hex::encode(self.encryption_key),
        };
        let body = toml::to_string(&file).context("serializing secrets")?;
        Ok(format!("{HEADER}\n{body}"))
    }

    /// Writes these secrets to a NEW file at `path` (mode 0600); refuses to
    /// overwrite.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        create_private_parent(path)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| open_error(path, e))?;
        let written = self
            .to_toml()
            .and_then(|text| f.write_all(text.as_bytes()).map_err(Into::into))
            .and_then(|()| f.sync_all().map_err(Into::into));
        if let Err(e) = written {
            // Leave no half-written file behind: a later init would refuse it
            // and a later load would fail on it.
            let _ = fs::remove_file(path);
            return Err(e.context(format!("writing secrets file {}", path.display())));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("key_id", &self.key_id)
            .field("pseudonym_key", &"<redacted>")
            .field("encryption_key", &"<redacted>")
            .finish()
    }
}

/// Hex of the first 8 bytes of SHA-256(`key`): identifies a key without
/// revealing it.
pub fn key_id_of(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

fn decode_key(name: &str, hex_str: &str) -> Result<[u8; 32]> {
    let bytes = hex::decode(hex_str.trim()).with_context(|| format!("{name} is not valid hex"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        anyhow::anyhow!(
            "{name} must be 32 bytes (64 hex digits), found {} bytes",
            bytes.len()
        )
    })
}

/// Error wrapper that remembers an `AlreadyExists` so `load_or_init` can
/// recognise the create race.
#[derive(Debug, thiserror::Error)]
#[error("secrets file {0} already exists; refusing to overwrite it (that would lose every pseudonym and the key store)")]
struct AlreadyExists(String);

fn open_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == ErrorKind::AlreadyExists {
        AlreadyExists(path.display().to_string()).into()
    } else {
        anyhow::Error::new(e).context(format!("creating secrets file {}", path.display()))
    }
}

fn is_already_exists(e: &anyhow::Error) -> bool {
    e.downcast_ref::<AlreadyExists>().is_some()
}

fn create_private_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating directory {}", dir.display())),
        _ => Ok(()),
    }
}

/// Warns (does not fail: the operator may have reasons, e.g. a group-owned
/// secrets mount) when the file is readable by group or others.
fn warn_if_exposed(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "secrets file is accessible by group/others; run chmod 600 on it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text(e: anyhow::Error) -> String {
        format!("{e:#}")
    }

    #[test]
    fn generate_makes_distinct_keys_and_key_id() {
        let a = Secrets::generate();
        let b = Secrets::generate();
        assert_ne!(a.pseudonym_key, a.encryption_key);
        assert_ne!(a.encryption_key, b.encryption_key);
        assert_eq!(a.key_id.len(), 16);
        assert_eq!(a.key_id, key_id_of(&a.encryption_key));
    }

    #[test]
    fn init_then_load_roundtrip_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/sub/secrets.toml");
        let s = Secrets::init(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("longitudinal consistency"));
        assert!(text.contains("unreadable"));
        assert_eq!(Secrets::load(&path).unwrap(), s);
    }

    #[test]
    fn init_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        let first = Secrets::init(&path).unwrap();
        let e = err_text(Secrets::init(&path).unwrap_err());
        assert!(e.contains("already exists"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert_eq!(Secrets::load(&path).unwrap(), first);
    }

    #[test]
    fn load_or_init_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        let a = Secrets::load_or_init(&path).unwrap();
        let b = Secrets::load_or_init(&path).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn load_missing_file_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let e = err_text(Secrets::load(&path).unwrap_err());
        assert!(
            e.contains("does not exist") && e.contains("nope.toml"),
            "{e}"
        );
    }

    fn write(dir: &Path, body: &str) -> std::path::PathBuf {
        let p = dir.join("s.toml");
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    #[test]
    fn load_rejects_bad_hex_and_wrong_length() {
        let dir = tempfile::tempdir().unwrap();
        let good = hex::encode([1u8; 32]);
        let p = write(
            dir.path(),
            &format!(
                "pseudonym_key = \"zz{}\"\nencryption_key = \"{good}\"\n",
                &good[2..]
            ),
        );
        let e = err_text(Secrets::load(&p).unwrap_err());
        assert!(e.contains("pseudonym_key is not valid hex"), "{e}");

        let p = write(
            dir.path(),
            &format!("pseudonym_key = \"{good}\"\nencryption_key = \"abcd\"\n"),
        );
        let e = err_text(Secrets::load(&p).unwrap_err());
        assert!(e.contains("encryption_key must be 32 bytes"), "{e}");
        assert!(e.contains("found 2 bytes"), "{e}");
    }

    #[test]
    fn load_rejects_key_id_mismatch_and_accepts_missing_key_id() {
        let dir = tempfile::tempdir().unwrap();
        let k = hex::encode([1u8; 32]);
        let p = write(
            dir.path(),
            &format!("key_id = \"0000000000000000\"\npseudonym_key = \"{k}\"\nencryption_key = \"{k}\"\n"),
        );
        let e = err_text(Secrets::load(&p).unwrap_err());
        assert!(e.contains("does not match encryption_key"), "{e}");

        let p = write(
            dir.path(),
            &format!("pseudonym_key = \"{k}\"\nencryption_key = \"{k}\"\n"),
        );
        let s = Secrets::load(&p).unwrap();
        assert_eq!(s.key_id, key_id_of(&[1u8; 32]));
    }

    #[test]
    fn debug_does_not_print_keys() {
        let s = Secrets::generate();
        let d = format!("{s:?}");
        assert!(d.contains(&s.key_id));
        assert!(!d.contains(&hex::encode(s.pseudonym_key)));
        assert!(!d.contains(&hex::encode(s.encryption_key)));
        assert!(!d.contains(&format!("{:?}", s.encryption_key)));
        assert!(!d.contains(&format!("{:?}", s.pseudonym_key)));
    }

    #[test]
    fn with_encryption_key_keeps_pseudonym_key() {
        let s = Secrets::generate();
        let r = s.with_encryption_key([9u8; 32]);
        assert_eq!(r.pseudonym_key, s.pseudonym_key);
        assert_eq!(r.encryption_key, [9u8; 32]);
        assert_eq!(r.key_id, key_id_of(&[9u8; 32]));
        assert_ne!(r.key_id, s.key_id);
    }
}
