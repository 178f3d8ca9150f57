//! Embedded key store on sled.
//!
//! Layout (one sled database, one directory):
//!
//! | tree            | key                   | value                               |
//! |-----------------|-----------------------|-------------------------------------|
//! | `patients`      | patient pseudonym     | sealed JSON [`PatientRecord`]       |
//! | `uids`          | replacement UID       | sealed JSON string (original UID)   |
//! | `accessions`    | accession pseudonym   | sealed JSON string (original value) |
//! | `pixel_regions` | de-identified SOP UID | sealed original pixels of replaced regions |
//! | `audit`, `audit_head` | see [`AuditLog`] |                                    |
//! | `keystore_meta` | `key_id/<tree>`       | key id that sealed that tree        |
//!
//! Keys are pseudonyms, so they may be stored in clear (they are what the
//! de-identified instances carry anyway); every identifying value is sealed
//! with AAD `"<tree>\0<key>"`, so a sealed value only opens under the key it
//! was written for.
//!
//! The per-tree key id in `keystore_meta` makes a wrong secrets file fail with
//! a clear message instead of a wall of authentication errors, and makes an
//! interrupted [`SledKeyStore::rotate_encryption`] resumable: each tree is
//! re-sealed and re-labelled in one transaction, so every tree is entirely
//! under one key, and a rerun skips trees already under the new key.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::audit::AuditLog;
use super::crypto::RecordCipher;
use super::kind::Kind;
pub use super::kind::{ACCESSIONS_TREE, PATIENTS_TREE, PIXELS_TREE, UIDS_TREE};
use super::postgres::PgKeyStore;
use super::secrets::Secrets;
use super::{KeyStore, KnownKeys, PatientRecord, KNOWN_KEYS_CAP};

/// Tree recording which key id sealed each tree.
pub const META_TREE: &str = "keystore_meta";

/// The current cipher, and the trees it cannot open.
struct CipherState {
    cipher: RecordCipher,
    key_id: String,
    /// Trees sealed under another key id (wrong secrets file, or a rotation
    /// that was interrupted): any access to them is refused.
    stale: Vec<(Kind, String)>,
}

/// [`KeyStore`] backed by a local sled database.
pub struct SledKeyStore {
    db: sled::Db,
    patients: sled::Tree,
    uids: sled::Tree,
    accessions: sled::Tree,
    pixels: sled::Tree,
    meta: sled::Tree,
    /// Read-locked by every operation, write-locked by a rotation, so no
    /// record is written under the old key while the trees are re-sealed.
    state: RwLock<CipherState>,
    /// Fingerprint of the pseudonym key, to refuse a rotation that would
    /// silently change it.
    pseudonym_fp: [u8; 32],
    known: KnownKeys,
    audit: AuditLog,
    /// The shared key store of a replicated gateway: when set, the reverse
    /// map, sealed pixels, the audit chain and the users live there, and
    /// this sled database keeps only what is local to the replica (spool
    /// log, forward queues, claims).
    shared: Option<Arc<PgKeyStore>>,
}

impl std::fmt::Debug for SledKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledKeyStore")
            .field("patients", &self.patients.len())
            .field("uids", &self.uids.len())
            .field("accessions", &self.accessions.len())
            .finish()
    }
}

impl SledKeyStore {
    /// Opens (or creates, mode 0700) the sled database at `dir`.
    ///
    /// Opening with secrets other than those that sealed a non-empty tree
    /// succeeds with a warning, but every access to that tree fails with an
    /// error naming both key ids (so a rotation can still be resumed).
    pub fn open(dir: &Path, secrets: &Secrets) -> Result<Self> {
        create_private_dir(dir)?;
        let db = open_db(dir).with_context(|| {
            format!(
                "opening key store {} (is another deidgate process using it?)",
                dir.display()
            )
        })?;
        Self::from_db(db, secrets)
    }

    fn from_db(db: sled::Db, secrets: &Secrets) -> Result<Self> {
        let open = |name: &str| {
            db.open_tree(name)
                .with_context(|| format!("opening key store tree {name}"))
        };
        let store = Self {
            patients: open(PATIENTS_TREE)?,
            uids: open(UIDS_TREE)?,
            accessions: open(ACCESSIONS_TREE)?,
            pixels: open(PIXELS_TREE)?,
            meta: open(META_TREE)?,
            state: RwLock::new(CipherState {
                cipher: RecordCipher::new(&secrets.encryption_key),
                key_id: secrets.key_id.clone(),
                stale: Vec::new(),
            }),
            pseudonym_fp: Sha256::digest(secrets.pseudonym_key).into(),
            known: KnownKeys::new(KNOWN_KEYS_CAP),
            audit: AuditLog::open(&db)?,
            db,
            shared: None,
        };
        let stale = store.reconcile_key_ids(&secrets.key_id)?;
        store.write_state().stale = stale;
        Ok(store)
    }

    /// Opens the local database at `dir` for a replica whose reverse map,
    /// sealed pixels and audit chain live in the shared `pg` store.
    pub fn open_shared(dir: &Path, secrets: &Secrets, pg: Arc<PgKeyStore>) -> Result<Self> {
        let mut store = Self::open(dir, secrets)?;
        store.audit = store.audit.clone().with_shared(pg.clone());
        store.shared = Some(pg);
        Ok(store)
    }

    /// The shared key store, when this replica uses one.
    pub fn shared(&self) -> Option<&Arc<PgKeyStore>> {
        self.shared.as_ref()
    }

    /// Where the reverse map lives: the shared store, or this one.
    fn reverse_map(&self) -> Option<&dyn KeyStore> {
        self.shared.as_deref().map(|s| s as &dyn KeyStore)
    }

    /// Records `key_id` for unlabelled or empty trees; returns the trees
    /// sealed under another key.
    fn reconcile_key_ids(&self, key_id: &str) -> Result<Vec<(Kind, String)>> {
        let mut stale = Vec::new();
        for kind in Kind::ALL {
            match self.tree_key_id(kind)? {
                Some(id) if id == key_id => {}
                Some(id) if !self.tree(kind).is_empty() => {
                    tracing::warn!(
                        tree = kind.tree_name(),
                        sealed_with = %id,
                        loaded = %key_id,
                        "key store tree is sealed with another key; it will be unreadable"
                    );
                    stale.push((kind, id));
                }
                _ => {
                    self.meta
                        .insert(kind.meta_key(), key_id.as_bytes())
                        .context("writing key store metadata")?;
                }
            }
        }
        Ok(stale)
    }

    fn tree_key_id(&self, kind: Kind) -> Result<Option<String>> {
        let raw = self
            .meta
            .get(kind.meta_key())
            .context("reading key store metadata")?;
        Ok(raw.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The audit log stored in the same database.
    pub fn audit(&self) -> AuditLog {
        self.audit.clone()
    }

    /// The underlying database (for other trees, backups, size reports).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Key id of the encryption key this store currently seals with.
    pub fn key_id(&self) -> String {
        self.read_state().key_id.clone()
    }

    /// Re-seals every record of `patients`, `uids` and `accessions` under
    /// `new_secrets.encryption_key`; returns how many records were re-sealed.
    ///
    /// Pseudonyms (keys) do not change, so `new_secrets` must carry the same
    /// pseudonym key (build it with [`Secrets::with_encryption_key`]). Each
    /// tree is re-sealed and re-labelled atomically; if the process dies
    /// midway, reopen with the OLD secrets and call this again: trees already
    /// under the new key are skipped. Writers are blocked meanwhile, and the
    /// whole tree is staged in memory, so run it during a maintenance window.
    pub fn rotate_encryption(&self, new_secrets: &Secrets) -> Result<usize> {
        if self.shared.is_some() {
            bail!("rotating the encryption key of the PostgreSQL key store is not supported yet");
        }
        let fp: [u8; 32] = Sha256::digest(new_secrets.pseudonym_key).into();
        if fp != self.pseudonym_fp {
            bail!(
                "rotation must keep the pseudonym key (otherwise every patient gets a new \
                 pseudonym); build the new secrets with Secrets::with_encryption_key"
            );
        }
        let mut state = self.write_state();
        let new_cipher = RecordCipher::new(&new_secrets.encryption_key);
        let mut total = 0;
        for kind in Kind::ALL {
            if self.tree_key_id(kind)?.as_deref() == Some(new_secrets.key_id.as_str()) {
                continue; // already done by an interrupted run
            }
            if let Some((_, id)) = state.stale.iter().find(|(k, _)| *k == kind) {
                bail!(
                    "cannot rotate tree {}: it is sealed with key id {id}, which is neither \
                     the loaded key ({}) nor the new one ({})",
                    kind.tree_name(),
                    state.key_id,
                    new_secrets.key_id
                );
            }
            total += self.reseal_tree(kind, &state.cipher, &new_cipher, &new_secrets.key_id)?;
        }
        self.db
            .flush()
            .context("flushing key store after rotation")?;
        state.cipher = new_cipher;
        state.key_id = new_secrets.key_id.clone();
        state.stale.clear();
        tracing::info!(records = total, key_id = %state.key_id, "key store re-encrypted");
        Ok(total)
    }

    /// Re-seals one tree and records its new key id in one transaction.
    fn reseal_tree(
        &self,
        kind: Kind,
        old: &RecordCipher,
        new: &RecordCipher,
        new_key_id: &str,
    ) -> Result<usize> {
        let name = kind.tree_name();
        let mut batch = sled::Batch::default();
        let mut count = 0;
        for item in self.tree(kind).iter() {
            let (key, sealed) = item.with_context(|| format!("reading tree {name}"))?;
            let aad = kind.aad(&key);
            let plain = old
                .open(&aad, &sealed)
                .with_context(|| format!("opening {name} record {}", show_key(&key)))?;
            batch.insert(key, new.seal(&aad, &plain));
            count += 1;
        }
        let meta_key = kind.meta_key();
        (self.tree(kind), &self.meta)
            .transaction(|(tree, meta)| {
                tree.apply_batch(&batch)?;
                meta.insert(meta_key.as_bytes(), new_key_id.as_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| anyhow!("re-sealing tree {name}: {e:?}"))?;
        Ok(count)
    }

    /// Calls `f(tree, key, plaintext)` for every sealed record (for backups);
    /// returns the count.
    pub fn export_plain(
        &self,
        mut f: impl FnMut(&'static str, &[u8], Vec<u8>) -> Result<()>,
    ) -> Result<usize> {
        if self.shared.is_some() {
            bail!(
                "the reverse map is in PostgreSQL: back it up with pg_dump (it holds only \
                 sealed values) and keep the secrets file apart"
            );
        }
        let mut n = 0;
        for kind in Kind::ALL {
            let state = self.state_for(kind)?;
            let name = kind.tree_name();
            for item in self.tree(kind).iter() {
                let (key, sealed) = item.with_context(|| format!("reading tree {name}"))?;
                let plain = state
                    .cipher
                    .open(&kind.aad(&key), &sealed)
                    .with_context(|| format!("opening {name} record {}", show_key(&key)))?;
                f(name, &key, plain)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Seals and inserts one record exported by [`Self::export_plain`]
    /// (insert-only, like every write).
    pub fn import_plain(&self, tree: &str, key: &str, plain: Vec<u8>) -> Result<()> {
        let kind = Kind::from_name(tree).ok_or_else(|| anyhow!("unknown sealed tree {tree:?}"))?;
        self.put_sealed(kind, key, || Ok(plain))
    }

    fn tree(&self, kind: Kind) -> &sled::Tree {
        match kind {
            Kind::Patient => &self.patients,
            Kind::Uid => &self.uids,
            Kind::Accession => &self.accessions,
            Kind::Pixels => &self.pixels,
        }
    }

    /// A poisoned lock means a panic during rotation, before the state was
    /// replaced (it is replaced last), so the old state is still coherent.
    fn read_state(&self) -> RwLockReadGuard<'_, CipherState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, CipherState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The cipher state, provided it can open `kind`.
    fn state_for(&self, kind: Kind) -> Result<RwLockReadGuard<'_, CipherState>> {
        let state = self.read_state();
        if let Some((_, id)) = state.stale.iter().find(|(k, _)| *k == kind) {
            bail!(
                "key store tree {} is sealed with key id {id}, but the loaded secrets have key id {}; \
                 load the matching secrets file (or finish an interrupted rotation)",
                kind.tree_name(),
                state.key_id
            );
        }
        Ok(state)
    }

    /// Insert-only write; `plaintext` is only computed when the key is new.
    fn put_sealed(
        &self,
        kind: Kind,
        key: &str,
        plaintext: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<()> {
        check_key(kind, key)?;
        let name = kind.tree_name();
        if self.known.contains(name, key) {
            return Ok(());
        }
        let state = self.state_for(kind)?;
        let tree = self.tree(kind);
        let exists = tree
            .contains_key(key)
            .with_context(|| format!("reading tree {name}"))?;
        if !exists {
            let sealed = state.cipher.seal(&kind.aad(key.as_bytes()), &plaintext()?);
            let swapped = tree
                .compare_and_swap(key, None::<&[u8]>, Some(sealed))
                .with_context(|| format!("writing tree {name}"))?;
            if swapped.is_err() {
                // Another writer inserted it first: theirs stands.
                tracing::debug!(
                    tree = name,
                    key,
                    "record inserted concurrently; kept the first"
                );
            }
        }
        self.known.insert(name, key);
        Ok(())
    }

    fn get_opened(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>> {
        let name = kind.tree_name();
        let state = self.state_for(kind)?;
        let Some(sealed) = self
            .tree(kind)
            .get(key)
            .with_context(|| format!("reading tree {name}"))?
        else {
            return Ok(None);
        };
        let plain = state
            .cipher
            .open(&kind.aad(key.as_bytes()), &sealed)
            .with_context(|| format!("opening {name} record {key}"))?;
        Ok(Some(plain))
    }

    fn get_string(&self, kind: Kind, key: &str) -> Result<Option<String>> {
        self.get_opened(kind, key)?
            .map(|plain| {
                serde_json::from_slice(&plain)
                    .with_context(|| format!("decoding {} record {key}", kind.tree_name()))
            })
            .transpose()
    }
}

impl KeyStore for SledKeyStore {
    fn put_patient(&self, pseudonym: &str, rec: &PatientRecord) -> Result<()> {
        if let Some(shared) = self.reverse_map() {
            return shared.put_patient(pseudonym, rec);
        }
        self.put_sealed(Kind::Patient, pseudonym, || {
            serde_json::to_vec(rec).context("encoding patient record")
        })
    }

    fn put_uid(&self, new_uid: &str, original: &str) -> Result<()> {
        if let Some(shared) = self.reverse_map() {
            return shared.put_uid(new_uid, original);
        }
        self.put_sealed(Kind::Uid, new_uid, || {
            serde_json::to_vec(original).context("encoding uid record")
        })
    }

    fn put_accession(&self, pseudonym: &str, original: &str) -> Result<()> {
        if let Some(shared) = self.reverse_map() {
            return shared.put_accession(pseudonym, original);
        }
        self.put_sealed(Kind::Accession, pseudonym, || {
            serde_json::to_vec(original).context("encoding accession record")
        })
    }

    fn get_patient(&self, pseudonym: &str) -> Result<Option<PatientRecord>> {
        if let Some(shared) = self.reverse_map() {
            return shared.get_patient(pseudonym);
        }
        self.get_opened(Kind::Patient, pseudonym)?
            .map(|plain| {
                serde_json::from_slice(&plain)
                    .with_context(|| format!("decoding patients record {pseudonym}"))
            })
            .transpose()
    }

    fn get_uid(&self, new_uid: &str) -> Result<Option<String>> {
        if let Some(shared) = self.reverse_map() {
            return shared.get_uid(new_uid);
        }
        self.get_string(Kind::Uid, new_uid)
    }

    fn get_accession(&self, pseudonym: &str) -> Result<Option<String>> {
        if let Some(shared) = self.reverse_map() {
            return shared.get_accession(pseudonym);
        }
        self.get_string(Kind::Accession, pseudonym)
    }

    fn put_pixels(&self, sop_uid: &str, original: &[u8]) -> Result<()> {
        if let Some(shared) = self.reverse_map() {
            return shared.put_pixels(sop_uid, original);
        }
        self.put_sealed(Kind::Pixels, sop_uid, || Ok(original.to_vec()))
    }

    fn get_pixels(&self, sop_uid: &str) -> Result<Option<Vec<u8>>> {
        if let Some(shared) = self.reverse_map() {
            return shared.get_pixels(sop_uid);
        }
        self.get_opened(Kind::Pixels, sop_uid)
    }

    fn audit_event(&self, action: &str, subject: &str, reason: &str, outcome: &str) -> Result<()> {
        self.audit()
            .append("gateway", action, subject, reason, None, outcome)
            .map(|_| ())
    }

    fn flush(&self) -> Result<()> {
        if let Some(shared) = self.reverse_map() {
            shared.flush()?;
        }
        self.db.flush().context("flushing key store")?;
        Ok(())
    }
}

/// An empty key would be a caller bug (a missing pseudonym), not a record.
fn check_key(kind: Kind, key: &str) -> Result<()> {
    if key.is_empty() {
        bail!("empty key for tree {}", kind.tree_name());
    }
    Ok(())
}

fn show_key(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// The database holds PHI (sealed, but still): keep it owner-only.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating key store directory {}", dir.display()))
}

/// Open the sled database, waiting up to 5 s for its file lock: a database
/// closed a moment ago in this process is released by sled's background
/// flusher shortly after the last handle is dropped.
pub fn open_db(dir: &Path) -> sled::Result<sled::Db> {
    let mut tries = 0;
    loop {
        match sled::Config::new().path(dir).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && tries < 100 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn patient() -> PatientRecord {
        PatientRecord {
            patient_id: "MRN-998877".into(),
            issuer: Some("HOSPITAL-ISSUER-X".into()),
            name: Some("DOE^JOHN".into()),
            birth_date: Some("19450317".into()),
        }
    }

    fn tmp() -> (tempfile::TempDir, PathBuf, Secrets) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore");
        (dir, path, Secrets::generate())
    }

    fn err_text(e: anyhow::Error) -> String {
        format!("{e:#}")
    }

    #[test]
    fn put_get_roundtrip() {
        let (_d, path, s) = tmp();
        let ks = SledKeyStore::open(&path, &s).unwrap();
        ks.put_patient("PSEUDO-A", &patient()).unwrap();
        ks.put_uid("2.25.111", "1.2.3.4.5.6.7.8.9").unwrap();
        ks.put_accession("ACC-PSEUDO", "ACC-ORIGINAL-42").unwrap();
        assert_eq!(ks.get_patient("PSEUDO-A").unwrap(), Some(patient()));
        assert_eq!(
            ks.get_uid("2.25.111").unwrap().as_deref(),
            Some("1.2.3.4.5.6.7.8.9")
        );
        assert_eq!(
            ks.get_accession("ACC-PSEUDO").unwrap().as_deref(),
            Some("ACC-ORIGINAL-42")
        );
        assert_eq!(ks.get_patient("unknown").unwrap(), None);
        assert_eq!(ks.get_uid("2.25.999").unwrap(), None);
        assert_eq!(ks.get_accession("nope").unwrap(), None);
        assert!(ks.put_uid("", "1.2").is_err());
    }

    #[test]
    fn put_is_insert_only() {
        let (_d, path, s) = tmp();
        let ks = SledKeyStore::open(&path, &s).unwrap();
        ks.put_uid("2.25.1", "1.2.3").unwrap();
        ks.put_uid("2.25.1", "9.9.9").unwrap(); // cached path
        ks.known.clear();
        ks.put_uid("2.25.1", "8.8.8").unwrap(); // sled path
        assert_eq!(ks.get_uid("2.25.1").unwrap().as_deref(), Some("1.2.3"));
        let before = ks.uids.get("2.25.1").unwrap();
        ks.known.clear();
        ks.put_uid("2.25.1", "1.2.3").unwrap();
        assert_eq!(ks.uids.get("2.25.1").unwrap(), before, "not re-sealed");
    }

    #[test]
    fn concurrent_puts_keep_first_writer() {
        let (_d, path, s) = tmp();
        let ks = Arc::new(SledKeyStore::open(&path, &s).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let ks = Arc::clone(&ks);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        ks.put_accession(&format!("P{i}"), &format!("orig-{t}"))
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(ks.accessions.len(), 50);
        for i in 0..50 {
            let v = ks.get_accession(&format!("P{i}")).unwrap().unwrap();
            assert!(v.starts_with("orig-"));
        }
    }

    #[test]
    fn records_survive_reopen() {
        let (_d, path, s) = tmp();
        {
            let ks = SledKeyStore::open(&path, &s).unwrap();
            ks.put_patient("PSEUDO-A", &patient()).unwrap();
            ks.flush().unwrap();
        }
        let ks = SledKeyStore::open(&path, &s).unwrap();
        assert_eq!(ks.get_patient("PSEUDO-A").unwrap(), Some(patient()));
    }

    #[test]
    fn wrong_secrets_give_a_clear_error() {
        let (_d, path, s) = tmp();
        {
            let ks = SledKeyStore::open(&path, &s).unwrap();
            ks.put_patient("PSEUDO-A", &patient()).unwrap();
        }
        let other = Secrets::generate();
        let ks = SledKeyStore::open(&path, &other).unwrap();
        let e = err_text(ks.get_patient("PSEUDO-A").unwrap_err());
        assert!(e.contains(&s.key_id) && e.contains(&other.key_id), "{e}");
        assert!(ks.put_patient("PSEUDO-B", &patient()).is_err());
        // Empty trees are simply adopted by the new key.
        ks.put_uid("2.25.5", "1.2.5").unwrap();
        assert_eq!(ks.get_uid("2.25.5").unwrap().as_deref(), Some("1.2.5"));
    }

    #[test]
    fn record_moved_to_another_key_does_not_open() {
        let (_d, path, s) = tmp();
        let ks = SledKeyStore::open(&path, &s).unwrap();
        ks.put_patient("PSEUDO-A", &patient()).unwrap();
        let sealed = ks.patients.get("PSEUDO-A").unwrap().unwrap();
        ks.patients.insert("PSEUDO-B", sealed.clone()).unwrap();
        let e = err_text(ks.get_patient("PSEUDO-B").unwrap_err());
        assert!(e.contains("failed authentication"), "{e}");
        // Nor into another tree under the same key.
        ks.accessions.insert("PSEUDO-A", sealed).unwrap();
        assert!(ks.get_accession("PSEUDO-A").is_err());
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn sled_files_contain_no_planted_identifiers() {
        let (_d, path, s) = tmp();
        let planted: [&str; 5] = [
            "DOE^JOHN",
            "MRN-998877",
            "19450317",
            "1.2.3.4.5.6.7.8.9",
            "ACC-ORIGINAL-42",
        ];
        let sealed_sample = {
            let ks = SledKeyStore::open(&path, &s).unwrap();
            for i in 0..200 {
                ks.put_patient(&format!("PSEUDO-{i}"), &patient()).unwrap();
                ks.put_uid(&format!("2.25.{i}"), "1.2.3.4.5.6.7.8.9")
                    .unwrap();
                ks.put_accession(&format!("ACC-P{i}"), "ACC-ORIGINAL-42")
                    .unwrap();
            }
            ks.audit()
                .append(
                    "alice",
                    "reveal_patient",
                    "PSEUDO-1",
                    "follow-up",
                    None,
                    "found",
                )
                .unwrap();
            ks.flush().unwrap();
            // Sanity: the data really is there.
            assert_eq!(ks.get_patient("PSEUDO-7").unwrap(), Some(patient()));
            ks.patients.get("PSEUDO-7").unwrap().unwrap().to_vec()
        };
        let files = files_under(&path);
        assert!(!files.is_empty());
        // Sealed values are stored verbatim: finding one proves the scan
        // really sees the records, so the absence of the planted values means
        // something.
        let mut saw_record = false;
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            saw_record |= contains(&bytes, &sealed_sample);
            for p in planted {
                assert!(
                    !contains(&bytes, p.as_bytes()),
                    "{p} found in {}",
                    f.display()
                );
            }
        }
        assert!(saw_record, "records were not found on disk at all");
    }

    #[test]
    fn rotate_encryption_reseals_everything() {
        let (_d, path, s) = tmp();
        let new = s.with_encryption_key([42u8; 32]);
        {
            let ks = SledKeyStore::open(&path, &s).unwrap();
            ks.put_patient("PSEUDO-A", &patient()).unwrap();
            ks.put_patient("PSEUDO-B", &patient()).unwrap();
            ks.put_uid("2.25.1", "1.2.3").unwrap();
            ks.put_accession("ACC-P", "ACC-1").unwrap();
            let old_sealed = ks.patients.get("PSEUDO-A").unwrap();
            assert_eq!(ks.rotate_encryption(&new).unwrap(), 4);
            assert_ne!(ks.patients.get("PSEUDO-A").unwrap(), old_sealed);
            assert_eq!(ks.key_id(), new.key_id);
            // Still readable and writable in the same process.
            assert_eq!(ks.get_patient("PSEUDO-A").unwrap(), Some(patient()));
            ks.put_uid("2.25.2", "1.2.4").unwrap();
        }
        let ks = SledKeyStore::open(&path, &new).unwrap();
        assert_eq!(ks.get_patient("PSEUDO-B").unwrap(), Some(patient()));
        assert_eq!(ks.get_uid("2.25.1").unwrap().as_deref(), Some("1.2.3"));
        assert_eq!(ks.get_uid("2.25.2").unwrap().as_deref(), Some("1.2.4"));
        assert_eq!(ks.get_accession("ACC-P").unwrap().as_deref(), Some("ACC-1"));
        drop(ks);
        let old = SledKeyStore::open(&path, &s).unwrap();
        assert!(old.get_patient("PSEUDO-A").is_err());
    }

    #[test]
    fn rotate_encryption_resumes_and_refuses_new_pseudonym_key() {
        let (_d, path, s) = tmp();
        let new = s.with_encryption_key([43u8; 32]);
        {
            let ks = SledKeyStore::open(&path, &s).unwrap();
            ks.put_patient("PSEUDO-A", &patient()).unwrap();
            ks.put_uid("2.25.1", "1.2.3").unwrap();
            let e = err_text(ks.rotate_encryption(&Secrets::generate()).unwrap_err());
            assert!(e.contains("pseudonym key"), "{e}");
            // Simulate a crash after the patients tree was rotated.
            let mut state = ks.write_state();
            let new_cipher = RecordCipher::new(&new.encryption_key);
            let n = ks
                .reseal_tree(Kind::Patient, &state.cipher, &new_cipher, &new.key_id)
                .unwrap();
            assert_eq!(n, 1);
            state.stale.clear();
        }
        // Reopen with the old secrets: patients is stale, uids readable.
        let ks = SledKeyStore::open(&path, &s).unwrap();
        assert!(ks.get_patient("PSEUDO-A").is_err());
        assert_eq!(ks.get_uid("2.25.1").unwrap().as_deref(), Some("1.2.3"));
        assert_eq!(ks.rotate_encryption(&new).unwrap(), 1, "only uids left");
        assert_eq!(ks.get_patient("PSEUDO-A").unwrap(), Some(patient()));
        assert_eq!(ks.get_uid("2.25.1").unwrap().as_deref(), Some("1.2.3"));
    }

    #[test]
    fn audit_shares_the_database() {
        let (_d, path, s) = tmp();
        let ks = SledKeyStore::open(&path, &s).unwrap();
        ks.audit()
            .append("alice", "reveal_uid", "2.25.1", "qa", Some("T-1"), "found")
            .unwrap();
        ks.audit()
            .append("bob", "reveal_uid", "2.25.2", "qa", None, "not_found")
            .unwrap();
        assert_eq!(ks.audit().verify(), Ok(2));
        assert!(ks.db().tree_names().iter().any(|n| n == b"audit"));
    }
}
