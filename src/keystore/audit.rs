//! Tamper-evident log of re-identification look-ups.
//!
//! Re-identifying a patient must leave a trace that the person doing it cannot
//! quietly erase. Records are append-only and hash-chained: each carries the
//! SHA-256 of its own canonical content and the hash of its predecessor, so an
//! edit, a removal or a reordering breaks the chain. Removing the *last*
//! records leaves a valid shorter chain, so a head pointer (last seq + last
//! hash) is kept in a separate tree and updated in the same transaction as the
//! append; [`AuditLog::verify`] compares the chain's end against it.
//!
//! This is tamper *evidence* against edits of the database files, not
//! protection against someone who rewrites the whole chain and the head (the
//! log is not signed); export it regularly ([`AuditLog::export_jsonl`]) to a
//! place the operator cannot write to for that.
//!
//! The log stores only what the caller passes: callers must pass the pseudonym
//! or UID looked up, never the revealed identity.

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;
use thiserror::Error;

/// Tree holding the records, keyed by big-endian `seq`.
pub const AUDIT_TREE: &str = "audit";
/// Tree holding the head pointer.
pub const AUDIT_HEAD_TREE: &str = "audit_head";
const HEAD_KEY: &[u8] = b"head";
/// `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Domain separation for the record hash, versioned with the format.
const HASH_DOMAIN: &[u8] = b"deidgate-audit-v1\0";

/// One audit entry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1-based, contiguous position in the log.
    pub seq: u64,
    /// RFC 3339 UTC time of the append.
    pub time: String,
    /// Who asked (user, service account).
    pub actor: String,
    /// What was done, e.g. `reveal_patient`.
    pub action: String,
    /// The pseudonym or UID looked up (never the revealed identity).
    pub subject: String,
    /// Why it was asked.
    pub reason: String,
    /// Authorising ticket, if any.
    pub ticket: Option<String>,
    /// Result, e.g. `found`, `not_found`, `denied`.
    pub outcome: String,
    /// `hash` of the previous record ([`GENESIS_HASH`] for seq 1).
    pub prev_hash: String,
    /// Hex SHA-256 over the canonical serialization of all other fields.
    pub hash: String,
}

/// All fields but `hash`, in a fixed order: the canonical hash input.
#[derive(Serialize)]
struct HashInput<'a> {
    seq: u64,
    time: &'a str,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    reason: &'a str,
    ticket: Option<&'a str>,
    outcome: &'a str,
    prev_hash: &'a str,
}

impl AuditRecord {
    /// Recomputes the hash this record should carry.
    pub fn compute_hash(&self) -> String {
        let input = HashInput {
            seq: self.seq,
            time: &self.time,
            actor: &self.actor,
            action: &self.action,
            subject: &self.subject,
            reason: &self.reason,
            ticket: self.ticket.as_deref(),
            outcome: &self.outcome,
            prev_hash: &self.prev_hash,
        };
        // Serializing a struct of strings and integers cannot fail; JSON of a
        // struct has a fixed field order and escaping, hence canonical.
        let json = serde_json::to_vec(&input).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(HASH_DOMAIN);
        h.update(&json);
        hex::encode(h.finalize())
    }
}

/// The head pointer: where the chain must end.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

/// Receives each stored record of a walk: (stored seq, JSON body).
pub(crate) type RecordVisitor<'a> = dyn FnMut(u64, &[u8]) -> Result<(), AuditError> + 'a;

/// A chain kept outside this process's sled database (the PostgreSQL key
/// store): one chain shared by every replica. [`AuditLog`] hands every
/// operation to it; the record format, hashing and checks stay here.
pub(crate) trait SharedAudit: Send + Sync {
    /// Appends after the current head, atomically with moving the head.
    fn append(&self, f: &NewRecord<'_>) -> Result<AuditRecord>;
    /// Feeds every stored record, in seq order, as (stored seq, JSON body),
    /// and returns the head pointer (`None` for an empty chain), all read
    /// from one snapshot so that concurrent appends do not look like damage.
    fn walk(&self, f: &mut RecordVisitor<'_>) -> Result<Option<Head>, AuditError>;
    /// Number of records stored.
    fn count(&self) -> Result<usize>;
}

/// Walks a chain record by record in seq order, then checks the head.
pub(crate) struct ChainCheck {
    prev_hash: String,
    expected: u64,
}

impl ChainCheck {
    pub(crate) fn new() -> Self {
        Self {
            prev_hash: GENESIS_HASH.to_string(),
            expected: 1,
        }
    }

    /// The next stored record: `seq` is where it is stored.
    pub(crate) fn step(&mut self, seq: u64, value: &[u8]) -> Result<(), AuditError> {
        let rec = decode_record(seq, value)?;
        check_record(&rec, seq, self.expected, &self.prev_hash)?;
        self.prev_hash = rec.hash;
        self.expected += 1;
        Ok(())
    }

    /// Compares the chain's end with the head pointer; the record count.
    pub(crate) fn finish(self, head: Option<Head>) -> Result<usize, AuditError> {
        let last_seq = self.expected - 1;
        check_head(head, last_seq, &self.prev_hash)?;
        usize::try_from(last_seq).map_err(|e| AuditError::Storage(e.to_string()))
    }
}

/// Why [`AuditLog::verify`] rejected the log.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuditError {
    /// The record's content no longer matches its hash.
    #[error("audit record {seq} was edited: its content does not match its hash")]
    Edited { seq: u64 },
    /// A seq is missing from the sequence.
    #[error("audit record {seq} was removed (the next record found is {found})")]
    Removed { seq: u64, found: u64 },
    /// A record sits under another seq's key.
    #[error(
        "audit record stored at seq {seq} claims seq {claimed}: records were reordered or moved"
    )]
    Reordered { seq: u64, claimed: u64 },
    /// The record does not link to its predecessor's hash.
    #[error("audit record {seq} does not link to record {prev}: a record was replaced or reordered", prev = seq - 1)]
    BrokenLink { seq: u64 },
    /// The chain ends before the head pointer: trailing records were removed.
    #[error("audit log truncated: the head says the last record is {head_seq}, but the log ends at {last_seq}; record {seq} onwards was removed", seq = last_seq + 1)]
    Truncated { head_seq: u64, last_seq: u64 },
    /// Records exist past the head pointer: written outside [`AuditLog::append`].
    #[error(
        "audit record {seq} is past the head (seq {head_seq}): it was not written by the audit log"
    )]
    PastHead { seq: u64, head_seq: u64 },
    /// The last record is not the one the head pointer names.
    #[error("audit record {seq} is not the record the head points to: it was replaced")]
    HeadMismatch { seq: u64 },
    /// Records exist but the head pointer is gone.
    #[error("audit head pointer is missing although the log has {count} records: it was removed")]
    HeadMissing { count: usize },
    /// A record (or the head) cannot be decoded.
    #[error("audit record {seq} is unreadable: {reason}")]
    Corrupt { seq: u64, reason: String },
    /// The database itself failed.
    #[error("audit storage error: {0}")]
    Storage(String),
}

impl AuditError {
    /// The first bad seq, when the error names one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Self::Edited { seq }
            | Self::Removed { seq, .. }
            | Self::Reordered { seq, .. }
            | Self::BrokenLink { seq }
            | Self::PastHead { seq, .. }
            | Self::HeadMismatch { seq }
            | Self::Corrupt { seq, .. } => Some(*seq),
            Self::Truncated { last_seq, .. } => Some(last_seq + 1),
            Self::HeadMissing { .. } | Self::Storage(_) => None,
        }
    }
}

impl From<sled::Error> for AuditError {
    fn from(e: sled::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

/// Append-only, hash-chained audit log stored in the `audit` tree.
///
/// Cheap to clone; clones share the append lock. Appends are also atomic
/// across processes thanks to the sled transaction, the lock only avoids
/// transaction retries inside one process.
#[derive(Clone)]
pub struct AuditLog {
    /// Set for a shared chain: every operation goes there, the sled trees
    /// below are left unused.
    shared: Option<Arc<dyn SharedAudit>>,
    db: sled::Db,
    records: sled::Tree,
    head: sled::Tree,
    append_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("records", &self.records.len())
            .finish()
    }
}

/// Reason an append transaction aborted.
#[derive(Debug, Error)]
enum AppendAbort {
    #[error("audit head is unreadable: {0}")]
    BadHead(String),
    #[error("audit record {0} already exists without a head pointer; run verify")]
    Unanchored(u64),
}

impl AuditLog {
    /// Opens (or creates) the audit trees in `db`.
    pub fn open(db: &sled::Db) -> Result<Self> {
        Ok(Self {
            db: db.clone(),
            records: db.open_tree(AUDIT_TREE).context("opening audit tree")?,
            head: db
                .open_tree(AUDIT_HEAD_TREE)
                .context("opening audit head tree")?,
            append_lock: Arc::new(Mutex::new(())),
            shared: None,
        })
    }

    /// This log, but kept in `shared` instead of the local trees.
    pub(crate) fn with_shared(mut self, shared: Arc<dyn SharedAudit>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Appends a record and makes it durable before returning.
    ///
    /// The record and the head pointer are written in one transaction so the
    /// head can never disagree with the chain after a crash.
    pub fn append(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        reason: &str,
        ticket: Option<&str>,
        outcome: &str,
    ) -> Result<AuditRecord> {
        let fields = NewRecord {
            actor,
            action,
            subject,
            reason,
            ticket,
            outcome,
        };
        if let Some(shared) = &self.shared {
            return shared.append(&fields);
        }
        // The guard protects no data, so a poisoned lock is still usable.
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let rec = (&self.records, &self.head)
            .transaction(|(records, head)| append_tx(records, head, &fields))
            .map_err(|e| anyhow::anyhow!("appending audit record: {e}"))?;
        self.db.flush().context("flushing audit log")?;
        Ok(rec)
    }

    /// Checks the whole chain and the head pointer; returns the record count.
    pub fn verify(&self) -> Result<usize, AuditError> {
        let mut check = ChainCheck::new();
        if let Some(shared) = &self.shared {
            let head = shared.walk(&mut |seq, value| check.step(seq, value))?;
            return check.finish(head);
        }
        for item in self.records.iter() {
            let (key, value) = item?;
            check.step(decode_seq(&key)?, &value)?;
        }
        check.finish(read_head(&self.head)?)
    }

    /// Writes every record as one JSON line, in seq order; returns the count.
    pub fn export_jsonl(&self, mut w: impl Write) -> Result<usize> {
        let mut n = 0;
        self.each_record(&mut |rec| {
            serde_json::to_writer(&mut w, &rec).context("writing audit export")?;
            w.write_all(b"\n").context("writing audit export")?;
            n += 1;
            Ok(())
        })?;
        w.flush().context("flushing audit export")?;
        Ok(n)
    }

    /// Records matching `filter`, in seq order.
    pub fn list(&self, filter: impl Fn(&AuditRecord) -> bool) -> Result<Vec<AuditRecord>> {
        let mut out = Vec::new();
        self.each_record(&mut |rec| {
            if filter(&rec) {
                out.push(rec);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with every record, in seq order.
    fn each_record(&self, f: &mut dyn FnMut(AuditRecord) -> Result<()>) -> Result<()> {
        if let Some(shared) = &self.shared {
            let mut failed = None;
            shared
                .walk(&mut |seq, value| {
                    let rec = decode_record(seq, value)?;
                    f(rec).map_err(|e| {
                        let m = format!("{e:#}");
                        failed = Some(e);
                        AuditError::Storage(m)
                    })
                })
                .map_err(|e| failed.take().unwrap_or_else(|| e.into()))?;
            return Ok(());
        }
        for rec in self.iter_records() {
            f(rec?)?;
        }
        Ok(())
    }

    /// Number of records stored (walks the tree: O(n)).
    pub fn len(&self) -> usize {
        match &self.shared {
            Some(shared) => shared.count().unwrap_or(0),
            None => self.records.len(),
        }
    }

    /// Whether the log has no records.
    pub fn is_empty(&self) -> bool {
        match &self.shared {
            Some(_) => self.len() == 0,
            None => self.records.is_empty(),
        }
    }

    fn iter_records(&self) -> impl Iterator<Item = Result<AuditRecord>> + '_ {
        self.records.iter().map(|item| {
            let (key, value) = item.context("reading audit log")?;
            let seq = decode_seq(&key)?;
            Ok(decode_record(seq, &value)?)
        })
    }
}

/// Caller-supplied fields of a record being appended.
pub(crate) struct NewRecord<'a> {
    pub(crate) actor: &'a str,
    pub(crate) action: &'a str,
    pub(crate) subject: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) ticket: Option<&'a str>,
    pub(crate) outcome: &'a str,
}

impl NewRecord<'_> {
    /// The record to store at `seq` after a record hashed `prev_hash`.
    pub(crate) fn at(&self, seq: u64, prev_hash: String) -> AuditRecord {
        let mut rec = AuditRecord {
            seq,
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            actor: self.actor.to_string(),
            action: self.action.to_string(),
            subject: self.subject.to_string(),
            reason: self.reason.to_string(),
            ticket: self.ticket.map(str::to_string),
            outcome: self.outcome.to_string(),
            prev_hash,
            hash: String::new(),
        };
        rec.hash = rec.compute_hash();
        rec
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<AppendAbort>>;

/// Body of the append transaction; may be re-run by sled on conflict.
fn append_tx(
    records: &TransactionalTree,
    head: &TransactionalTree,
    f: &NewRecord<'_>,
) -> TxResult<AuditRecord> {
    let prev = match head.get(HEAD_KEY)? {
        Some(v) => Some(serde_json::from_slice::<Head>(&v).map_err(|e| {
            ConflictableTransactionError::Abort(AppendAbort::BadHead(e.to_string()))
        })?),
        None => None,
    };
    let (seq, prev_hash) = match prev {
        Some(h) => (h.seq + 1, h.hash),
        None => (1, GENESIS_HASH.to_string()),
    };
    // Never overwrite: a record already at `seq` means the head is behind.
    if records.get(seq.to_be_bytes())?.is_some() {
        return Err(ConflictableTransactionError::Abort(
            AppendAbort::Unanchored(seq),
        ));
    }
    let rec = f.at(seq, prev_hash);
    let new_head = Head {
        seq,
        hash: rec.hash.clone(),
    };
    records.insert(seq.to_be_bytes().to_vec(), to_json(&rec))?;
    head.insert(HEAD_KEY, to_json(&new_head))?;
    Ok(rec)
}

fn check_head(head: Option<Head>, last_seq: u64, last_hash: &str) -> Result<(), AuditError> {
    let Some(head) = head else {
        return match last_seq {
            0 => Ok(()),
            n => Err(AuditError::HeadMissing { count: n as usize }),
        };
    };
    if head.seq > last_seq {
        return Err(AuditError::Truncated {
            head_seq: head.seq,
            last_seq,
        });
    }
    if head.seq < last_seq {
        return Err(AuditError::PastHead {
            seq: head.seq + 1,
            head_seq: head.seq,
        });
    }
    if head.hash != last_hash {
        return Err(AuditError::HeadMismatch { seq: last_seq });
    }
    Ok(())
}

/// Serializing these plain structs cannot fail.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn check_record(
    rec: &AuditRecord,
    seq: u64,
    expected: u64,
    prev_hash: &str,
) -> Result<(), AuditError> {
    if rec.seq != seq {
        return Err(AuditError::Reordered {
            seq,
            claimed: rec.seq,
        });
    }
    if seq != expected {
        return Err(AuditError::Removed {
            seq: expected,
            found: seq,
        });
    }
    if rec.compute_hash() != rec.hash {
        return Err(AuditError::Edited { seq });
    }
    if rec.prev_hash != prev_hash {
        return Err(AuditError::BrokenLink { seq });
    }
    Ok(())
}

fn decode_seq(key: &[u8]) -> Result<u64, AuditError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| AuditError::Corrupt {
            seq: 0,
            reason: format!("key {} is not an 8-byte seq", hex::encode(key)),
        })
}

fn decode_record(seq: u64, value: &[u8]) -> Result<AuditRecord, AuditError> {
    serde_json::from_slice(value).map_err(|e| AuditError::Corrupt {
        seq,
        reason: e.to_string(),
    })
}

fn read_head(tree: &sled::Tree) -> Result<Option<Head>, AuditError> {
    match tree.get(HEAD_KEY)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| AuditError::Corrupt {
                seq: 0,
                reason: format!("head pointer: {e}"),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_tmp() -> (tempfile::TempDir, sled::Db, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let log = AuditLog::open(&db).unwrap();
        (dir, db, log)
    }

    fn append_n(log: &AuditLog, n: usize) {
        for i in 0..n {
            log.append(
                "alice",
                "reveal_patient",
                &format!("PSEUDO{i}"),
                "clinical follow-up",
                Some("TICKET-1"),
                "found",
            )
            .unwrap();
        }
    }

    fn key(seq: u64) -> [u8; 8] {
        seq.to_be_bytes()
    }

    #[test]
    fn append_five_then_verify_ok() {
        let (_d, _db, log) = open_tmp();
        assert_eq!(log.verify(), Ok(0));
        append_n(&log, 5);
        assert_eq!(log.verify(), Ok(5));
        let all = log.list(|_| true).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].prev_hash, GENESIS_HASH);
        for w in all.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash);
            assert_eq!(w[1].seq, w[0].seq + 1);
        }
        assert!(chrono::DateTime::parse_from_rfc3339(&all[0].time).is_ok());
        assert!(all[0].time.ends_with('Z'));
    }

    #[test]
    fn edited_record_is_detected() {
        let (_d, _db, log) = open_tmp();
        append_n(&log, 5);
        let mut rec = decode_record(3, &log.records.get(key(3)).unwrap().unwrap()).unwrap();
        rec.reason = "just curious".into();
        log.records.insert(key(3), to_json(&rec)).unwrap();
        let err = log.verify().unwrap_err();
        assert_eq!(err, AuditError::Edited { seq: 3 });
        assert!(err.to_string().contains("record 3 was edited"));
    }

    #[test]
    fn edited_and_rehashed_record_breaks_next_link() {
        let (_d, _db, log) = open_tmp();
        append_n(&log, 5);
        let mut rec = decode_record(2, &log.records.get(key(2)).unwrap().unwrap()).unwrap();
        rec.subject = "OTHER".into();
        rec.hash = rec.compute_hash();
        log.records.insert(key(2), to_json(&rec)).unwrap();
        assert_eq!(log.verify(), Err(AuditError::BrokenLink { seq: 3 }));
    }

    #[test]
    fn removed_middle_record_is_detected() {
        let (_d, _db, log) = open_tmp();
        append_n(&log, 5);
        log.records.remove(key(3)).unwrap();
        let err = log.verify().unwrap_err();
        assert_eq!(err, AuditError::Removed { seq: 3, found: 4 });
        assert_eq!(err.seq(), Some(3));
    }

    #[test]
    fn removed_last_record_is_detected_by_head() {
        let (_d, _db, log) = open_tmp();
        append_n(&log, 5);
        log.records.remove(key(5)).unwrap();
        let err = log.verify().unwrap_err();
        assert_eq!(
            err,
            AuditError::Truncated {
                head_seq: 5,
                last_seq: 4
            }
        );
        assert_eq!(err.seq(), Some(5));
    }

    #[test]
    fn removed_everything_is_detected_by_head() {
        let (_d, _db, log) = open_tmp();
        append_n(&log, 2);
        log.records.clear().unwrap();
        assert!(matches!(log.verify(), Err(AuditError::Truncated { .. })));
    }

    #[test]
    fn removed_head_is_detected() {
        let (_d, _db, log) = open_tmp();
        append_n(&log, 2);
        log.head.clear().unwrap();
        assert_eq!(log.verify(), Err(AuditError::HeadMissing { count: 2 }));
        // And appending refuses to fork the chain from seq 1.
        assert!(log
            .append("a", "b", "c", "d", None, "e")
            .unwrap_err()
            .to_string()
            .contains("without a head pointer"));
    }

    #[test]
    fn reordered_records_are_detected() {
        let (_d, _db, log) = open_tmp();
        append_n(&log, 5);
        let r2 = log.records.get(key(2)).unwrap().unwrap();
        let r3 = log.records.get(key(3)).unwrap().unwrap();
        log.records.insert(key(2), r3).unwrap();
        log.records.insert(key(3), r2).unwrap();
        assert_eq!(
            log.verify(),
            Err(AuditError::Reordered { seq: 2, claimed: 3 })
        );
    }

    #[test]
    fn record_past_head_is_detected() {
        let (_d, _db, log) = open_tmp();
        append_n(&log, 2);
        let mut fake = decode_record(2, &log.records.get(key(2)).unwrap().unwrap()).unwrap();
        fake.prev_hash = fake.hash.clone();
        fake.seq = 3;
        fake.hash = fake.compute_hash();
        log.records.insert(key(3), to_json(&fake)).unwrap();
        assert_eq!(
            log.verify(),
            Err(AuditError::PastHead {
                seq: 3,
                head_seq: 2
            })
        );
    }

    #[test]
    fn export_and_list() {
        let (_d, _db, log) = open_tmp();
        append_n(&log, 3);
        log.append("bob", "reveal_uid", "2.25.1", "qa", None, "not_found")
            .unwrap();
        let mut buf = Vec::new();
        assert_eq!(log.export_jsonl(&mut buf).unwrap(), 4);
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let last: AuditRecord = serde_json::from_str(lines[3]).unwrap();
        assert_eq!(last.actor, "bob");
        assert_eq!(last.ticket, None);
        let bobs = log.list(|r| r.actor == "bob").unwrap();
        assert_eq!(bobs.len(), 1);
        assert_eq!(bobs[0].seq, 4);
    }

    #[test]
    fn concurrent_appends_keep_one_chain() {
        let (_d, _db, log) = open_tmp();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                // A separately opened log shares no mutex: the transaction
                // alone must keep the chain linear.
                let log = if t % 2 == 0 {
                    log.clone()
                } else {
                    AuditLog::open(&log.db).unwrap()
                };
                std::thread::spawn(move || {
                    for i in 0..25 {
                        log.append(&format!("t{t}"), "reveal", &format!("{i}"), "r", None, "ok")
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(log.verify(), Ok(100));
    }

    #[test]
    fn chain_continues_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = sled::open(&path).unwrap();
            append_n(&AuditLog::open(&db).unwrap(), 2);
        }
        let db = crate::keystore::sled_store::open_db(&path).unwrap();
        let log = AuditLog::open(&db).unwrap();
        assert_eq!(log.append("a", "b", "c", "d", None, "e").unwrap().seq, 3);
        assert_eq!(log.verify(), Ok(3));
    }
}
