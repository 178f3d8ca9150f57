//! The per-instance stage every object passes through, in the gateway and in
//! batch mode alike: precheck, parse, filter, the pixel route that claims
//! the object, metadata de-identification, sealing, encoding, writing.
//! Anything that cannot be done safely ends in quarantine with the reason.

use super::filter;
use super::output::{encode, object_path, write_atomic};
use super::quarantine::Quarantine;
use super::router::ObjectInfo;
use crate::config::FilterConfig;
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
}

/// Runs `route` on `obj` and adds what it did to `cleaned`; `Err` is the
/// quarantine reason.
fn apply(
    route: &dyn PixelRoute,
    obj: &mut DefaultDicomObject,
    cleaned: &mut Cleaned,
) -> Result<(), String> {
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
        Outcome::Quarantine(reason) => Err(reason),
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
            self.encode_deidentified(bytes)
        }))
        .unwrap_or_else(|_| {
            Err("internal error: de-identification panicked on this object".into())
        });
        match attempt {
            Ok(e) => self.write(e),
            Err(reason) => self.quarantined(bytes, &reason, origin),
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

    /// Precheck, parse, filter, pixel route, de-identify and encode; `Err`
    /// is the reason for quarantine.
    fn encode_deidentified(&self, bytes: &[u8]) -> Result<Encoded, String> {
        super::precheck::check(bytes).map_err(|r| format!("cannot parse as DICOM Part 10: {r}"))?;
        let mut obj = parse(bytes)?;
        filter::check(&obj, self.filter)?;
        let mut cleaned = Cleaned::default();
        if let Some(route) = self.routes.claim(&obj) {
            apply(route, &mut obj, &mut cleaned)?;
            self.follow(route.name(), &mut obj, &mut cleaned)?;
        }
        self.finish(obj, cleaned, bytes.len() + 1024)
    }

    /// The routes that run after `route` (the text route after the face and
    /// body routes), each on the pixels the one before left.
    fn follow(
        &self,
        route: &str,
        obj: &mut DefaultDicomObject,
        cleaned: &mut Cleaned,
    ) -> Result<(), String> {
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
    ) -> Result<Encoded, String> {
        let calling_ae = calling_ae(&obj);
        let codes: &[MethodCode] = &cleaned.codes;
        let d = self
            .deid
            .deidentify(obj, codes)
            .map_err(|e| format!("cannot de-identify: {e}"))?;
        if let Some(sealed) = &cleaned.sealed {
            // Sealed under the new instance UID before the output exists, so
            // an acknowledged, cleaned object can always be restored.
            let store = self
                .deid
                .store()
                .ok_or("pixel route: no key store to keep the replaced pixels in")?;
            store
                .put_pixels(&d.sop_instance_uid, sealed)
                .map_err(|e| format!("pixel route: cannot store the replaced pixels: {e:#}"))?;
        }
        let mut object = d.object;
        if let Some(note) = &cleaned.method_note {
            add_method_note(&mut object, note);
        }
        let info = ObjectInfo::of(&object, d.sop_instance_uid, d.study_uid, d.series_uid);
        let buf = encode(object, capacity).map_err(|e| format!("{e:#}"))?;
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
            .and_then(|()| self.finish(obj, cleaned, bytes.len() + 4096));
        match done {
            Ok(e) => self.write(e),
            Err(reason) => self.quarantined(bytes, &reason, origin),
        }
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
