//! Durable forwarding: one queue per destination in sled, drained by a
//! worker thread with batching per study, exponential back-off, a maximum age
//! and a dead-letter tree. A destination outage queues; it never drops.

use super::queue_index::{Entry, Index};
use crate::net::scu::Peer;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// A DICOM destination as configured under `[[destination]]` with `type = "dicom"`.
#[derive(Debug, Clone)]
pub struct DicomDestination {
    pub name: String,
    pub peer: Peer,
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
    pub max_age_secs: u64,
    pub batch_size: usize,
    /// Where dead-lettered files are kept for operators.
    pub dead_dir: PathBuf,
}

/// One queued instance. Keyed by SOP Instance UID, so enqueueing the same
/// instance again after a crash does not send it twice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    pub path: PathBuf,
    pub sop_class: String,
    pub sop_instance: String,
    pub study_uid: String,
    pub enqueued_at: u64,
    pub attempts: u32,
    pub next_at: u64,
    pub last_error: Option<String>,
}

/// Counters a status page or /metrics reads.
#[derive(Debug, Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    pub warnings: AtomicU64,
    pub retries: AtomicU64,
    pub dead_lettered: AtomicU64,
}

/// The queue of one destination. Open it once per destination and share
/// clones: the clones share the in-memory index of the pending tree.
#[derive(Clone)]
pub struct Queue {
    pub(super) pending: sled::Tree,
    /// Dead letters (kept and managed by the dead-letter module).
    pub(super) dead: sled::Tree,
    index: Arc<Mutex<Index>>,
    pub counters: Arc<Counters>,
}

impl Job {
    pub(super) fn entry(&self) -> Entry {
        Entry {
            sop_instance: self.sop_instance.clone(),
            study_uid: self.study_uid.clone(),
            enqueued_at: self.enqueued_at,
            next_at: self.next_at,
        }
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Queue {
    pub fn open(db: &sled::Db, dest: &str) -> Result<Queue> {
        let pending = db.open_tree(format!("forward/{dest}"))?;
        let mut index = Index::default();
        for kv in pending.iter() {
            let (_, v) = kv?;
            match serde_json::from_slice::<Job>(&v) {
                Ok(j) => index.put(j.entry()),
                Err(_) => {
                    tracing::error!(destination = dest, "unreadable forward queue entry skipped")
                }
            }
        }
        Ok(Queue {
            pending,
            dead: db.open_tree(format!("dead_letter/{dest}"))?,
            index: Arc::new(Mutex::new(index)),
            counters: Arc::new(Counters::default()),
        })
    }

    /// Held by every write of the pending tree, so that the index follows it.
    pub(super) fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().expect("forward index lock")
    }

    /// Add a job. One job per instance:
    /// a newer copy of the same instance replaces a pending one, and the
    /// replaced outbox file is returned for the caller to delete.
    pub fn enqueue(&self, job: &Job) -> Result<Option<PathBuf>> {
        // Not flushed here: the spool keeps the acknowledged original until the
        // pipeline has flushed the database (see spool::settle).
        let mut index = self.index();
        let old = self
            .pending
            .insert(job.sop_instance.as_bytes(), serde_json::to_vec(job)?)?;
        index.put(job.entry());
        Ok(old
            .and_then(|v| serde_json::from_slice::<Job>(&v).ok())
            .map(|j| j.path)
            .filter(|p| *p != job.path))
    }

    /// Replace `old` by `new` (None: remove) only if the queue still holds
    /// exactly `old`; false when a newer copy was enqueued meanwhile.
    fn swap(&self, old: &Job, new: Option<&Job>) -> Result<bool> {
        let encoded = new.map(serde_json::to_vec).transpose()?;
        let mut index = self.index();
        let done = self
            .pending
            .compare_and_swap(
                old.sop_instance.as_bytes(),
                Some(serde_json::to_vec(old)?),
                encoded,
            )?
            .is_ok();
        if done {
            match new {
                Some(j) => index.put(j.entry()),
                None => index.remove(&old.sop_instance),
            }
        }
        // Not flushed: losing a completion in a crash only means sending the
        // same content once more; sled flushes on its own within 500 ms.
        Ok(done)
    }

    /// Make the queue's changes so far durable. Called before an outbox
    /// file is deleted: a job restored by a crash must still find its file.
    pub fn flush(&self) -> Result<()> {
        self.pending.flush()?;
        Ok(())
    }

    pub fn depth(&self) -> usize {
        self.index().len()
    }

    /// Due jobs of one study (the study of the job due first), at most
    /// `limit`, in the order they were queued. Reads only those jobs.
    pub fn next_batch(&self, now: u64, limit: usize) -> Result<Vec<Job>> {
        let sops = self.index().next_batch(now, limit);
        let mut batch = Vec::with_capacity(sops.len());
        for sop in sops {
            // Gone meanwhile (completed by a stale outcome's winner): skip.
            if let Some(v) = self.pending.get(sop.as_bytes())? {
                batch.push(serde_json::from_slice::<Job>(&v)?);
            }
        }
        Ok(batch)
    }

    /// Remove a delivered job (false: a newer copy replaced it).
    pub fn complete(&self, job: &Job) -> Result<bool> {
        self.swap(job, None)
    }

    /// Replace a job by its rescheduled self (false: a newer copy replaced it).
    pub fn reschedule(&self, old: &Job, new: &Job) -> Result<bool> {
        self.swap(old, Some(new))
    }
}

/// Back-off after `attempts` failures: initial * 2^(attempts-1), capped.
pub fn backoff(attempts: u32, initial: u64, max: u64) -> u64 {
    let exp = attempts.saturating_sub(1).min(30);
    initial.saturating_mul(1u64 << exp).min(max).max(1)
}

/// The outbox folder of a destination, inside the data directory.
pub fn outbox_dir(data_dir: &Path, dest: &str) -> PathBuf {
    data_dir.join("outbox").join(dest)
}

/// A DICOM destination with its queue and the handle that wakes its worker.
pub struct DicomRoute {
    pub config: crate::config::DestinationConfig,
    pub destination: DicomDestination,
    pub queue: Queue,
    pub outbox: std::path::PathBuf,
    pub wake: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// `type = "stow"`: batches go by STOW-RS instead of C-STORE.
    pub stow: Option<Arc<crate::net::stow::Stow>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1, 2, 300), 2);
        assert_eq!(backoff(2, 2, 300), 4);
        assert_eq!(backoff(5, 2, 300), 32);
        assert_eq!(backoff(20, 2, 300), 300);
        assert_eq!(backoff(u32::MAX, 2, 300), 300);
    }

    #[test]
    fn queue_is_idempotent_per_instance_and_batches_by_study() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::open(tmp.path()).unwrap();
        let q = Queue::open(&db, "pacs").unwrap();
        let job = |sop: &str, study: &str, at: u64| Job {
            path: PathBuf::from(format!("/x/{sop}")),
            sop_class: "1.2.840.10008.5.1.4.1.1.4".into(),
            sop_instance: sop.into(),
            study_uid: study.into(),
            enqueued_at: at,
            attempts: 0,
            next_at: 0,
            last_error: None,
        };
        q.enqueue(&job("2.25.1", "S1", 10)).unwrap();
        q.enqueue(&job("2.25.1", "S1", 11)).unwrap();
        q.enqueue(&job("2.25.2", "S2", 12)).unwrap();
        q.enqueue(&job("2.25.3", "S1", 13)).unwrap();
        assert_eq!(q.depth(), 3);
        let b = q.next_batch(100, 10).unwrap();
        assert_eq!(
            b.iter()
                .map(|j| j.sop_instance.as_str())
                .collect::<Vec<_>>(),
            ["2.25.1", "2.25.3"]
        );
        assert!(q.complete(&b[0]).unwrap());
        let mut later = b[1].clone();
        later.next_at = 1000;
        assert!(q.reschedule(&b[1], &later).unwrap());
        // A stale outcome (the job changed meanwhile) changes nothing.
        assert!(!q.reschedule(&b[1], &later).unwrap());
        let b = q.next_batch(100, 10).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].study_uid, "S2");
        assert!(q.complete(&b[0]).unwrap());
        assert_eq!(q.depth(), 1, "the rescheduled job stays");
    }

    #[test]
    fn a_reopened_queue_resumes_from_sled_and_drains_a_large_backlog_by_study() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::open(tmp.path()).unwrap();
        let n = 20_000u64;
        {
            let q = Queue::open(&db, "pacs").unwrap();
            for i in 0..n {
                q.enqueue(&Job {
                    path: PathBuf::from(format!("/x/{i}")),
                    sop_class: "1.2.840.10008.5.1.4.1.1.4".into(),
                    sop_instance: format!("2.25.{i}"),
                    study_uid: format!("S{}", i % 7),
                    enqueued_at: i,
                    attempts: 0,
                    next_at: i,
                    last_error: None,
                })
                .unwrap();
            }
        }
        let q = Queue::open(&db, "pacs").unwrap();
        assert_eq!(q.depth(), n as usize);
        let (mut sent, mut batches) = (0u64, 0);
        let t = std::time::Instant::now();
        loop {
            let b = q.next_batch(n, 64).unwrap();
            if b.is_empty() {
                break;
            }
            let study = b[0].study_uid.clone();
            assert!(
                b.iter().all(|j| j.study_uid == study),
                "one study per batch"
            );
            assert!(b.windows(2).all(|w| w[0].enqueued_at < w[1].enqueued_at));
            for j in &b {
                assert!(q.complete(j).unwrap());
            }
            sent += b.len() as u64;
            batches += 1;
        }
        assert_eq!((sent, q.depth()), (n, 0));
        assert!(batches >= n.div_ceil(64) as usize);
        eprintln!("drained {n} jobs in {batches} batches in {:?}", t.elapsed());
    }
}
