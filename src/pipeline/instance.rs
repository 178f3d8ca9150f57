//! The per-instance stage every object passes through, in the gateway and in
//! batch mode alike: precheck, parse, filter, the pixel route that claims
//! the object, metadata de-identification, sealing, encoding, writing.
//! Anything that cannot be done safely ends in quarantine with the reason.

use super::duplicates::{set_sop_instance_uid, Claim, Claims};
use super::filter;
use super::output::{encode, object_path, write_atomic};
use super::quarantine::Quarantine;
use super::router::ObjectInfo;
use crate::config::{DuplicateUid, FilterConfig};
use crate::deid::markers::{add_method_note, MethodCode};
use crate::deid::{Deidentifier, Report};
use crate::dicom::{calling_ae, parse};
use crate::routes::{Cleaned, Outcome, PixelRoute, PixelRoutes};
use anyhow::Result;
use dicom_object::DefaultDicomObject;
use std::path::{Path, PathBuf};

/// The result for one input object.
pub enum FileOutcome {
    Written {
        path: PathBuf,
        report: Report,
        info: ObjectInfo,
        /// The AE that sent it (spool files record it in the file meta).
        calling_ae: Option<String>,
    },
    Quarantined {
        id: String,
        reason: String,
    },
}

/// What the stage needs: borrowed from the runtime, except the filter
/// (the spool workers pass a per-item one for released objects).
pub struct Stage<'a> {
    pub deid: &'a Deidentifier,
    pub filter: &'a FilterConfig,
    pub routes: &'a PixelRoutes,
    /// Where written objects go (`<study>/<series>/<sop>.dcm`).
    pub out_root: &'a Path,
    pub quarantine: &'a Quarantine,
    /// False: the caller syncs the file system afterwards (batch mode).
    pub durable: bool,
    /// Who owns each SOP Instance UID (see [`super::duplicates`]).
    pub claims: &'a dyn Claims,
}

/// Why an object did not come out: its content (quarantine, with the
/// reason) or the gateway's own storage (key store, outputs: the caller
/// retries, and the object is never quarantined for it).
enum Stop {
    Quarantine(String),
    Storage(anyhow::Error),
}

impl From<String> for Stop {
    fn from(reason: String) -> Stop {
        Stop::Quarantine(reason)
    }
}

impl From<&str> for Stop {
    fn from(reason: &str) -> Stop {
        Stop::Quarantine(reason.to_string())
    }
}

/// Runs `route` on `obj` and adds what it did to `cleaned`; `Err` is the
/// quarantine reason.
fn apply(
    route: &dyn PixelRoute,
    obj: &mut DefaultDicomObject,
    cleaned: &mut Cleaned,
) -> Result<(), Stop> {
    match route.process(obj) {
        Outcome::Cleaned(c) => {
            tracing::info!(route = route.name(), "{}", c.note);
            merge(cleaned, c);
            Ok(())
        }
        Outcome::Untouched(why) => {
            tracing::info!(route = route.name(), "{why}");
            Ok(())
        }
        Outcome::Quarantine(reason) => Err(Stop::Quarantine(reason)),
    }
}

/// Both routes' codes (once each), sealed records chained in the order the
/// routes ran (undone last first), notes joined.
fn merge(into: &mut Cleaned, c: Cleaned) {
    for code in c.codes {
        if !into.codes.contains(&code) {
            into.codes.push(code);
        }
    }
    into.sealed = match (into.sealed.take(), c.sealed) {
        (Some(a), Some(b)) => Some(crate::routes::sealed::chain(a, b)),
        (a, b) => a.or(b),
    };
    for leak in c.leaks {
        if !into.leaks.contains(&leak) {
            into.leaks.push(leak);
        }
    }
    into.method_note = match (into.method_note.take(), c.method_note) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    into.note = if into.note.is_empty() {
        c.note
    } else {
        format!("{}; {}", into.note, c.note)
    };
}

/// An object de-identified and encoded, with what routing needs.
struct Encoded {
    buf: Vec<u8>,
    info: ObjectInfo,
    report: Report,
    patient: String,
    calling_ae: Option<String>,
}

impl Stage<'_> {
    /// De-identify one object held in memory and write it. A panic inside a
    /// parser or a route also ends in quarantine: one bad object never stops
    /// a worker. `Err` only when writing failed (the caller retries).
    pub fn process(&self, bytes: &[u8], origin: &str) -> Result<FileOutcome> {
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.encode_deidentified(bytes, origin)
        }))
        .unwrap_or_else(|_| {
            Err("internal error: de-identification panicked on this object".into())
        });
        self.conclude(attempt, bytes, origin)
    }

    /// Write, quarantine, or hand a storage error back to the caller.
    fn conclude(
        &self,
        attempt: Result<Encoded, Stop>,
        bytes: &[u8],
        origin: &str,
    ) -> Result<FileOutcome> {
        match attempt {
            Ok(e) => self.write(e),
            Err(Stop::Quarantine(reason)) => self.quarantined(bytes, &reason, origin),
            Err(Stop::Storage(e)) => Err(e),
        }
    }

    /// Quarantine `bytes` with `reason`.
    pub fn quarantined(&self, bytes: &[u8], reason: &str, origin: &str) -> Result<FileOutcome> {
        let id = self.quarantine.put(bytes, reason, origin)?;
        tracing::warn!(quarantine_id = %id, %reason, "quarantined");
        Ok(FileOutcome::Quarantined {
            id,
            reason: reason.to_string(),
        })
    }

    /// Precheck, parse, filter, pixel route, de-identify and encode.
    fn encode_deidentified(&self, bytes: &[u8], origin: &str) -> Result<Encoded, Stop> {
        super::precheck::check(bytes).map_err(|r| format!("cannot parse as DICOM Part 10: {r}"))?;
        let mut obj = parse(bytes)?;
        filter::check(&obj, self.filter)?;
        let mut cleaned = Cleaned::default();
        if let Some(route) = self.routes.claim(&obj) {
            apply(route, &mut obj, &mut cleaned)?;
            self.follow(route.name(), &mut obj, &mut cleaned)?;
        }
        self.finish(obj, cleaned, bytes.len() + 1024, origin)
    }

    /// The routes that run after `route` (the text route after the face and
    /// body routes), each on the pixels the one before left.
    fn follow(
        &self,
        route: &str,
        obj: &mut DefaultDicomObject,
        cleaned: &mut Cleaned,
    ) -> Result<(), Stop> {
        for r in self.routes.followers(route, obj) {
            apply(r, obj, cleaned)?;
        }
        Ok(())
    }

    /// Metadata de-identification of an object whose pixels a route has
    /// dealt with, the route's codes and notes, sealing, encoding.
    fn finish(
        &self,
        obj: DefaultDicomObject,
        cleaned: Cleaned,
        capacity: usize,
        origin: &str,
    ) -> Result<Encoded, Stop> {
        let calling_ae = calling_ae(&obj);
        let original_uid = crate::dicom::text(&obj, dicom_dictionary_std::tags::SOP_INSTANCE_UID);
        // The output guard reads the original identifiers before they go.
        let guard = super::guard::Guard::prepare(self.deid.guard(), self.deid.profile(), &obj);
        let codes: &[MethodCode] = &cleaned.codes;
        let mut d = self.deid.deidentify(obj, codes).map_err(|e| match e {
            crate::deid::engine::DeidError::KeyStore(m) => {
                Stop::Storage(anyhow::anyhow!("key store: {m}"))
            }
            e => Stop::Quarantine(format!("cannot de-identify: {e}")),
        })?;
        self.settle_uid(&mut d, &original_uid, origin)?;
        if let Some(sealed) = &cleaned.sealed {
            // Sealed under the new instance UID before the output exists, so
            // an acknowledged, cleaned object can always be restored.
            let store = self
                .deid
                .store()
                .ok_or("pixel route: no key store to keep the replaced pixels in")?;
            store.put_pixels(&d.sop_instance_uid, sealed).map_err(|e| {
                Stop::Storage(e.context("pixel route: cannot store the replaced pixels"))
            })?;
        }
        if !cleaned.leaks.is_empty() {
            // A source that burns identifiers into its pixels is a finding
            // for the data manager, kept with the other audited events.
            let store = self
                .deid
                .store()
                .ok_or("text route: no key store to audit the burned-in identifiers in")?;
            let reason = format!(
                "burned-in text of the source held {}; the lines were filled",
                cleaned.leaks.join(", ")
            );
            store
                .audit_event(
                    "pixels.identifiers_burned_in",
                    &d.sop_instance_uid,
                    &reason,
                    "filled",
                )
                .map_err(|e| Stop::Storage(e.context("cannot audit burned-in identifiers")))?;
        }
        let mut object = d.object;
        if let Some(note) = &cleaned.method_note {
            add_method_note(&mut object, note);
        }
        let info = ObjectInfo::of(&object, d.sop_instance_uid, d.study_uid, d.series_uid);
        let buf = encode(object, capacity).map_err(|e| Stop::Quarantine(format!("{e:#}")))?;
        if let Some(g) = &guard {
            g.check(&buf, &d.patient_pseudonym, &info.sop_instance)?;
        }
        Ok(Encoded {
            buf,
            info,
            report: d.report,
            patient: d.patient_pseudonym,
            calling_ae,
        })
    }

    /// Finish and write one object of a series cleaned as a whole; its own
    /// failure sends only its original (`bytes`) to quarantine.
    /// `route` is the series route; the routes that follow it run here,
    /// per instance.
    pub fn write_cleaned(
        &self,
        route: &str,
        mut obj: DefaultDicomObject,
        mut cleaned: Cleaned,
        bytes: &[u8],
        origin: &str,
    ) -> Result<FileOutcome> {
        let done = self
            .follow(route, &mut obj, &mut cleaned)
            .and_then(|()| self.finish(obj, cleaned, bytes.len() + 4096, origin));
        self.conclude(done, bytes, origin)
    }

    /// The first instance with a SOP Instance UID keeps it; another
    /// patient's instance with the same UID is quarantined or gets a new
    /// UID (`[filter] duplicate_sop_instance_uid`), never replaces it.
    fn settle_uid(
        &self,
        d: &mut crate::deid::engine::Deidentified,
        original_uid: &str,
        origin: &str,
    ) -> Result<(), Stop> {
        let claim = self
            .claims
            .claim(original_uid, &d.patient_pseudonym, origin)
            .map_err(Stop::Storage)?;
        let Claim::Conflict { owner, key } = claim else {
            return Ok(());
        };
        crate::metrics::inc(&crate::metrics::METRICS.duplicate_uids);
        let patient = &d.patient_pseudonym;
        if self.filter.duplicate_sop_instance_uid == DuplicateUid::Quarantine {
            tracing::warn!(%patient, first_patient = %owner, sop = %d.sop_instance_uid, "duplicate SOP Instance UID: kept back");
            return Err(Stop::Quarantine(format!(
                "duplicate SOP Instance UID: patient {owner} already has an instance with this UID \
                 (this one is patient {patient}'s); release it to deliver it under a new UID"
            )));
        }
        let parts: Vec<&str> = key.iter().map(String::as_str).collect();
        let uid = self
            .deid
            .pseudonymizer()
            .duplicate_uid(original_uid, &parts);
        set_sop_instance_uid(&mut d.object, &uid)
            .map_err(|e| Stop::Quarantine(format!("{e:#}")))?;
        if let Some(store) = self.deid.store() {
            store
                .put_uid(&uid, original_uid)
                .map_err(|e| Stop::Storage(e.context("key store")))?;
        }
        tracing::warn!(%patient, first_patient = %owner, sop = %uid, "duplicate SOP Instance UID: delivered under a new UID");
        d.sop_instance_uid = uid;
        Ok(())
    }

    fn write(&self, e: Encoded) -> Result<FileOutcome> {
        let i = &e.info;
        let path = object_path(self.out_root, &i.study_uid, &i.series_uid, &i.sop_instance);
        write_atomic(&path, &e.buf, self.durable)?;
        tracing::debug!(patient = %e.patient, sop = %i.sop_instance, "de-identified");
        Ok(FileOutcome::Written {
            path,
            report: e.report,
            info: e.info,
            calling_ae: e.calling_ae,
        })
    }
}
