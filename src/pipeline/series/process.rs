//! One complete head MR series through the route: volume, face model,
//! write-back, then the ordinary de-identification of every instance.
//! Shared by the gateway (held series) and batch mode (grouped files).
//!
//! Deterministic: the same inputs give the same output bytes (instances are
//! ordered by geometry, not arrival; the model must be deterministic), so a
//! series redone after a crash rewrites identical files.

use crate::deid::markers::{add_method_note, CLEAN_RECOGNIZABLE_VISUAL_FEATURES};
use crate::deid::Deidentifier;
use crate::pipeline::batch::{parse, FileOutcome};
use crate::pipeline::mri::{volume, MriRoute};
use crate::pipeline::output::{encode, object_path, write_atomic};
use crate::pipeline::quarantine::Quarantine;
use crate::pipeline::router::ObjectInfo;
use anyhow::Result;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use std::path::Path;

/// One received instance of a series.
pub struct Member {
    /// Where it came from (spool id or file path), for quarantine records.
    pub origin: String,
    pub bytes: Vec<u8>,
}

/// What a series needs from the runtime.
pub struct Context<'a> {
    pub deid: &'a Deidentifier,
    pub route: &'a MriRoute,
    /// Where written instances go (`<study>/<series>/<sop>.dcm`).
    pub out_root: &'a Path,
    pub quarantine: &'a Quarantine,
}

/// Process a series: one outcome per member, as (member index, outcome).
/// `Err` only for failures to write (the caller retries); everything else
/// is an outcome. Copies of one instance (same SOP Instance UID, e.g. sent
/// twice or in several transfer syntaxes) enter the volume once (the last
/// copy) and share its outcome.
pub fn process_series(members: &[Member], ctx: &Context) -> Result<Vec<(usize, FileOutcome)>> {
    // Ordered by SOP UID, so arrival order never changes the result.
    let mut parsed: std::collections::BTreeMap<String, (Vec<usize>, DefaultDicomObject)> =
        Default::default();
    let mut outcomes = Vec::new();
    for (n, m) in members.iter().enumerate() {
        match parse(&m.bytes) {
            Ok(o) => {
                let uid = crate::deid::engine::text(&o, tags::SOP_INSTANCE_UID);
                let copies = parsed.remove(&uid).map(|(c, _)| c).unwrap_or_default();
                parsed.insert(uid, ([copies, vec![n]].concat(), o));
            }
            Err(reason) => outcomes.push((n, quarantine(ctx, m, &reason)?)),
        }
    }
    let (copies, objs): (Vec<Vec<usize>>, Vec<DefaultDicomObject>) = parsed.into_values().unzip();
    let remodeled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| remodel(objs, ctx)))
        .unwrap_or_else(|_| Err("internal error: the MRI route panicked".into()));
    let (objs, note) = match remodeled {
        Ok(r) => r,
        Err(reason) => {
            let reason = format!("head MR series: {reason}");
            tracing::warn!(instances = copies.len(), %reason, "head MR series quarantined");
            for n in copies.into_iter().flatten() {
                outcomes.push((n, quarantine(ctx, &members[n], &reason)?));
            }
            return Ok(outcomes);
        }
    };
    for (copies, obj) in copies.into_iter().zip(objs) {
        let last = *copies.last().expect("at least one copy");
        let outcome = write_instance(obj, &members[last], &note, ctx)?;
        for &n in &copies[..copies.len() - 1] {
            let same = match &outcome {
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
                FileOutcome::Quarantined { reason, .. } => quarantine(ctx, &members[n], reason)?,
            };
            outcomes.push((n, same));
        }
        outcomes.push((last, outcome));
    }
    Ok(outcomes)
}

/// Volume, model, write-back. `Err` is the series' quarantine reason.
fn remodel(
    mut objs: Vec<DefaultDicomObject>,
    ctx: &Context,
) -> Result<(Vec<DefaultDicomObject>, String), String> {
    let cfg = &ctx.route.cfg;
    let assembled = volume::assemble(&objs, cfg.min_slices)?;
    let model = ctx.route.model()?;
    let (new, face, note) = model
        .remodel(&assembled.volume, &cfg.mode)
        .map_err(|e| format!("face model: {e:#}"))?;
    generate_guard(cfg, &assembled.volume, &new, &face)?;
    let changed = face.iter().filter(|f| **f).count();
    let pixels = volume::apply(assembled, &new, &face)?;
    for (o, px) in objs.iter_mut().zip(pixels) {
        crate::pipeline::mri::pixels::write_back(o, px);
    }
    tracing::info!(instances = objs.len(), face_voxels = changed, %note, "head MR series remodeled");
    Ok((objs, format!("MR face {}: {note}", cfg.mode)))
}

/// Generate mode's privacy guard (`[mri] generate_min_surface_mm`): `Err`
/// (the quarantine reason) when the generated face surface is too close to
/// the subject's; the measured mean distance (mm) when checked.
fn generate_guard(
    cfg: &crate::pipeline::mri::MriConfig,
    vol: &crate::pipeline::mri::Volume,
    new: &[f32],
    face: &[bool],
) -> Result<Option<f64>, String> {
    if cfg.mode != "generate" || cfg.generate_min_surface_mm <= 0.0 {
        return Ok(None);
    }
    if new.len() != vol.data.len() || face.len() != vol.data.len() {
        return Err("the face model returned a result of the wrong size".into());
    }
    let v = crate::models::mri::Volume {
        dims: vol.dims,
        data: vol.data.clone(),
        affine: vol.affine,
    };
    let c = crate::models::mri::guard::check_generated(&v, new, face, cfg.generate_min_surface_mm)
        .map_err(|e| format!("{e:#}"))?;
    tracing::info!(
        face_surface_mm = c.mean_mm,
        face_rays = c.rays,
        "generate mode: face surface check passed"
    );
    Ok(Some(c.mean_mm))
}

/// De-identify and write one remodeled instance; its own failure sends only
/// its original to quarantine.
fn write_instance(
    obj: DefaultDicomObject,
    m: &Member,
    note: &str,
    ctx: &Context,
) -> Result<FileOutcome> {
    let calling_ae = obj
        .meta()
        .source_application_entity_title()
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string());
    let d = match ctx
        .deid
        .deidentify(obj, &[CLEAN_RECOGNIZABLE_VISUAL_FEATURES])
    {
        Ok(d) => d,
        Err(e) => return quarantine(ctx, m, &format!("cannot de-identify: {e}")),
    };
    let mut object = d.object;
    add_method_note(&mut object, note);
    let info = ObjectInfo::of(&object, d.sop_instance_uid, d.study_uid, d.series_uid);
    let buf = encode(object, m.bytes.len() + 4096)?;
    let path = object_path(
        ctx.out_root,
        &info.study_uid,
        &info.series_uid,
        &info.sop_instance,
    );
    write_atomic(&path, &buf, false)?;
    Ok(FileOutcome::Written {
        path,
        report: d.report,
        info,
        calling_ae,
    })
}

fn quarantine(ctx: &Context, m: &Member, reason: &str) -> Result<FileOutcome> {
    let id = ctx.quarantine.put(&m.bytes, reason, &m.origin)?;
    Ok(FileOutcome::Quarantined {
        id,
        reason: reason.to_string(),
    })
}
