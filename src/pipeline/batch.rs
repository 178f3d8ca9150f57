//! Offline batch mode (`deidgate anonymize IN OUT`): a thin driver of the
//! gateway's per-instance stage ([`super::instance`]) and series stage over
//! a file or a folder tree, in parallel, safe to run again.

use super::duplicates::BatchClaims;
use super::instance::{FileOutcome, Stage};
use super::output::sync_filesystem_of;
use super::quarantine::Quarantine;
use crate::deid::Report;
use crate::runtime::Runtime;
use anyhow::{Context, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a batch run did. Counts only: safe to print and log.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: usize,
    pub written: usize,
    pub quarantined: usize,
    pub report: Report,
    /// Quarantine reasons with their counts.
    pub reasons: Vec<(String, usize)>,
}

/// Every regular file under `input` (or `input` itself), sorted.
pub fn collect_files(input: &Path) -> Result<Vec<PathBuf>> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    anyhow::ensure!(
        input.is_dir(),
        "{} is neither a file nor a folder",
        input.display()
    );
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(input)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    Ok(files)
}

/// Add one outcome to the summary.
fn count(s: &mut Summary, o: FileOutcome) {
    match o {
        FileOutcome::Written { report, .. } => {
            s.written += 1;
            s.report.merge(&report);
        }
        FileOutcome::Quarantined { reason, .. } => {
            s.quarantined += 1;
            let key = reason.chars().take(80).collect::<String>();
            match s.reasons.iter_mut().find(|(r, _)| *r == key) {
                Some((_, n)) => *n += 1,
                None => s.reasons.push((key, 1)),
            }
        }
    }
}

/// Run the batch with `jobs` worker threads (0 = one per core).
pub fn run(rt: &Runtime, input: &Path, output: &Path, jobs: usize) -> Result<Summary> {
    let all = collect_files(input)?;
    let n_files = all.len();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .context("cannot start worker threads")?;
    // Decided before the run, so thread timing cannot change who keeps a UID.
    let scan = std::time::Instant::now();
    let claims = pool.install(|| BatchClaims::scan(&all, rt.deid.pseudonymizer()))?;
    tracing::debug!(
        files = n_files,
        ms = scan.elapsed().as_millis() as u64,
        "duplicate SOP Instance UID scan"
    );
    if !claims.is_empty() {
        tracing::warn!(
            files = claims.len(),
            "inputs whose SOP Instance UID another input already has"
        );
    }
    // Head MR series first, as series; every other file one by one below.
    let (series, files) = super::series::batch::partition(rt, all);
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let quarantine = Quarantine::new(rt.quarantine_dir());
    let summary = Mutex::new(Summary {
        files: n_files,
        ..Summary::default()
    });
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    for group in series.values() {
        match super::series::batch::run_series(rt, group, output, &quarantine, &claims) {
            Ok(outcomes) => {
                let mut s = summary.lock().expect("summary lock");
                outcomes.into_iter().for_each(|(_, o)| count(&mut s, o));
            }
            Err(e) => {
                first_error.lock().expect("error lock").get_or_insert(e);
            }
        }
    }
    let stage = Stage {
        deid: &rt.deid,
        filter: &rt.config.filter,
        routes: &rt.routes,
        out_root: output,
        quarantine: &quarantine,
        durable: false,
        claims: &claims,
    };
    pool.install(|| {
        files.par_iter().for_each(|f| {
            let origin = f.display().to_string();
            let res = std::fs::read(f)
                .with_context(|| format!("cannot read {origin}"))
                .and_then(|bytes| stage.process(&bytes, &origin));
            let mut s = summary.lock().expect("summary lock");
            match res {
                Ok(o) => count(&mut s, o),
                Err(e) => {
                    first_error.lock().expect("error lock").get_or_insert(e);
                }
            }
        })
    });
    crate::keystore::KeyStore::flush(rt.store.as_ref())?;
    // One syncfs for the whole batch instead of an fsync per file
    // (quarantine writes are already durable one by one).
    sync_filesystem_of(output)?;
    if let Some(e) = first_error.into_inner().expect("error lock") {
        return Err(e.context("batch stopped: an output could not be written"));
    }
    Ok(summary.into_inner().expect("summary lock"))
}
