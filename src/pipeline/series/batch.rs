//! Batch mode's share of series routes: files the series route holds (head
//! MR) are grouped by series and processed as series; every other file goes
//! through the per-instance stage.

use super::classify::classify;
use super::process::{process_series, Member};
use crate::pipeline::instance::{FileOutcome, Stage};
use crate::pipeline::quarantine::Quarantine;
use crate::runtime::Runtime;
use anyhow::{Context as _, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Split `files` into held series (by series pseudonym) and the rest.
pub fn partition(
    rt: &Runtime,
    files: Vec<PathBuf>,
) -> (BTreeMap<String, Vec<PathBuf>>, Vec<PathBuf>) {
    let Some((_, hook)) = rt.routes.series() else {
        return (BTreeMap::new(), files);
    };
    let mut series: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut rest = Vec::new();
    for f in files {
        let head = std::fs::read(&f)
            .ok()
            .and_then(|b| classify(&b, hook, &rt.config.filter, rt.deid.pseudonymizer()));
        match head {
            Some(h) => series.entry(h.key).or_default().push(f),
            None => rest.push(f),
        }
    }
    (series, rest)
}

/// Process one grouped series from files, writing under `out_root`; each
/// outcome with the index of its file in `files`.
pub fn run_series(
    rt: &Runtime,
    files: &[PathBuf],
    out_root: &Path,
    quarantine: &Quarantine,
    claims: &dyn crate::pipeline::duplicates::Claims,
) -> Result<Vec<(usize, FileOutcome)>> {
    let (route, hook) = rt
        .routes
        .series()
        .context("no series route is registered")?;
    let members = files
        .iter()
        .map(|f| {
            Ok(Member {
                origin: f.display().to_string(),
                bytes: std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let stage = Stage {
        deid: &rt.deid,
        filter: &rt.config.filter,
        routes: &rt.routes,
        out_root,
        quarantine,
        durable: false,
        claims,
    };
    process_series(&members, route, hook, &stage)
}
