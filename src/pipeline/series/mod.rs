//! Series assembly for head MR: instances are held durably per series until
//! the series is complete, then processed together (see `holding` for the
//! on-disk states, `complete` for the rule, `split` for a series that
//! reaches more than one replica).

pub mod assembler;
pub mod batch;
pub mod classify;
pub mod complete;
pub mod holding;
pub mod process;
pub mod split;

use crate::runtime::Runtime;
use std::path::Path;

/// For the spool workers: if the series route holds `bytes` (spool file
/// `src`; head MR), move it into the holding area and return true; its
/// series thread takes it from there. False: process it as a single
/// instance. With a shared key store, an instance of a series that has
/// reached another replica is quarantined instead (see [`split`]); true
/// too.
pub fn hold_if_series(
    holding: &holding::Holding,
    rt: &Runtime,
    filter: &crate::config::FilterConfig,
    id: &str,
    src: &Path,
    bytes: &[u8],
) -> anyhow::Result<bool> {
    let Some((_, hook)) = rt.routes.series() else {
        return Ok(false);
    };
    let Some(head) = classify::classify(bytes, hook, filter, rt.deid.pseudonymizer()) else {
        return Ok(false);
    };
    if let Some(split) = split::Split::of(rt) {
        if let Some(reason) = split.arrived(&head.key)? {
            let q = crate::pipeline::quarantine::Quarantine::new(rt.quarantine_dir());
            let qid = q.put(bytes, &reason, &format!("scp spool {id} (head MR series)"))?;
            crate::metrics::inc(&crate::metrics::METRICS.instances_quarantined);
            tracing::warn!(series = %head.key, quarantine_id = %qid, %reason, "head MR instance quarantined");
            return Ok(true);
        }
    }
    holding.hold(id, src, bytes, &head)?;
    tracing::info!(series = %head.key, frames = head.frames, slice = %head.slice, "head MR instance held for its series");
    Ok(true)
}
