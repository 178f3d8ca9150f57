//! Offline batch mode (`deidgate anonymize IN OUT`): the gateway's pipeline
//! over a file or a folder tree, in parallel, safe to run again.

use super::chest::{self, ChestRoute};
use super::output::{object_path, sync_filesystem_of, write_atomic};
use super::photo::PhotoRoute;
use super::quarantine::Quarantine;
use super::router::ObjectInfo;
use super::routes::PixelRoutes;
use crate::deid::{Deidentifier, Report};
use crate::runtime::Runtime;
use anyhow::{Context, Result};
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
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

/// The result for one input file.
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

/// Parse a Part 10 object from bytes (with or without the 128-byte preamble).
pub fn parse(bytes: &[u8]) -> Result<DefaultDicomObject, String> {
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .from_reader(bytes)
        .map_err(|e| format!("cannot parse as DICOM Part 10: {e}"))
}

/// An object de-identified and encoded, with what routing needs.
struct Encoded {
    buf: Vec<u8>,
    info: ObjectInfo,
    report: Report,
    patient: String,
    calling_ae: Option<String>,
}

/// Precheck, parse, filter, de-identify and encode; `Err` is the reason for
/// quarantine.
fn encode_deidentified(
    bytes: &[u8],
    deid: &Deidentifier,
    filter: &crate::config::FilterConfig,
    routes: &PixelRoutes,
) -> Result<Encoded, String> {
    super::precheck::check(bytes).map_err(|r| format!("cannot parse as DICOM Part 10: {r}"))?;
    let mut obj = parse(bytes)?;
    super::filter::check(&obj, filter)?;
    // Safety net: head MR is remodeled as a series (pipeline::series), never
    // passed alone with its face.
    let class = obj.meta().media_storage_sop_class_uid().to_string();
    if super::mri::select::is_head_mr(&obj, &class) {
        return Err("head MR: only processed as a whole series by the MRI route".into());
    }
    let calling_ae = obj
        .meta()
        .source_application_entity_title()
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string());
    let mut codes = Vec::new();
    let mut replaced = None;
    if PhotoRoute::applies(&obj) {
        let applied = routes.photo.apply(&mut obj)?;
        if applied.faces == 0 {
            tracing::info!("photo route: no face found; pixels passed unchanged");
        } else {
            codes.push(crate::deid::markers::CLEAN_RECOGNIZABLE_VISUAL_FEATURES);
            let cols = crate::deid::engine::text(&obj, dicom_dictionary_std::tags::COLUMNS);
            let rows = crate::deid::engine::text(&obj, dicom_dictionary_std::tags::ROWS);
            let dims = (cols.parse().unwrap_or(0), rows.parse().unwrap_or(0));
            replaced = Some(super::photo::encode_regions(
                dims.0,
                dims.1,
                &applied.regions,
            ));
            tracing::info!(
                faces = applied.faces,
                annotation_boxes = applied.annotation_boxes,
                "photo route: faces replaced"
            );
        }
    } else if ChestRoute::applies(&obj) {
        match routes.chest.apply(&mut obj)? {
            chest::Outcome::Deformed => {
                codes.push(crate::deid::markers::CLEAN_RECOGNIZABLE_VISUAL_FEATURES);
                tracing::info!("chest route: deformation applied");
            }
            chest::Outcome::Disabled => {
                tracing::info!("chest route disabled by configuration: pixels passed unchanged")
            }
            chest::Outcome::NoPixelData => {}
        }
    }
    let d = deid
        .deidentify(obj, &codes)
        .map_err(|e| format!("cannot de-identify: {e}"))?;
    if let Some(regions) = replaced {
        // Sealed under the new instance UID before the output exists, so an
        // acknowledged, replaced photograph can always be restored.
        let store = deid
            .store()
            .ok_or("photo route: no key store to keep the replaced pixels in")?;
        store
            .put_pixels(&d.sop_instance_uid, &regions)
            .map_err(|e| format!("photo route: cannot store the replaced pixels: {e:#}"))?;
    }
    let info = ObjectInfo::of(&d.object, d.sop_instance_uid, d.study_uid, d.series_uid);
    let buf = super::output::encode(d.object, bytes.len() + 1024).map_err(|e| format!("{e:#}"))?;
    Ok(Encoded {
        buf,
        info,
        report: d.report,
        patient: d.patient_pseudonym,
        calling_ae,
    })
}

/// De-identify one object held in memory and write it under `out_root`.
/// Anything that cannot be done safely ends in quarantine with the reason,
/// including a panic inside a parser: one bad object never stops a worker.
/// With `durable` false the caller must sync the file system afterwards.
// The stages and sinks are separate borrows of the runtime on purpose (the
// spool workers pass a per-item filter); a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn process_bytes(
    bytes: &[u8],
    origin: &str,
    deid: &Deidentifier,
    filter: &crate::config::FilterConfig,
    routes: &PixelRoutes,
    out_root: &Path,
    quarantine: &Quarantine,
    durable: bool,
) -> Result<FileOutcome> {
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        encode_deidentified(bytes, deid, filter, routes)
    }))
    .unwrap_or_else(|_| Err("internal error: de-identification panicked on this object".into()));
    let e = match attempt {
        Ok(e) => e,
        Err(reason) => {
            let id = quarantine.put(bytes, &reason, origin)?;
            tracing::warn!(quarantine_id = %id, %reason, "quarantined");
            return Ok(FileOutcome::Quarantined { id, reason });
        }
    };
    let i = &e.info;
    let path = object_path(out_root, &i.study_uid, &i.series_uid, &i.sop_instance);
    write_atomic(&path, &e.buf, durable)?;
    tracing::debug!(patient = %e.patient, sop = %i.sop_instance, "de-identified");
    Ok(FileOutcome::Written {
        path,
        report: e.report,
        info: e.info,
        calling_ae: e.calling_ae,
    })
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
    // Head MR series first, as series; every other file one by one below.
    let (series, files) = super::series::batch::partition(rt, all);
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let quarantine = Quarantine::new(rt.quarantine_dir());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .context("cannot start worker threads")?;
    let summary = Mutex::new(Summary {
        files: n_files,
        ..Summary::default()
    });
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    for group in series.values() {
        match super::series::batch::run_series(rt, group, output, &quarantine) {
            Ok(outcomes) => {
                let mut s = summary.lock().expect("summary lock");
                outcomes.into_iter().for_each(|(_, o)| count(&mut s, o));
            }
            Err(e) => {
                first_error.lock().expect("error lock").get_or_insert(e);
            }
        }
    }
    pool.install(|| {
        files.par_iter().for_each(|f| {
            let origin = f.display().to_string();
            let res = std::fs::read(f)
                .with_context(|| format!("cannot read {origin}"))
                .and_then(|bytes| {
                    process_bytes(
                        &bytes,
                        &origin,
                        &rt.deid,
                        &rt.config.filter,
                        &rt.routes,
                        output,
                        &quarantine,
                        false,
                    )
                });
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
