//! One complete series through the route that holds it (head MR today):
//! parse, one copy per instance, the route's series hook, then the ordinary
//! de-identification of every instance. Shared by the gateway (held series)
//! and batch mode (grouped files).
//!
//! Deterministic: the same inputs give the same output bytes (instances are
//! ordered by SOP Instance UID, never arrival; the route orders by
//! geometry), so a series redone after a crash rewrites identical files.

use crate::dicom::parse;
use crate::pipeline::instance::{FileOutcome, Stage};
use crate::routes::{Cleaned, SeriesHook};
use anyhow::Result;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

/// One received instance of a series.
pub struct Member {
    /// Where it came from (spool id or file path), for quarantine records.
    pub origin: String,
    pub bytes: Vec<u8>,
}

/// Process a series: one outcome per member, as (member index, outcome).
/// `Err` only for failures to write (the caller retries); everything else
/// is an outcome. Copies of one instance (same SOP Instance UID, e.g. sent
/// twice or in several transfer syntaxes) enter the volume once (the last
/// copy) and share its outcome.
pub fn process_series(
    members: &[Member],
    route: &str,
    hook: &dyn SeriesHook,
    stage: &Stage,
) -> Result<Vec<(usize, FileOutcome)>> {
    // Ordered by SOP UID, so arrival order never changes the result.
    let mut parsed: std::collections::BTreeMap<String, (Vec<usize>, DefaultDicomObject)> =
        Default::default();
    let mut outcomes = Vec::new();
    for (n, m) in members.iter().enumerate() {
        match parse(&m.bytes) {
            Ok(o) => {
                let uid = crate::dicom::text(&o, tags::SOP_INSTANCE_UID);
                let copies = parsed.remove(&uid).map(|(c, _)| c).unwrap_or_default();
                parsed.insert(uid, ([copies, vec![n]].concat(), o));
            }
            Err(reason) => outcomes.push((n, quarantine(stage, m, &reason)?)),
        }
    }
    let (copies, objs): (Vec<Vec<usize>>, Vec<DefaultDicomObject>) = parsed.into_values().unzip();
    let cleaned =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook.process_series(objs)))
            .unwrap_or_else(|_| Err("internal error: the series route panicked".into()));
    let (objs, cleaned) = match cleaned {
        Ok(r) => r,
        Err(reason) => {
            let reason = format!("head MR series: {reason}");
            tracing::warn!(instances = copies.len(), %reason, "head MR series quarantined");
            for n in copies.into_iter().flatten() {
                outcomes.push((n, quarantine(stage, &members[n], &reason)?));
            }
            return Ok(outcomes);
        }
    };
    for (copies, obj) in copies.into_iter().zip(objs) {
        let last = *copies.last().expect("at least one copy");
        let m = &members[last];
        let outcome = stage.write_cleaned(route, obj, same(&cleaned), &m.bytes, &m.origin)?;
        for &n in &copies[..copies.len() - 1] {
            let copy = match &outcome {
                FileOutcome::Written {
                    path,
                    report,
                    info,
                    calling_ae,
                } => FileOutcome::Written {
                    path: path.clone(),
                    report: report.clone(),
                    info: info.clone(),
                    calling_ae: calling_ae.clone(),
                },
                FileOutcome::Quarantined { reason, .. } => quarantine(stage, &members[n], reason)?,
            };
            outcomes.push((n, copy));
        }
        outcomes.push((last, outcome));
    }
    Ok(outcomes)
}

/// The series' record for each of its instances (nothing sealed per
/// instance: a series route changes pixels it cannot hand back per slice).
fn same(c: &Cleaned) -> Cleaned {
    Cleaned {
        codes: c.codes.clone(),
        sealed: None,
        note: c.note.clone(),
        method_note: c.method_note.clone(),
        leaks: c.leaks.clone(),
    }
}

fn quarantine(stage: &Stage, m: &Member, reason: &str) -> Result<FileOutcome> {
    stage.quarantined(&m.bytes, reason, &m.origin)
}
