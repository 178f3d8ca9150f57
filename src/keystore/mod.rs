//! The reverse map: from pseudonyms back to the identities they replace.
//!
//! De-identification replaces patient identifiers, UIDs and accession numbers
//! with keyed pseudonyms. Re-identification (for a clinical follow-up, a
//! withdrawn consent, an incident) needs the way back, so every replacement is
//! recorded here. That map *is* PHI, which drives the design:
//!
//! * **Keys are pseudonyms** (not PHI), **values are sealed** with
//!   XChaCha20-Poly1305 ([`RecordCipher`]). Whoever copies the database files
//!   without the [`Secrets`] file learns nothing about anybody.
//! * Each sealed value is bound (AEAD associated data) to its tree and key, so
//!   an attacker with write access cannot move a record under another
//!   pseudonym to make a look-up return the wrong person.
//! * Writes are **insert-only** (`put_*` never overwrites): a pseudonym, once
//!   issued, always resolves to the identity it was first issued for, even with
//!   concurrent writers.
//! * Every look-up is meant to be recorded in the hash-chained, append-only
//!   [`AuditLog`], which detects edits, removals, reordering and truncation.
//!
//! [`KeyStore`] is a trait with two backends: [`SledKeyStore`], the embedded,
//! single-node default, and [`PgKeyStore`], a PostgreSQL database shared by
//! gateway replicas (`[keystore] backend = "postgres"`).

pub mod audit;
pub mod backup;
pub mod crypto;
pub(crate) mod kind;
pub mod postgres;
pub mod secrets;
pub mod sled_store;

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub use audit::{AuditError, AuditLog, AuditRecord};
pub use crypto::{CryptoError, RecordCipher};
pub use postgres::PgKeyStore;
pub use secrets::Secrets;
pub use sled_store::SledKeyStore;

/// The identity behind a patient pseudonym.
///
/// Only what is needed to re-identify is kept; everything else in the original
/// instance is discarded by the de-identification profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRecord {
    /// Original PatientID (0010,0020).
    pub patient_id: String,
    /// Original IssuerOfPatientID (0010,0021), if any.
    pub issuer: Option<String>,
    /// Original PatientName (0010,0010), if any.
    pub name: Option<String>,
    /// Original PatientBirthDate (0010,0030), if any.
    pub birth_date: Option<String>,
}

/// Storage of the reverse map, independent of the backend.
///
/// `put_*` are idempotent and insert-only: if a record already exists under the
/// pseudonym it is left untouched (the first writer wins). This keeps the hot
/// path cheap (the same patient arrives with every instance of every study)
/// and makes a pseudonym's meaning immutable.
pub trait KeyStore: Send + Sync {
    /// Records the identity behind a patient pseudonym (no-op if known).
    fn put_patient(&self, pseudonym: &str, rec: &PatientRecord) -> anyhow::Result<()>;
    /// Records the original UID behind a replacement UID (no-op if known).
    fn put_uid(&self, new_uid: &str, original: &str) -> anyhow::Result<()>;
    /// Records the original accession number behind a pseudonym (no-op if known).
    fn put_accession(&self, pseudonym: &str, original: &str) -> anyhow::Result<()>;
    /// Looks up the identity behind a patient pseudonym.
    fn get_patient(&self, pseudonym: &str) -> anyhow::Result<Option<PatientRecord>>;
    /// Looks up the original UID behind a replacement UID.
    fn get_uid(&self, new_uid: &str) -> anyhow::Result<Option<String>>;
    /// Looks up the original accession number behind a pseudonym.
    fn get_accession(&self, pseudonym: &str) -> anyhow::Result<Option<String>>;
    /// Records the original pixels a pixel route replaced in the instance
    /// now called `sop_uid` (no-op if known).
    fn put_pixels(&self, sop_uid: &str, original: &[u8]) -> anyhow::Result<()>;
    /// The original pixels replaced in instance `sop_uid`.
    fn get_pixels(&self, sop_uid: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Makes every previous `put_*` durable.
    fn flush(&self) -> anyhow::Result<()>;
    /// Appends an event of the gateway itself (actor "gateway") to the
    /// audit chain, durably: `subject` is pseudonymous (a new UID), and
    /// `reason` names kinds of data, never values.
    fn audit_event(
        &self,
        action: &str,
        subject: &str,
        reason: &str,
        outcome: &str,
    ) -> anyhow::Result<()>;
}

/// Default bound of [`KnownKeys`]; ~100k short keys is a few MiB at most.
pub(crate) const KNOWN_KEYS_CAP: usize = 100_000;

/// In-memory set of `(tree, key)` pairs known to exist in the backend.
///
/// Lets `put_*` skip the backend read (and the encryption) for pseudonyms seen
/// before, which is the common case: one patient, thousands of instances.
/// Bounded by clearing when full: a miss only costs one backend read, so a
/// crude eviction is enough and avoids an LRU dependency.
pub(crate) struct KnownKeys {
    set: Mutex<HashSet<Vec<u8>>>,
    cap: usize,
}

impl KnownKeys {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            set: Mutex::new(HashSet::new()),
            cap,
        }
    }

    fn entry(tree: &str, key: &str) -> Vec<u8> {
        let mut e = Vec::with_capacity(tree.len() + 1 + key.len());
        e.extend_from_slice(tree.as_bytes());
        e.push(0);
        e.extend_from_slice(key.as_bytes());
        e
    }

    /// A poisoned lock only means another thread panicked mid-insert into a
    /// cache; the set is still valid, so recover instead of propagating.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn contains(&self, tree: &str, key: &str) -> bool {
        self.lock().contains(&Self::entry(tree, key))
    }

    pub(crate) fn insert(&self, tree: &str, key: &str) {
        let mut set = self.lock();
        if set.len() >= self.cap {
            set.clear();
        }
        set.insert(Self::entry(tree, key));
    }

    #[cfg(test)]
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_is_bounded_and_separates_trees() {
        let k = KnownKeys::new(3);
        k.insert("patients", "a");
        assert!(k.contains("patients", "a"));
        assert!(!k.contains("uids", "a"));
        k.insert("patients", "b");
        k.insert("patients", "c");
        k.insert("patients", "d"); // full: cleared first
        assert!(k.contains("patients", "d"));
        assert!(!k.contains("patients", "a"));
        k.clear();
        assert!(!k.contains("patients", "d"));
    }
}
