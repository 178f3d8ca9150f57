//! The gateway's series thread: it watches the holding area, claims each
//! complete series, runs it through the series route (head MR) and hands the outputs to
//! the router; only when they are durable is the series dropped. Held
//! series survive restarts; claimed ones are redone first. With a shared
//! key store, a series that arrived split across replicas is quarantined
//! whole instead (see [`super::split`]).

use super::complete::claimable;
use super::holding::Holding;
use super::process::process_series;
use super::split::{key_of_claimed, Split};
use crate::keystore::KeyStore;
use crate::pipeline::instance::{FileOutcome, Stage};
use crate::pipeline::quarantine::Quarantine;
use crate::pipeline::router::Router;
use crate::pipeline::spool::Spool;
use crate::runtime::Runtime;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the holding area is looked at.
const TICK: Duration = Duration::from_millis(250);

pub struct Assembler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

struct State {
    rt: Arc<Runtime>,
    spool: Arc<Spool>,
    holding: Arc<Holding>,
    router: Arc<Router>,
    staging: PathBuf,
    quarantine: Quarantine,
}

impl Assembler {
    /// `spool`: a series is not claimed while one of its members would
    /// still be replayed from the spool log after a crash.
    pub fn start(
        rt: Arc<Runtime>,
        spool: Arc<Spool>,
        holding: Arc<Holding>,
        router: Arc<Router>,
    ) -> Result<Assembler> {
        let staging = rt.config.data_dir().join("staging");
        std::fs::create_dir_all(&staging)?;
        let st = State {
            quarantine: Quarantine::new(rt.quarantine_dir()),
            rt,
            spool,
            holding,
            router,
            staging,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("mri-series".into())
            .spawn(move || st.run(&s))?;
        Ok(Assembler { stop, handle })
    }

    /// Finish the series in progress and stop; open series stay held.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.handle.join();
    }
}

impl State {
    fn run(&self, stop: &AtomicBool) {
        crate::pipeline::background::lower_this_thread();
        let Some(quiet) = self.rt.routes.series().map(|(_, h)| h.quiet()) else {
            return;
        };
        while !stop.load(Ordering::SeqCst) {
            if let Err(e) = self.round(quiet) {
                tracing::error!(error = %format!("{e:#}"), "head MR series: will retry");
                std::thread::sleep(Duration::from_secs(2));
            }
            std::thread::sleep(TICK);
        }
    }

    /// Redo claimed series, then claim and do the complete open ones.
    fn round(&self, quiet: Duration) -> Result<()> {
        for dir in self.holding.claimed()? {
            self.series(&dir)?;
        }
        let now = SystemTime::now();
        for s in self.holding.open_series()? {
            if claimable(&s, quiet, now, |id| self.spool.is_live(id)) {
                tracing::info!(series = %s.key, instances = s.instances, frames = s.frames, slices = s.distinct, "head MR series complete");
                let dir = self.holding.claim(&s.key)?;
                self.series(&dir)?;
            }
        }
        Ok(())
    }

    fn series(&self, dir: &Path) -> Result<()> {
        let members = Holding::members(dir)?;
        let Some((route, hook)) = self.rt.routes.series() else {
            anyhow::bail!("no series route is registered");
        };
        let stage = Stage {
            deid: &self.rt.deid,
            filter: &self.rt.config.filter,
            routes: &self.rt.routes,
            out_root: &self.staging,
            quarantine: &self.quarantine,
            durable: false,
            claims: &self.rt.claims,
        };
        if let Some(reason) = self.split_reason(dir)? {
            for m in &members {
                stage.quarantined(&m.bytes, &reason, &m.origin)?;
                crate::metrics::inc(&crate::metrics::METRICS.instances_quarantined);
            }
            self.holding.finish(dir)?;
            tracing::warn!(instances = members.len(), %reason, "head MR series quarantined");
            return Ok(());
        }
        let (mut written, mut quarantined) = (0, 0);
        let mut placed = std::collections::HashSet::new();
        for (_, outcome) in process_series(&members, route, hook, &stage)? {
            match outcome {
                // Copies of one instance share one output: placed once.
                FileOutcome::Written { path, .. } if placed.contains(&path) => {}
                FileOutcome::Written {
                    path,
                    info,
                    calling_ae,
                    ..
                } => {
                    placed.insert(path.clone());
                    self.router.dispatch(&path, &info, calling_ae.as_deref())?;
                    std::fs::remove_file(&path).ok();
                    crate::metrics::inc(&crate::metrics::METRICS.instances_deidentified);
                    written += 1;
                }
                FileOutcome::Quarantined { .. } => {
                    crate::metrics::inc(&crate::metrics::METRICS.instances_quarantined);
                    quarantined += 1;
                }
            }
        }
        crate::pipeline::output::sync_filesystem_of(&self.staging)?;
        self.router.sync()?;
        self.rt.store.flush()?;
        self.holding.finish(dir)?;
        tracing::info!(written, quarantined, "head MR series done");
        Ok(())
    }

    /// With a shared key store: closes this replica's claim on the series
    /// in `dir`; `Some(reason)` when it arrived split across replicas.
    fn split_reason(&self, dir: &Path) -> Result<Option<String>> {
        let Some(split) = Split::of(&self.rt) else {
            return Ok(None);
        };
        let Some(key) = key_of_claimed(dir) else {
            return Ok(None);
        };
        split.complete(&key)
    }
}
