//! The durable spool between the receiver and the pipeline (the store; the
//! threads that drain it are [`super::workers`]).
//!
//! Before the sender gets its Success, an instance is durable in one of two
//! ways: appended to the write-ahead log ([`super::wal`], one `fdatasync`;
//! the gateway's usual path), or (large instances, releases from
//! quarantine, offline use) fsync'd in `incoming/` and renamed into
//! `ready/<id>.dcm` with the folder fsync'd. Workers de-identify it; only
//! after its output (or quarantine copy) is durable do they mark the log
//! record done in sled and flush, or delete the `ready/` file. So `kill -9`
//! at any moment loses nothing acknowledged: a restart processes the log
//! records not done and whatever is in `ready/`. Processing an instance
//! twice writes the same output file with the same bytes.

use super::wal::Wal;
use crate::runtime::create_private_dir;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix of the spool ids of objects released from quarantine.
pub const RELEASED_SUFFIX: &str = ".released";

/// The spool folders.
#[derive(Debug)]
pub struct Spool {
    incoming: PathBuf,
    ready: PathBuf,
    counter: AtomicU64,
    /// The write-ahead log (the serving gateway); `None` offline.
    wal: Option<Wal>,
}

impl Spool {
    /// The gateway's spool: [`Spool::open`] plus the write-ahead log in
    /// `spool/wal`.
    pub fn open_logged(data_dir: &Path, db: &sled::Db) -> Result<Spool> {
        let mut spool = Spool::open(data_dir)?;
        let (wal, replay) = Wal::open(&data_dir.join("spool").join("wal"), db)?;
        if !replay.is_empty() {
            tracing::info!(
                instances = replay.len(),
                "acknowledged instances to resume from the spool log"
            );
        }
        spool.wal = Some(wal);
        Ok(spool)
    }

    /// Open `<data_dir>/spool`, creating it; partial files left in
    /// `incoming/` by a crash were never acknowledged and are removed.
    pub fn open(data_dir: &Path) -> Result<Spool> {
        let root = data_dir.join("spool");
        let (incoming, ready) = (root.join("incoming"), root.join("ready"));
        for d in [&root, &incoming, &ready] {
            create_private_dir(d)?;
        }
        let mut removed = 0;
        for e in std::fs::read_dir(&incoming)
            .with_context(|| format!("cannot read {}", incoming.display()))?
            .flatten()
        {
            if std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::warn!(
                files = removed,
                "removed partial spool files (never acknowledged)"
            );
        }
        Ok(Spool {
            incoming,
            ready,
            counter: AtomicU64::new(0),
            wal: None,
        })
    }

    /// A fresh id (time-ordered, so a restart works in arrival order) and
    /// the path of its temp file in `incoming/`.
    pub fn new_incoming(&self) -> (String, PathBuf) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("{nanos:020}-{}-{n:06}", std::process::id());
        let path = self.incoming.join(format!("{id}.part"));
        (id, path)
    }

    pub fn ready_path(&self, id: &str) -> PathBuf {
        self.ready.join(format!("{id}.dcm"))
    }

    /// Move an fsync'd temp file into `ready/` and make the rename durable.
    /// After this returns the instance survives a crash.
    pub fn commit(&self, id: &str, tmp: &Path) -> Result<()> {
        let dst = self.ready_path(id);
        std::fs::rename(tmp, &dst)
            .with_context(|| format!("cannot rename into {}", dst.display()))?;
        std::fs::File::open(&self.ready)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", self.ready.display()))
    }

    /// Make a complete instance held in memory durable under `id`: a log
    /// record when there is a log (and it fits), else the fsync'd file `tmp`
    /// renamed into `ready/`. After this returns the instance survives a crash.
    pub fn accept(&self, id: &str, tmp: &Path, bytes: &[u8]) -> Result<()> {
        match self.wal.as_ref().filter(|_| Wal::fits(bytes.len(), id)) {
            Some(wal) => wal
                .append(id, bytes)
                .context("cannot append to the spool log"),
            None => {
                super::output::write_synced(tmp, bytes)?;
                self.commit(id, tmp)
            }
        }
    }

    /// The bytes of a spooled instance; `None` when it is already done.
    pub fn read(&self, id: &str) -> Result<Option<Vec<u8>>> {
        if let Some(wal) = &self.wal {
            if let Some(b) = wal.read(id).context("cannot read the spool log")? {
                return Ok(Some(b));
            }
        }
        let path = self.ready_path(id);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Mark finished instances done in the log; durable with the next
    /// flush of the database.
    pub fn mark_done(&self, ids: &[String]) -> Result<()> {
        self.wal.as_ref().map_or(Ok(()), |w| w.mark_done(ids))
    }

    /// Whether the instance `id` would be replayed after a crash now: a
    /// spool-log record whose done mark is not yet known to be durable.
    /// (A `ready/` file moved elsewhere leaves nothing to replay.)
    pub fn is_live(&self, id: &str) -> bool {
        self.wal.as_ref().is_some_and(|w| w.is_live(id))
    }

    /// After the done marks are flushed: delete the `ready/` files and the
    /// log segments nothing needs any more.
    pub fn remove_done(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            if let Err(e) = std::fs::remove_file(self.ready_path(id)) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, "cannot delete a processed spool file");
                }
            }
        }
        self.wal.as_ref().map_or(Ok(()), |w| w.forget(ids))
    }

    /// Spools `bytes` released from quarantine; returns its spool id, whose
    /// `.released` suffix tells the workers to skip the [filter] rules.
    pub fn release(&self, bytes: &[u8]) -> Result<String> {
        let (id, tmp) = self.new_incoming();
        let id = format!("{id}{RELEASED_SUFFIX}");
        super::output::write_synced(&tmp, bytes)?;
        self.commit(&id, &tmp)?;
        Ok(id)
    }

    /// Ids waiting in the log and in `ready/`, oldest first.
    pub fn pending(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.ready)
            .with_context(|| format!("cannot read {}", self.ready.display()))?
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".dcm"))
                    .map(str::to_string)
            })
            .collect();
        if let Some(wal) = &self.wal {
            ids.extend(wal.live_ids());
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_moves_into_ready_and_open_clears_incoming() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let (id, part) = spool.new_incoming();
        std::fs::write(&part, b"x").unwrap();
        let (id2, part2) = spool.new_incoming();
        assert!(id2 > id, "ids are ordered");
        std::fs::write(&part2, b"partial").unwrap();
        spool.commit(&id, &part).unwrap();
        assert!(!part.exists());
        assert_eq!(std::fs::read(spool.ready_path(&id)).unwrap(), b"x");
        drop(spool);
        let spool = Spool::open(tmp.path()).unwrap();
        assert!(!part2.exists(), "partial files are removed at start");
        assert_eq!(spool.pending().unwrap(), vec![id]);
    }

    #[test]
    fn logged_instances_come_back_after_a_crash_until_marked_done() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(tmp.path().join("db"))
            .open()
            .unwrap();
        let spool = Spool::open_logged(tmp.path(), &db).unwrap();
        let (a, part_a) = spool.new_incoming();
        let (b, part_b) = spool.new_incoming();
        spool.accept(&a, &part_a, b"instance a").unwrap();
        spool.accept(&b, &part_b, b"instance b").unwrap();
        assert!(
            !part_a.exists() && !spool.ready_path(&a).exists(),
            "logged only"
        );
        assert_eq!(spool.read(&a).unwrap().unwrap(), b"instance a");
        // a is finished, then the process dies.
        let ids = vec![a.clone()];
        spool.mark_done(&ids).unwrap();
        db.flush().unwrap();
        drop(spool);
        let spool = Spool::open_logged(tmp.path(), &db).unwrap();
        assert_eq!(spool.pending().unwrap(), vec![b.clone()], "a is done");
        assert_eq!(spool.read(&a).unwrap(), None);
        assert_eq!(spool.read(&b).unwrap().unwrap(), b"instance b");
        let ids = vec![b.clone()];
        spool.mark_done(&ids).unwrap();
        db.flush().unwrap();
        spool.remove_done(&ids).unwrap();
        drop(spool);
        let spool = Spool::open_logged(tmp.path(), &db).unwrap();
        assert!(spool.pending().unwrap().is_empty());
    }
}
