//! `deidgate keys backup|restore`: an encrypted, self-contained export of the
//! key store.
//!
//! A backup must survive the loss of the machine *and* of the secrets file,
//! so it carries the pseudonym key (without it, re-imported patients would get
//! new pseudonyms) and every record in clear JSON, all sealed under a key
//! derived from a passphrase with Argon2id. The encryption key is not carried:
//! a restore seals the records under a fresh one.
//!
//! File layout: `DGBACKUP` `01`, 16-byte salt, Argon2 m/t/p (u32 LE each),
//! then frames of `u32 LE length` + XChaCha20-Poly1305 `nonce || ciphertext`.
//! Each frame's associated data holds its index and whether it is the last,
//! so a reordered, dropped or truncated frame fails authentication.

use super::audit::{AUDIT_HEAD_TREE, AUDIT_TREE};
use super::crypto::RecordCipher;
use super::{KeyStore, Secrets, SledKeyStore};
use crate::auth::users::USERS_TREE;
use anyhow::{anyhow, bail, Context, Result};
use argon2::{Argon2, Params};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

const MAGIC: &[u8; 9] = b"DGBACKUP\x01";
const FRAME_BYTES: usize = 1 << 20;
const MIN_PASSPHRASE: usize = 12;
/// Trees copied as they are (not sealed: no identity in them).
const RAW_TREES: [&str; 3] = [USERS_TREE, AUDIT_TREE, AUDIT_HEAD_TREE];

/// One line of the backup's plaintext.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
enum Line {
    Header {
        version: u32,
        created: String,
        pseudonym_key: String,
        key_id: String,
    },
    /// `value`: hex of the plaintext (JSON, or raw pixels).
    Sealed {
        tree: String,
        key: String,
        value: String,
    },
    Raw {
        tree: String,
        key: String,
        value: String,
    },
    End {
        records: usize,
    },
}

/// Counts of a backup or restore.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub sealed: usize,
    pub raw: usize,
}

fn check_passphrase(p: &str) -> Result<()> {
    if p.chars().count() < MIN_PASSPHRASE {
        bail!("the backup passphrase must have at least {MIN_PASSPHRASE} characters");
    }
    Ok(())
}

fn derive(passphrase: &str, salt: &[u8], params: Params) -> Result<RecordCipher> {
    let mut key = [0u8; 32];
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| anyhow!("deriving the backup key: {e}"))?;
    Ok(RecordCipher::new(&key))
}

fn frame_aad(index: u64, last: bool) -> Vec<u8> {
    let mut aad = b"deidgate-backup-v1\0".to_vec();
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(u8::from(last));
    aad
}

/// Writes sealed frames of JSON lines.
struct FrameWriter<W: Write> {
    out: W,
    cipher: RecordCipher,
    buf: Vec<u8>,
    index: u64,
}

impl<W: Write> FrameWriter<W> {
    /// The file header (magic, salt, key-derivation parameters); frames follow.
    fn start(mut out: W, passphrase: &str) -> Result<Self> {
        check_passphrase(passphrase)?;
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let params = Params::default();
        out.write_all(MAGIC)?;
        out.write_all(&salt)?;
        for v in [params.m_cost(), params.t_cost(), params.p_cost()] {
            out.write_all(&v.to_le_bytes())?;
        }
        Ok(FrameWriter {
            out,
            cipher: derive(passphrase, &salt, params)?,
            buf: Vec::new(),
            index: 0,
        })
    }

    fn line(&mut self, line: &Line) -> Result<()> {
        serde_json::to_writer(&mut self.buf, line)?;
        self.buf.push(b'\n');
        if self.buf.len() >= FRAME_BYTES {
            self.frame(false)?;
        }
        Ok(())
    }

    fn frame(&mut self, last: bool) -> Result<()> {
        let sealed = self.cipher.seal(&frame_aad(self.index, last), &self.buf);
        self.out.write_all(&(sealed.len() as u32).to_le_bytes())?;
        self.out.write_all(&sealed)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }
}

/// Writes an encrypted backup of `store` (and its pseudonym key) to `out`.
pub fn write(
    store: &SledKeyStore,
    secrets: &Secrets,
    passphrase: &str,
    out: impl Write,
) -> Result<Summary> {
    let mut w = FrameWriter::start(out, passphrase)?;
    w.line(&Line::Header {
        version: 1,
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        pseudonym_key: hex::encode(secrets.pseudonym_key),
        key_id: secrets.key_id.clone(),
    })?;
    let sealed = store.export_plain(|tree, key, plain| {
        w.line(&Line::Sealed {
            tree: tree.to_string(),
            key: String::from_utf8(key.to_vec()).context("non-UTF-8 key in the key store")?,
            value: hex::encode(plain),
        })
    })?;
    let mut summary = Summary { sealed, raw: 0 };
    for name in RAW_TREES {
        let tree = store.db().open_tree(name)?;
        for item in tree.iter() {
            let (k, v) = item?;
            w.line(&Line::Raw {
                tree: name.to_string(),
                key: hex::encode(k),
                value: hex::encode(v),
            })?;
            summary.raw += 1;
        }
    }
    w.line(&Line::End {
        records: summary.sealed + summary.raw,
    })?;
    w.frame(true)?;
    w.out.flush()?;
    Ok(summary)
}

/// Reads every plaintext line of a backup, checking the frame chain.
fn read_lines(mut input: impl Read, passphrase: &str) -> Result<Vec<Line>> {
    let mut magic = [0u8; 9];
    input
        .read_exact(&mut magic)
        .context("not a deidgate backup (too short)")?;
    if &magic != MAGIC {
        bail!("not a deidgate backup (bad magic)");
    }
    let mut salt = [0u8; 16];
    input.read_exact(&mut salt)?;
    let mut p = [0u32; 3];
    for v in &mut p {
        let mut b = [0u8; 4];
        input.read_exact(&mut b)?;
        *v = u32::from_le_bytes(b);
    }
    let params =
        Params::new(p[0], p[1], p[2], Some(32)).map_err(|e| anyhow!("backup header: {e}"))?;
    let cipher = derive(passphrase, &salt, params)?;
    let mut lines = Vec::new();
    let mut index = 0u64;
    loop {
        let mut len = [0u8; 4];
        input
            .read_exact(&mut len)
            .context("backup is truncated: its last frame is missing")?;
        let mut sealed = vec![0u8; u32::from_le_bytes(len) as usize];
        input
            .read_exact(&mut sealed)
            .context("backup is truncated")?;
        let (plain, last) = match cipher.open(&frame_aad(index, false), &sealed) {
            Ok(p) => (p, false),
            Err(_) => (
                cipher.open(&frame_aad(index, true), &sealed).map_err(|_| {
                    anyhow!("cannot decrypt backup frame {index}: wrong passphrase, or the file was altered")
                })?,
                true,
            ),
        };
        for l in plain.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            lines.push(serde_json::from_slice(l).context("backup line is not valid")?);
        }
        index += 1;
        if last {
            return Ok(lines);
        }
    }
}

/// Restores a backup into a NEW data directory: fills the key store at
/// `dir`, then writes `secrets_path` (same pseudonym key, fresh encryption
/// key) once the store is flushed and its audit log verifies.
pub fn restore(
    input: impl Read,
    passphrase: &str,
    secrets_path: &std::path::Path,
    dir: &std::path::Path,
) -> Result<Summary> {
    if secrets_path.exists() {
        bail!(
            "{} exists: restore only into a new data directory",
            secrets_path.display()
        );
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: restore only into a new data directory (a restore cut short \
             leaves a store without its secrets file: delete that folder and run it again)",
            dir.display()
        );
    }
    let lines = read_lines(input, passphrase)?;
    let Some(Line::Header {
        version: 1,
        pseudonym_key,
        ..
    }) = lines.first()
    else {
        bail!("backup has no version-1 header");
    };
    let expected = match lines.last() {
        Some(Line::End { records }) => *records,
        _ => bail!("backup has no end record: it is incomplete"),
    };
    let key: [u8; 32] = hex::decode(pseudonym_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| anyhow!("backup header: bad pseudonym key"))?;
    let mut enc = [0u8; 32];
    OsRng.fill_bytes(&mut enc);
    let secrets = Secrets::from_keys(key, enc);
    // The secrets file is written last: a restore cut short leaves a store
    // no gateway can open (no secrets), never a partial one it would serve.
    let store = SledKeyStore::open(dir, &secrets)?;
    let mut summary = Summary::default();
    for line in &lines[1..lines.len() - 1] {
        match line {
            Line::Sealed { tree, key, value } => {
                store.import_plain(tree, key, hex::decode(value)?)?;
                summary.sealed += 1;
            }
            Line::Raw { tree, key, value } => {
                if !RAW_TREES.contains(&tree.as_str()) {
                    bail!("backup names an unknown tree {tree:?}");
                }
                store
                    .db()
                    .open_tree(tree)?
                    .insert(hex::decode(key)?, hex::decode(value)?)?;
                summary.raw += 1;
            }
            _ => bail!("backup has a header or end record in the middle"),
        }
    }
    if summary.sealed + summary.raw != expected {
        bail!(
            "backup says {expected} records but holds {}",
            summary.sealed + summary.raw
        );
    }
    store.flush()?;
    store
        .audit()
        .verify()
        .map_err(|e| anyhow!("restored audit log does not verify: {e}"))?;
    secrets.write_new(secrets_path)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::PatientRecord;

    #[test]
    fn backup_restores_records_users_and_audit_and_hides_them() {
        let src = tempfile::tempdir().unwrap();
        let secrets = Secrets::generate();
        let store = SledKeyStore::open(&src.path().join("ks"), &secrets).unwrap();
        let rec = PatientRecord {
            patient_id: "MRN-SECRET-42".into(),
            issuer: Some("HOSP".into()),
            name: Some("Doe^Jane".into()),
            birth_date: Some("19700101".into()),
        };
        store.put_patient("PSEUDO1", &rec).unwrap();
        store.put_uid("2.25.7", "1.2.840.99").unwrap();
        crate::auth::UserStore::open(store.db())
            .unwrap()
            .add("alice", &[crate::auth::Role::Reid])
            .unwrap();
        store
            .audit()
            .append("cli:x", "reid.patient", "PSEUDO1", "test", None, "revealed")
            .unwrap();
        let mut file = Vec::new();
        let pass = "correct horse battery staple";
        let s = write(&store, &secrets, pass, &mut file).unwrap();
        assert_eq!(s, Summary { sealed: 2, raw: 3 });
        for needle in [
            "MRN-SECRET-42",
            "Doe^Jane",
            "1.2.840.99",
            "alice",
            "PSEUDO1",
        ] {
            assert!(
                !file.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle}"
            );
        }
        assert!(write(&store, &secrets, "short", Vec::new()).is_err());

        let dst = tempfile::tempdir().unwrap();
        let (sp, kd) = (dst.path().join("secrets.toml"), dst.path().join("ks"));
        let err = restore(&file[..], "wrong passphrase!!", &sp, &kd).unwrap_err();
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        let mut cut = file.clone();
        cut.truncate(file.len() - 5);
        assert!(restore(&cut[..], pass, &sp, &kd).is_err());
        assert!(!sp.exists());

        let r = restore(&file[..], pass, &sp, &kd).unwrap();
        assert_eq!(r, Summary { sealed: 2, raw: 3 });
        let restored = Secrets::load(&sp).unwrap();
        assert_eq!(restored.pseudonym_key, secrets.pseudonym_key);
        assert_ne!(restored.encryption_key, secrets.encryption_key);
        let store2 = SledKeyStore::open(&kd, &restored).unwrap();
        assert_eq!(store2.get_patient("PSEUDO1").unwrap(), Some(rec));
        assert_eq!(
            store2.get_uid("2.25.7").unwrap().as_deref(),
            Some("1.2.840.99")
        );
        assert_eq!(store2.audit().verify(), Ok(1));
        assert!(
            restore(&file[..], pass, &sp, &kd).is_err(),
            "refuses to overwrite"
        );
    }

    #[test]
    fn a_restore_that_fails_midway_writes_no_secrets_file() {
        let pass = "correct horse battery staple";
        let mut file = Vec::new();
        let mut w = FrameWriter::start(&mut file, pass).unwrap();
        let lines = [
            Line::Header {
                version: 1,
                created: "2026-12-07T00:00:00Z".into(),
                pseudonym_key: hex::encode([7u8; 32]),
                key_id: "k".into(),
            },
            Line::Raw {
                tree: USERS_TREE.into(),
                key: hex::encode("alice"),
                value: hex::encode("{}"),
            },
            Line::Raw {
                tree: "no-such-tree".into(),
                key: "00".into(),
                value: "00".into(),
            },
            Line::End { records: 2 },
        ];
        for l in &lines {
            w.line(l).unwrap();
        }
        w.frame(true).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let (sp, kd) = (dst.path().join("secrets.toml"), dst.path().join("ks"));
        let err = restore(&file[..], pass, &sp, &kd).unwrap_err();
        assert!(err.to_string().contains("unknown tree"), "{err}");
        // Half imported: no secrets, so no gateway can open this store.
        assert!(!sp.exists());
        let again = restore(&file[..], pass, &sp, &kd).unwrap_err();
        assert!(again.to_string().contains("delete that folder"), "{again}");
    }
}
