//! The output guard: before an object is handed to any sink, its encoded
//! bytes are scanned for the object's own original identifiers, and an
//! object that still holds one goes to quarantine (or, under
//! `[guard] on_hit = "warn"`, out with a warning).
//!
//! - [`crate::deid::phi`]: what is looked for, read from the original
//!   object before de-identification, and the matcher that finds it (shared
//!   with the text route, which compares the lines it reads);
//! - [`walk`]: the element layout of the encoded bytes (inflated when
//!   deflated), so that native pixel, overlay and waveform samples are
//!   skipped and a hit is named by its element;
//! - [`scan`]: which matches count (not the pseudonyms, not inside UIDs and
//!   numeric elements) and the reason's words.
//!
//! The reason and the log name the kind of identifier and the element,
//! never the value.

pub mod scan;
pub mod walk;

pub use crate::deid::phi::{Identifiers, Kind, Matcher};
pub use scan::{scan, Hit};

use crate::config::{GuardConfig, OnHit};
use crate::deid::profile::Profile;
use dicom_object::InMemDicomObject;

/// The guard of one object: its identifiers, read before de-identification.
pub struct Guard<'a> {
    matcher: Matcher,
    profile: &'a Profile,
    on_hit: OnHit,
}

/// Hits named in a reason at most.
const MAX_NAMED: usize = 3;

impl<'a> Guard<'a> {
    /// `None` when the guard is off.
    pub fn prepare(
        cfg: &GuardConfig,
        profile: &'a Profile,
        original: &InMemDicomObject,
    ) -> Option<Guard<'a>> {
        cfg.enabled.then(|| Guard {
            matcher: Matcher::new(Identifiers::collect(original, profile)),
            profile,
            on_hit: cfg.on_hit,
        })
    }

    /// Scan the encoded output of the object. `Err(reason)`: quarantine it.
    /// A hit is counted and logged with the pseudonyms (`patient`, `sop`)
    /// in either mode.
    pub fn check(&self, encoded: &[u8], patient: &str, sop: &str) -> Result<(), String> {
        let hits = scan(&self.matcher, self.profile, encoded);
        if hits.is_empty() {
            return Ok(());
        }
        crate::metrics::inc(&crate::metrics::METRICS.guard_hits);
        let reason = reason(&hits);
        match self.on_hit {
            OnHit::Quarantine => {
                tracing::warn!(%patient, %sop, %reason, "output guard: kept back");
                Err(reason)
            }
            OnHit::Warn => {
                tracing::warn!(%patient, %sop, %reason, "output guard: delivered anyway (on_hit = \"warn\")");
                Ok(())
            }
        }
    }
}

/// "output guard: the patient's name in (0008,1030) StudyDescription; ..."
pub fn reason(hits: &[Hit]) -> String {
    let mut parts: Vec<String> = hits
        .iter()
        .take(MAX_NAMED)
        .map(|h| format!("{} in {}", h.kind.describe(), h.location))
        .collect();
    if hits.len() > MAX_NAMED {
        parts.push(format!("{} more", hits.len() - MAX_NAMED));
    }
    format!("output guard: the output still holds {}", parts.join("; "))
}
