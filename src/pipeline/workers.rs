//! The pipeline workers: threads that drain the spool through the
//! per-instance stage, hand outputs to the router, and only then let the
//! spool forget the acknowledged originals (see [`super::spool`]).
//!
//! With the shared key store (PostgreSQL) a worker batches its reverse-map
//! writes: its outputs wait in staging until the settle step has written
//! the batch in one transaction, and only then go to the router, so nothing
//! is emitted before its record is durable. With sled, outputs go to the
//! router at once, as sled's own flush at the settle step is all it needs.

use super::disk::Reserve;
use super::instance::{FileOutcome, Stage};
use super::quarantine::Quarantine;
use super::recovery;
use super::router::Router;
use super::spool::{Spool, RELEASED_SUFFIX};
use crate::health::{self, Fault};
use crate::keystore::KeyStore;
use crate::runtime::Runtime;
use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Finished files are deleted in groups after one key-store flush.
const SETTLE_EVERY: usize = 32;

/// With finished files waiting, a worker waits this long for more work
/// before it settles: a sender that sends one instance at a time would
/// otherwise cost a filesystem sync and a database flush per instance, and
/// those syncs delay the fsync on the receiver's acknowledgement path.
const SETTLE_IDLE: Duration = Duration::from_millis(100);

/// The pipeline workers: threads that take spool ids from a backlog (what
/// `ready/` held at start) and then from the receiver's bounded channel.
pub struct Workers {
    handles: Vec<std::thread::JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
}

struct Shared {
    rt: Arc<Runtime>,
    spool: Arc<Spool>,
    /// Where de-identified files are staged before the router places them.
    staging: PathBuf,
    router: Arc<Router>,
    quarantine: Quarantine,
    backlog: Mutex<VecDeque<String>>,
    rx: Mutex<mpsc::Receiver<String>>,
    /// Head MR instances are moved here to wait for their series.
    series: Option<Arc<crate::pipeline::series::holding::Holding>>,
    /// Free space the pipeline leaves on the data directory's file system.
    reserve: Reserve,
    /// Set at shutdown: retries give up (the spool keeps the instance).
    stopping: Arc<AtomicBool>,
}

/// The folder under staging where outputs wait for their key-store batch.
const BATCHED: &str = ".batched";

/// An output waiting for its key-store batch before it goes to the router.
struct Staged {
    path: PathBuf,
    info: super::router::ObjectInfo,
    calling_ae: Option<String>,
}

enum Next {
    Item(String),
    Idle,
    Closed,
}

impl Workers {
    /// Start `threads` workers. They stop when every sender of `rx` is
    /// dropped and the channel is drained.
    pub fn start(
        rt: Arc<Runtime>,
        spool: Arc<Spool>,
        backlog: Vec<String>,
        rx: mpsc::Receiver<String>,
        threads: usize,
        router: Arc<Router>,
        series: Option<Arc<crate::pipeline::series::holding::Holding>>,
    ) -> Result<Workers> {
        if !backlog.is_empty() {
            tracing::info!(
                instances = backlog.len(),
                "resuming acknowledged instances from the spool"
            );
        }
        let staging = rt.config.data_dir().join("staging");
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        // Outputs left waiting by an earlier run are made again from the spool.
        let batched = staging.join(BATCHED);
        std::fs::remove_dir_all(&batched).ok();
        std::fs::create_dir_all(&batched)
            .with_context(|| format!("cannot create {}", batched.display()))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            reserve: Reserve::new(rt.config.data_dir(), rt.config.node.disk_reserve_mb),
            stopping: stopping.clone(),
            staging,
            router,
            quarantine: Quarantine::new(rt.quarantine_dir()),
            rt,
            spool,
            backlog: Mutex::new(backlog.into()),
            rx: Mutex::new(rx),
            series,
        });
        let handles = (0..threads.max(1))
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("deid-worker-{i}"))
                    .spawn(move || s.run())
                    .context("cannot start a pipeline worker")
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Workers { handles, stopping })
    }

    /// Wait for the workers to drain the channel and stop. An instance that
    /// cannot be written is tried once more, then left in the spool.
    pub fn join(self) {
        self.stopping.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.join();
        }
    }
}

impl Shared {
    fn run(&self) {
        super::background::lower_this_thread();
        if let Some(pg) = self.rt.store.shared() {
            pg.defer_writes_on_this_thread();
        }
        let mut done: Vec<String> = Vec::new();
        let mut staged: Vec<Staged> = Vec::new();
        loop {
            match self.next(!done.is_empty()) {
                Next::Item(id) => {
                    if self.process_with_retry(&id, &mut staged) {
                        done.push(id);
                    }
                    if done.len() >= SETTLE_EVERY {
                        self.settle(&mut done, &mut staged);
                    }
                }
                Next::Idle => self.settle(&mut done, &mut staged),
                Next::Closed => {
                    self.settle(&mut done, &mut staged);
                    return;
                }
            }
        }
    }

    /// With the shared key store: writes this worker's batch of reverse-map
    /// records, then hands the outputs that waited for it to the router.
    /// An output is taken off `staged` once placed, so a retry after a
    /// failure places only the rest.
    fn emit(&self, staged: &mut Vec<Staged>) -> Result<()> {
        let Some(pg) = self.rt.store.shared() else {
            return Ok(());
        };
        pg.flush()?;
        // In the order they were made (a batch is at most SETTLE_EVERY).
        while let Some(s) = staged.first() {
            self.route(&s.path, &s.info, s.calling_ae.as_deref())?;
            staged.remove(0);
        }
        Ok(())
    }

    /// Hand one staged output to the router and drop the staged copy.
    fn route(
        &self,
        path: &std::path::Path,
        info: &super::router::ObjectInfo,
        calling_ae: Option<&str>,
    ) -> Result<()> {
        let n = self.router.dispatch(path, info, calling_ae)?;
        std::fs::remove_file(path).ok();
        crate::metrics::inc(&crate::metrics::METRICS.instances_deidentified);
        tracing::info!(sop = %info.sop_instance, destinations = n, "de-identified");
        Ok(())
    }

    /// The next id; with finished files waiting, wait at most
    /// [`SETTLE_IDLE`] (then settle first).
    fn next(&self, nonblocking: bool) -> Next {
        if let Some(id) = self.backlog.lock().expect("backlog lock").pop_front() {
            return Next::Item(id);
        }
        if nonblocking {
            let deadline = std::time::Instant::now() + SETTLE_IDLE;
            loop {
                // Another worker blocked in recv holds the lock: nothing is
                // queued right now.
                if let Ok(mut rx) = self.rx.try_lock() {
                    match rx.try_recv() {
                        Ok(id) => return Next::Item(id),
                        Err(mpsc::error::TryRecvError::Empty) => {}
                        Err(mpsc::error::TryRecvError::Disconnected) => return Next::Closed,
                    }
                }
                if std::time::Instant::now() >= deadline {
                    return Next::Idle;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        } else {
            let mut rx = self.rx.lock().expect("queue lock");
            rx.blocking_recv().map_or(Next::Closed, Next::Item)
        }
    }

    /// With the shared key store, write the batch of reverse-map records and
    /// only then emit the outputs that waited for it; make the outputs
    /// durable, mark the instances done and flush the key store, then
    /// delete their spool copies. On an error they stay and are redone at
    /// restart.
    fn settle(&self, done: &mut Vec<String>, staged: &mut Vec<Staged>) {
        if done.is_empty() {
            return;
        }
        // Outputs first, then the key store and queues: only then may the
        // acknowledged originals go. On an error they stay, and this is
        // retried until it works (or, at shutdown, left to the next start).
        let mut attempt = 0;
        loop {
            let synced = self
                .emit(staged)
                .and_then(|_| super::output::sync_filesystem_of(&self.staging))
                .and_then(|_| self.router.sync())
                .and_then(|_| self.spool.mark_done(done))
                .and_then(|_| self.rt.store.flush());
            let Err(e) = synced else { break };
            attempt += 1;
            tracing::error!(error = %format!("{e:#}"), attempt, "sync failed; spool records kept");
            recovery::after_failure(&self.rt, &self.reserve, &e);
            if self.stopping.load(Ordering::Relaxed) {
                done.clear();
                staged.clear();
                return;
            }
            std::thread::sleep(recovery::backoff(attempt));
        }
        health::clear(Fault::Pipeline);
        if let Err(e) = self.spool.remove_done(done) {
            tracing::error!(error = %format!("{e:#}"), "cannot clean up the spool");
        }
        done.clear();
    }

    /// Process one id. A storage error (disk full, key store) is never a
    /// reason to quarantine: the instance stays in the spool and is retried
    /// with back-off until it goes through, while `/healthz` says why.
    /// Below half the disk reserve nothing is written. False (only at
    /// shutdown) leaves it in the spool for the next start.
    fn process_with_retry(&self, id: &str, staged: &mut Vec<Staged>) -> bool {
        let span = tracing::info_span!("instance", spool = %id);
        let _g = span.enter();
        let mut attempt = 0u32;
        loop {
            let stopping = self.stopping.load(Ordering::Relaxed);
            if attempt > 0 && stopping {
                tracing::warn!("the instance stays in the spool until the next start");
                return false;
            }
            let result = self.reserve.may_work().map_err(anyhow::Error::msg);
            match result.and_then(|()| self.process(id, staged)) {
                Ok(()) => {
                    if attempt > 0 {
                        health::clear(Fault::Pipeline);
                    }
                    return true;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(error = %format!("{e:#}"), attempt, "processing paused, will retry");
                    recovery::after_failure(&self.rt, &self.reserve, &e);
                    if !stopping {
                        std::thread::sleep(recovery::backoff(attempt));
                    }
                }
            }
        }
    }

    /// One id through the stage; an output waits in `staged` when the key
    /// store batches its writes.
    fn process(&self, id: &str, staged: &mut Vec<Staged>) -> Result<()> {
        let path = self.spool.ready_path(id);
        // None: already done by an earlier run that stopped before settling.
        let Some(bytes) = self.spool.read(id)? else {
            return Ok(());
        };
        let rt = &self.rt;
        let origin = format!("scp spool {id}");
        let released = crate::config::FilterConfig::released();
        let filter = if id.ends_with(RELEASED_SUFFIX) {
            &released
        } else {
            &rt.config.filter
        };
        // A series route's instances (head MR) wait in the holding area for the rest of its series.
        if let Some(h) = &self.series {
            if crate::pipeline::series::hold_if_series(h, rt, filter, id, &path, &bytes)? {
                return Ok(());
            }
        }
        let stage = Stage {
            deid: &rt.deid,
            filter,
            routes: &rt.routes,
            out_root: &self.staging,
            quarantine: &self.quarantine,
            durable: false,
            claims: &rt.claims,
        };
        match stage.process(&bytes, &origin)? {
            FileOutcome::Written {
                path,
                info,
                calling_ae,
                ..
            } => {
                if self.rt.store.shared().is_some() {
                    // Its own name until it is emitted: another copy of the
                    // same instance (same staging path) may be processed by
                    // another worker meanwhile.
                    let waiting = self.staging.join(BATCHED).join(format!("{id}.dcm"));
                    std::fs::rename(&path, &waiting).with_context(|| {
                        format!("cannot move {} to {}", path.display(), waiting.display())
                    })?;
                    staged.push(Staged {
                        path: waiting,
                        info,
                        calling_ae,
                    });
                } else {
                    self.route(&path, &info, calling_ae.as_deref())?;
                }
            }
            FileOutcome::Quarantined { id, .. } => {
                crate::metrics::inc(&crate::metrics::METRICS.instances_quarantined);
                tracing::info!(quarantine_id = %id, "kept back in quarantine");
            }
        }
        Ok(())
    }
}
