//! Dead letters: instances a destination refused for good, or that could not
//! be delivered within `max_age_hours`. Each is a record in the sled tree
//! `dead_letter/<dest>` (keyed by SOP Instance UID, like the queue) and a
//! file in `<data_dir>/dead_letter/<dest>/` with `<file>.reason.txt` beside
//! it, until an operator retries or purges it (`deidgate deadletter`, see
//! `crate::admin::dead_letters`).
//!
//! Files are linked before the database changes and unlinked after, so a
//! crash in between leaves a spare file (removed at the next start by
//! [`clean_at_start`]), never a record without its file.

use super::forward::{now, DicomDestination, DicomRoute, Job, Queue};
use crate::config::Config;
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionResult, TransactionalTree};
use sled::Transactional;
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// A dead-lettered job: the job as last tried (`last_error` is the reason,
/// `path` the file in the dead-letter folder) and when it was given up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeadLetter {
    #[serde(flatten)]
    pub job: Job,
    /// Unix seconds; 0 in records written before it was kept.
    #[serde(default)]
    pub dead_at: u64,
}

impl DeadLetter {
    pub fn reason(&self) -> &str {
        self.job.last_error.as_deref().unwrap_or("")
    }

    /// When it was dead-lettered: the record's time, else the file's.
    pub fn when(&self) -> Option<u64> {
        if self.dead_at > 0 {
            return Some(self.dead_at);
        }
        let modified = std::fs::metadata(&self.job.path).ok()?.modified().ok()?;
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    }
}

/// RFC 3339 UTC, or "unknown".
pub fn format_time(secs: Option<u64>) -> String {
    secs.and_then(|s| chrono::DateTime::from_timestamp(s as i64, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "unknown".into())
}

/// `<file>.reason.txt`: why `file` was dead-lettered, for whoever browses
/// the folder.
pub fn reason_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(OsString::from).unwrap_or_default();
    name.push(".reason.txt");
    file.with_file_name(name)
}

/// The id operators type: `<destination>/<SOP Instance UID>` (the
/// de-identified UID, a pseudonym).
pub fn id(dest: &str, sop: &str) -> String {
    format!("{dest}/{sop}")
}

fn decode(v: &[u8]) -> Option<DeadLetter> {
    serde_json::from_slice(v).ok()
}

/// Outcome of [`Queue::requeue`].
#[derive(Debug, PartialEq, Eq)]
pub enum Requeued {
    /// Back in the pending queue.
    Done,
    /// A newer copy of the instance is queued already: the dead letter was
    /// dropped, that copy goes out.
    Superseded,
    /// The record changed or went meanwhile (dead-lettered again, purged).
    Changed,
}

impl Queue {
    /// Move `old` from the pending queue to the dead letters as `dead`, in
    /// one transaction, if the queue still holds exactly `old`. `None`: a
    /// newer copy replaced it. `Some(earlier)`: done; `earlier` is the file
    /// of a previous dead letter of the same instance, now superseded.
    pub(super) fn dead_letter(
        &self,
        old: &Job,
        dead: &DeadLetter,
    ) -> Result<Option<Option<PathBuf>>> {
        let key = old.sop_instance.as_bytes();
        let (old_v, new_v) = (serde_json::to_vec(old)?, serde_json::to_vec(dead)?);
        let mut index = self.index();
        let r = (&self.pending, &self.dead)
            .transaction(
                |(p, d)| -> ConflictableTransactionResult<Option<Option<sled::IVec>>, ()> {
                    if p.get(key)?.as_deref() != Some(&old_v[..]) {
                        return Ok(None);
                    }
                    p.remove(key)?;
                    Ok(Some(d.insert(key, new_v.clone())?))
                },
            )
            .map_err(|e| anyhow!("dead-letter transaction: {e:?}"))?;
        let Some(earlier) = r else { return Ok(None) };
        index.remove(&old.sop_instance);
        drop(index);
        self.dead.flush()?;
        Ok(Some(
            earlier
                .and_then(|v| decode(&v))
                .map(|e| e.job.path)
                .filter(|p| *p != dead.job.path),
        ))
    }

    /// Put `job` (the dead letter `dead`, its file back in the outbox) in
    /// the pending queue and drop the dead letter, in one transaction.
    pub(super) fn requeue(&self, dead: &DeadLetter, job: &Job) -> Result<Requeued> {
        let key = job.sop_instance.as_bytes();
        let job_v = serde_json::to_vec(job)?;
        let mut index = self.index();
        let r = (&self.pending, &self.dead)
            .transaction(|(p, d)| -> ConflictableTransactionResult<Requeued, ()> {
                if !same_file(d, key, dead)? {
                    return Ok(Requeued::Changed);
                }
                d.remove(key)?;
                if p.get(key)?.is_some() {
                    return Ok(Requeued::Superseded);
                }
                p.insert(key, job_v.clone())?;
                Ok(Requeued::Done)
            })
            .map_err(|e| anyhow!("requeue transaction: {e:?}"))?;
        if r == Requeued::Done {
            index.put(job.entry());
        }
        drop(index);
        self.pending.flush()?;
        Ok(r)
    }

    /// Delete the record of `dead` if it still is that one.
    pub(super) fn forget(&self, dead: &DeadLetter) -> Result<bool> {
        let key = dead.job.sop_instance.as_bytes();
        let gone = self
            .dead
            .transaction(|d| -> ConflictableTransactionResult<bool, ()> {
                if !same_file(d, key, dead)? {
                    return Ok(false);
                }
                d.remove(key)?;
                Ok(true)
            })
            .map_err(|e| anyhow!("purge transaction: {e:?}"))?;
        self.dead.flush()?;
        Ok(gone)
    }

    /// Dead letters waiting (reads the tree: always current).
    pub fn dead_count(&self) -> usize {
        self.dead.len()
    }

    /// Every dead letter of this destination, by SOP Instance UID.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead
            .iter()
            .values()
            .filter_map(|v| v.ok())
            .filter_map(|v| decode(&v))
            .collect()
    }

    pub fn dead_letter_of(&self, sop: &str) -> Result<Option<DeadLetter>> {
        Ok(self.dead.get(sop.as_bytes())?.and_then(|v| decode(&v)))
    }
}

/// Whether the record under `key` is `dead` (same file).
fn same_file(
    d: &TransactionalTree,
    key: &[u8],
    dead: &DeadLetter,
) -> ConflictableTransactionResult<bool, ()> {
    Ok(d.get(key)?.and_then(|v| decode(&v)).map(|r| r.job.path) == Some(dead.job.path.clone()))
}

/// A hard link, else a copy (another file system), made durable before
/// the database is told about it.
fn link_or_copy(src: &Path, dst: &Path) -> std::io::Result<()> {
    if dst.exists() {
        std::fs::remove_file(dst)?;
    }
    if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst)?;
        std::fs::File::open(dst)?.sync_all()?;
    }
    match dst.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn remove_with_reason(file: &Path) {
    std::fs::remove_file(file).ok();
    std::fs::remove_file(reason_path(file)).ok();
}

/// Dead-letter `original` (still pending) with `why`: its file goes to the
/// dead-letter folder with a reason file. False when a newer copy of the
/// instance replaced it in the queue meanwhile (nothing changes).
pub(super) fn bury(
    dest: &DicomDestination,
    queue: &Queue,
    original: &Job,
    why: &str,
) -> Result<bool> {
    // A stale outcome touches no file: the dead-letter file name below may
    // then be that of this very job, dead-lettered already.
    let key = original.sop_instance.as_bytes();
    if queue.pending.get(key)?.as_deref() != Some(&serde_json::to_vec(original)?[..]) {
        return Ok(false);
    }
    let mut job = original.clone();
    job.last_error = Some(why.to_string());
    job.attempts += 1; // the one that failed for good
    let mut linked = false;
    if let Some(name) = original.path.file_name() {
        std::fs::create_dir_all(&dest.dead_dir)
            .with_context(|| format!("cannot create {}", dest.dead_dir.display()))?;
        job.path = dest.dead_dir.join(name);
        match link_or_copy(&original.path, &job.path) {
            Ok(()) => linked = true,
            Err(e) => {
                // The record keeps pointing at the outbox copy, which stays
                // (and is kept at start): the instance is not lost.
                tracing::warn!(sop = %job.sop_instance, error = %e, "the dead-lettered file stays in the outbox");
                job.path = original.path.clone();
            }
        }
    }
    let dead = DeadLetter {
        job,
        dead_at: now(),
    };
    let reason_file = reason_path(&dead.job.path);
    if linked {
        if let Err(e) = std::fs::write(&reason_file, reason_text(&dest.name, &dead)) {
            tracing::warn!(file = %reason_file.display(), error = %e, "cannot write the reason file");
        }
    }
    let Some(earlier) = queue.dead_letter(original, &dead)? else {
        if linked {
            remove_with_reason(&dead.job.path);
        }
        return Ok(false);
    };
    if linked {
        std::fs::remove_file(&original.path).ok();
    }
    if let Some(e) = earlier {
        remove_with_reason(&e);
    }
    Ok(true)
}

fn reason_text(dest: &str, d: &DeadLetter) -> String {
    let id = id(dest, &d.job.sop_instance);
    format!(
        "destination: {dest}\nid: {id}\nsop instance: {}\ndead-lettered: {}\nattempts: {}\nreason: {}\n\n\
         To send it again once the cause is fixed: deidgate deadletter retry {id}\n\
         To delete it: deidgate deadletter purge {id}\n",
        d.job.sop_instance,
        format_time(d.when()),
        d.job.attempts,
        d.reason(),
    )
}

type Wake = Arc<(Mutex<bool>, Condvar)>;

/// A destination whose forwarder runs in this process.
#[derive(Clone)]
struct Live {
    name: String,
    queue: Queue,
    wake: Wake,
}

/// The forwarders' queues, so that a retry over the admin socket goes into
/// the queue the worker reads (its in-memory index) and wakes it.
static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

pub(super) fn register(routes: &[DicomRoute]) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.clear();
    live.extend(routes.iter().map(|r| Live {
        name: r.destination.name.clone(),
        queue: r.queue.clone(),
        wake: r.wake.clone(),
    }));
}

pub(super) fn unregister() {
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// The dead letters of one destination, as the admin commands reach them.
pub struct Target {
    pub name: String,
    pub queue: Queue,
    /// Where a retried file goes; `None` when the destination is no longer
    /// configured as a DICOM destination (its dead letters can only be
    /// listed and purged).
    pub outbox: Option<PathBuf>,
    /// Set when the destination's forwarder runs in this process.
    wake: Option<Wake>,
}

/// Every DICOM destination configured, and every destination that still
/// has a dead-letter tree. The running forwarders' queues when the gateway
/// runs in this process, else the queues opened from `db`.
pub fn targets(cfg: &Config, db: &sled::Db) -> Result<Vec<Target>> {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut out: Vec<Target> = Vec::new();
    let configured = cfg
        .destinations
        .iter()
        .filter(|d| d.kind.is_queued())
        .map(|d| d.name.clone());
    let stored = db.tree_names().into_iter().filter_map(|n| {
        let n = String::from_utf8(n.to_vec()).ok()?;
        n.strip_prefix("dead_letter/").map(str::to_string)
    });
    let data_dir = cfg.data_dir();
    for name in configured.chain(stored) {
        if out.iter().any(|t| t.name == name) {
            continue;
        }
        let is_dicom = cfg
            .destinations
            .iter()
            .any(|d| d.name == name && d.kind.is_queued());
        let running = live.iter().find(|l| l.name == name);
        out.push(Target {
            queue: match running {
                Some(l) => l.queue.clone(),
                None => Queue::open(db, &name)?,
            },
            outbox: is_dicom.then(|| super::forward::outbox_dir(data_dir, &name)),
            wake: running.map(|l| l.wake.clone()),
            name,
        });
    }
    Ok(out)
}

/// What became of a retry.
#[derive(Debug, PartialEq, Eq)]
pub enum Retried {
    /// Queued again; `true` when the running forwarder was woken for it.
    Queued {
        woken: bool,
    },
    Superseded,
    Changed,
}

impl Target {
    /// Whether its forwarder runs in this process.
    pub fn live(&self) -> bool {
        self.wake.is_some()
    }

    /// Put a dead letter back in the queue, attempts and age reset, and
    /// wake the forwarder. Its file goes back to the outbox.
    pub fn retry(&self, dead: &DeadLetter) -> Result<Retried> {
        let Some(outbox) = &self.outbox else {
            anyhow::bail!(
                "destination {} is no longer configured: restore its [[destination]] or purge",
                self.name
            );
        };
        let file = &dead.job.path;
        anyhow::ensure!(
            file.exists(),
            "{} is missing: purge this dead letter",
            file.display()
        );
        std::fs::create_dir_all(outbox)
            .with_context(|| format!("cannot create {}", outbox.display()))?;
        // A fresh name, as the router gives each copy.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let target = outbox.join(format!("{}.{nanos}.dcm", dead.job.sop_instance));
        link_or_copy(file, &target)
            .with_context(|| format!("cannot put {} back in the outbox", file.display()))?;
        let t = now();
        let job = Job {
            path: target.clone(),
            enqueued_at: t,
            attempts: 0,
            next_at: t,
            last_error: None,
            ..dead.job.clone()
        };
        let r = match self.queue.requeue(dead, &job) {
            Ok(r) => r,
            Err(e) => {
                std::fs::remove_file(&target).ok();
                return Err(e);
            }
        };
        if r != Requeued::Done {
            std::fs::remove_file(&target).ok();
        }
        if r == Requeued::Changed {
            return Ok(Retried::Changed);
        }
        remove_with_reason(file);
        if r == Requeued::Superseded {
            return Ok(Retried::Superseded);
        }
        if let Some(w) = &self.wake {
            let (lock, cv) = &**w;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
        tracing::info!(destination = %self.name, sop = %job.sop_instance, "dead letter queued again");
        Ok(Retried::Queued { woken: self.live() })
    }

    /// Delete a dead letter: its record, its file and its reason file.
    pub fn purge(&self, dead: &DeadLetter) -> Result<bool> {
        if !self.queue.forget(dead)? {
            return Ok(false);
        }
        remove_with_reason(&dead.job.path);
        tracing::info!(destination = %self.name, sop = %dead.job.sop_instance, "dead letter purged");
        Ok(true)
    }
}

/// At start, before any worker can place a file: remove the outbox files
/// that no queued job points to (placed before a crash and never queued,
/// or half-written), and dead-letter files without a record. Files are
/// compared by name, so a data directory reached by another path loses
/// nothing. Returns (outbox files removed, dead-letter files removed).
pub fn clean_at_start(queue: &Queue, outbox: &Path, dead_dir: &Path) -> Result<(usize, usize)> {
    let mut queued: HashSet<OsString> = HashSet::new();
    for v in queue.pending.iter().values() {
        if let Ok(j) = serde_json::from_slice::<Job>(&v?) {
            queued.extend(j.path.file_name().map(OsString::from));
        }
    }
    let mut kept: HashSet<OsString> = HashSet::new();
    // A dead letter whose file could not be moved out of the outbox keeps
    // it there.
    let mut in_use = queued.clone();
    for d in queue.dead_letters() {
        let Some(name) = d.job.path.file_name() else {
            continue;
        };
        // Dead-lettered by an older version that moved the file after the
        // record was written, and killed in between: finish the move.
        let in_outbox = outbox.join(name);
        if !d.job.path.exists() && in_outbox.exists() && !queued.contains(name) {
            if let Some(dir) = d.job.path.parent() {
                std::fs::create_dir_all(dir).ok();
            }
            std::fs::rename(&in_outbox, &d.job.path).ok();
        }
        kept.insert(name.to_os_string());
        kept.extend(reason_path(&d.job.path).file_name().map(OsString::from));
        in_use.insert(name.to_os_string());
    }
    Ok((sweep(outbox, &in_use), sweep(dead_dir, &kept)))
}

/// Remove the plain files directly in `dir` whose names are not in `keep`.
fn sweep(dir: &Path, keep: &HashSet<OsString>) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !keep.contains(&e.file_name()))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::scu::Peer;
    use std::time::Duration;

    fn setup(tmp: &Path) -> (sled::Db, Queue, DicomDestination, PathBuf) {
        let db = sled::open(tmp.join("db")).unwrap();
        let q = Queue::open(&db, "pacs").unwrap();
        let dest = DicomDestination {
            name: "pacs".into(),
            peer: Peer {
                ae_title: "PACS".into(),
                host: "127.0.0.1".into(),
                port: 1,
                calling_ae_title: "US".into(),
                timeout: Duration::from_secs(1),
                tls: None,
            },
            retry_initial_secs: 1,
            retry_max_secs: 1,
            max_age_secs: 3600,
            batch_size: 8,
            dead_dir: tmp.join("dead_letter/pacs"),
        };
        let outbox = tmp.join("outbox/pacs");
        std::fs::create_dir_all(&outbox).unwrap();
        (db, q, dest, outbox)
    }

    fn queued(q: &Queue, outbox: &Path, sop: &str) -> Job {
        let path = outbox.join(format!("{sop}.1.dcm"));
        std::fs::write(&path, sop).unwrap();
        let job = Job {
            path,
            sop_class: "1.2.840.10008.5.1.4.1.1.4".into(),
            sop_instance: sop.into(),
            study_uid: "S".into(),
            enqueued_at: 5,
            attempts: 3,
            next_at: 0,
            last_error: None,
        };
        q.enqueue(&job).unwrap();
        job
    }

    #[test]
    fn bury_keeps_file_and_reason_then_retry_requeues_with_attempts_reset() {
        let tmp = tempfile::tempdir().unwrap();
        let (_db, q, dest, outbox) = setup(tmp.path());
        let job = queued(&q, &outbox, "2.25.7");
        assert!(bury(&dest, &q, &job, "called AE title not recognized").unwrap());
        assert_eq!((q.depth(), q.dead_count()), (0, 1));
        assert!(!job.path.exists(), "moved out of the outbox");
        let dead = q.dead_letter_of("2.25.7").unwrap().unwrap();
        assert_eq!(dead.reason(), "called AE title not recognized");
        assert_eq!(std::fs::read_to_string(&dead.job.path).unwrap(), "2.25.7");
        let reason = std::fs::read_to_string(reason_path(&dead.job.path)).unwrap();
        assert!(
            reason.contains("called AE title not recognized"),
            "{reason}"
        );
        assert!(reason.contains("deadletter retry pacs/2.25.7"), "{reason}");
        // A stale outcome (the job is no longer pending) changes nothing.
        assert!(!bury(&dest, &q, &job, "again").unwrap());

        let t = Target {
            name: "pacs".into(),
            queue: q.clone(),
            outbox: Some(outbox.clone()),
            wake: None,
        };
        assert_eq!(t.retry(&dead).unwrap(), Retried::Queued { woken: false });
        assert_eq!((q.depth(), q.dead_count()), (1, 0));
        assert!(!dead.job.path.exists() && !reason_path(&dead.job.path).exists());
        let back = q.next_batch(now(), 10).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].attempts, 0);
        assert!(back[0].path.starts_with(&outbox));
        assert_eq!(std::fs::read_to_string(&back[0].path).unwrap(), "2.25.7");
        // Retrying the same (gone) dead letter again changes nothing.
        assert!(t.retry(&dead).unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn retry_of_an_instance_queued_again_meanwhile_drops_the_dead_letter_and_purge_deletes() {
        let tmp = tempfile::tempdir().unwrap();
        let (_db, q, dest, outbox) = setup(tmp.path());
        let a = queued(&q, &outbox, "2.25.1");
        let b = queued(&q, &outbox, "2.25.2");
        assert!(bury(&dest, &q, &a, "x").unwrap());
        assert!(bury(&dest, &q, &b, "y").unwrap());
        let newer = queued(&q, &outbox, "2.25.1");
        let t = Target {
            name: "pacs".into(),
            queue: q.clone(),
            outbox: Some(outbox.clone()),
            wake: None,
        };
        let dead_a = q.dead_letter_of("2.25.1").unwrap().unwrap();
        assert_eq!(t.retry(&dead_a).unwrap(), Retried::Superseded);
        assert_eq!((q.depth(), q.dead_count()), (1, 1));
        assert!(newer.path.exists());
        let dead_b = q.dead_letter_of("2.25.2").unwrap().unwrap();
        assert!(t.purge(&dead_b).unwrap());
        assert!(!t.purge(&dead_b).unwrap());
        assert_eq!(q.dead_count(), 0);
        assert!(!dead_b.job.path.exists() && !reason_path(&dead_b.job.path).exists());
        // Only the queued file is left in the outbox, nothing in dead_letter.
        assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1);
        assert_eq!(std::fs::read_dir(&dest.dead_dir).unwrap().count(), 0);
    }

    #[test]
    fn start_removes_orphaned_outbox_files_and_stray_dead_letter_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let (_db, q, dest, outbox) = setup(tmp.path());
        let kept = queued(&q, &outbox, "2.25.1");
        let dead = queued(&q, &outbox, "2.25.2");
        assert!(bury(&dest, &q, &dead, "x").unwrap());
        std::fs::write(outbox.join("2.25.9.123.dcm"), b"orphan").unwrap();
        std::fs::write(outbox.join(".2.25.9.124.dcm.tmp99999"), b"half").unwrap();
        std::fs::create_dir_all(outbox.join("sub")).unwrap();
        std::fs::write(dest.dead_dir.join("2.25.8.1.dcm"), b"stray").unwrap();
        let (o, s) = clean_at_start(&q, &outbox, &dest.dead_dir).unwrap();
        assert_eq!((o, s), (2, 1));
        assert!(kept.path.exists());
        let d = q.dead_letter_of("2.25.2").unwrap().unwrap();
        assert!(d.job.path.exists() && reason_path(&d.job.path).exists());
        assert!(outbox.join("sub").is_dir());
    }

    #[test]
    fn a_dead_letter_that_cannot_leave_the_outbox_keeps_its_file_there() {
        let tmp = tempfile::tempdir().unwrap();
        let (_db, q, dest, outbox) = setup(tmp.path());
        let job = queued(&q, &outbox, "2.25.3");
        // Something in the way of the dead-letter copy: it cannot be made.
        std::fs::create_dir_all(dest.dead_dir.join(job.path.file_name().unwrap())).unwrap();
        assert!(bury(&dest, &q, &job, "x").unwrap());
        let d = q.dead_letter_of("2.25.3").unwrap().unwrap();
        assert_eq!(d.job.path, job.path, "the record points at the outbox copy");
        clean_at_start(&q, &outbox, &dest.dead_dir).unwrap();
        assert_eq!(std::fs::read(&job.path).unwrap(), b"2.25.3");
    }

    #[test]
    fn targets_list_configured_and_stored_destinations() {
        let tmp = tempfile::tempdir().unwrap();
        let (db, q, dest, outbox) = setup(tmp.path());
        let j = queued(&q, &outbox, "2.25.1");
        assert!(bury(&dest, &q, &j, "x").unwrap());
        let cfg = Config::parse(
            &format!(
                "[node]\ndata_dir = {:?}\n[[destination]]\nname = \"other\"\ntype = \"dicom\"\nhost = \"h\"\nport = 1\nae_title = \"A\"\n",
                tmp.path().display().to_string()
            ),
            "t.toml",
        )
        .unwrap();
        let t = targets(&cfg, &db).unwrap();
        let names: Vec<(&str, bool)> = t
            .iter()
            .map(|t| (t.name.as_str(), t.outbox.is_some()))
            .collect();
        assert_eq!(names, [("other", true), ("pacs", false)]);
        let pacs = &t[1];
        let d = pacs.queue.dead_letter_of("2.25.1").unwrap().unwrap();
        assert!(pacs
            .retry(&d)
            .unwrap_err()
            .to_string()
            .contains("no longer configured"));
        assert!(pacs.purge(&d).unwrap());
    }
}
