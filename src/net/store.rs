//! One C-STORE data set on its way to the spool: fragments are streamed to a
//! temp file behind a file meta group built from the command, and Success is
//! only returned once the file is fsync'd, understood and renamed into
//! `ready/`. Every other outcome is a real failure status.

use super::dimse::{status, Command};
use crate::pipeline::quarantine::Quarantine;
use crate::pipeline::spool::Spool;
use dicom_dictionary_std::tags;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Write buffer per association: small instances reach the disk in one write.
const BUFFER: usize = 256 * 1024;

/// What finishing an instance needs from the receiver.
pub struct Sink {
    pub spool: Arc<Spool>,
    pub queue: mpsc::Sender<String>,
    pub quarantine: Quarantine,
}

/// An instance being received.
pub struct Incoming {
    id: String,
    path: PathBuf,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    /// The failure to report once the last fragment is in.
    failed: Option<(u16, &'static str)>,
    committed: bool,
    pub bytes: u64,
    pub command: Command,
}

/// A status with a comment for the sender (never PHI).
pub type Verdict = (u16, Option<&'static str>);

impl Incoming {
    /// Open the temp file and write the preamble and file meta group.
    pub async fn start(spool: &Spool, command: Command, ts: &str, calling_ae: &str) -> Incoming {
        let (id, path) = spool.new_incoming();
        let mut inc = Incoming {
            id,
            path,
            file: None,
            failed: None,
            committed: false,
            bytes: 0,
            command,
        };
        let meta = match file_meta(&inc.command, ts, calling_ae) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build a file meta group from the command");
                inc.failed = Some((status::CANNOT_UNDERSTAND, "invalid C-STORE command"));
                return inc;
            }
        };
        match tokio::fs::File::create(&inc.path).await {
            Ok(f) => {
                let mut w = tokio::io::BufWriter::with_capacity(BUFFER, f);
                match w.write_all(&meta).await {
                    Ok(()) => inc.file = Some(w),
                    Err(e) => inc.spool_error(e),
                }
            }
            Err(e) => inc.spool_error(e),
        }
        inc
    }

    fn spool_error(&mut self, e: std::io::Error) {
        tracing::error!(error = %e, "spool write failed");
        self.failed = Some((
            status::OUT_OF_RESOURCES,
            "out of resources: spool write failed",
        ));
        self.file = None;
    }

    /// Refuse the instance: the rest is drained and `status` reported.
    pub fn refuse(&mut self, status: u16, why: &'static str) {
        self.failed = Some((status, why));
        self.file = None;
    }

    /// Append a data set fragment. After a failure the rest is drained.
    pub async fn write(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if let Some(w) = self.file.as_mut() {
            if let Err(e) = w.write_all(data).await {
                self.spool_error(e);
            }
        }
    }

    /// The last fragment is in: make the instance durable and decide.
    pub async fn finish(mut self, sink: &Sink) -> Verdict {
        if let Some((s, why)) = self.failed {
            return (s, Some(why));
        }
        let Some(mut w) = self.file.take() else {
            return (status::OUT_OF_RESOURCES, Some("spool file missing"));
        };
        let synced = async {
            w.flush().await?;
            w.get_mut().sync_all().await
        }
        .await;
        drop(w);
        if let Err(e) = synced {
            self.spool_error(e);
            return (status::OUT_OF_RESOURCES, self.failed.map(|f| f.1));
        }
        let (path, command) = (self.path.clone(), self.command.clone());
        let q = sink.quarantine.clone();
        let origin = format!("scp spool {}", self.id);
        let checked =
            tokio::task::spawn_blocking(move || check_or_quarantine(&path, &command, &q, &origin))
                .await
                .unwrap_or(Err((status::OUT_OF_RESOURCES, "internal error")));
        if let Err((s, why)) = checked {
            return (s, Some(why));
        }
        let (spool, id, path) = (sink.spool.clone(), self.id.clone(), self.path.clone());
        match tokio::task::spawn_blocking(move || spool.commit(&id, &path)).await {
            Ok(Ok(())) => self.committed = true,
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "spool commit failed");
                return (
                    status::OUT_OF_RESOURCES,
                    Some("out of resources: spool commit failed"),
                );
            }
            Err(_) => return (status::OUT_OF_RESOURCES, Some("internal error")),
        }
        // Durable from here on: Success is true even if the worker queue is
        // closed (shutdown), since a restart resumes everything in ready/.
        // Awaiting a full queue is the back-pressure on the sender.
        let _ = sink.queue.send(self.id.clone()).await;
        (status::SUCCESS, None)
    }
}

impl Drop for Incoming {
    /// A partial or refused instance leaves nothing behind in `incoming/`.
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// 128-byte preamble, "DICM" and the file meta group for the data set that
/// follows in transfer syntax `ts`.
fn file_meta(cmd: &Command, ts: &str, calling_ae: &str) -> Result<Vec<u8>, String> {
    if cmd.sop_class.is_empty() || cmd.sop_instance.is_empty() {
        return Err("command lacks the affected SOP class or instance UID".into());
    }
    let mut b = dicom_object::FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(cmd.sop_class.as_str())
        .media_storage_sop_instance_uid(meta_uid(&cmd.sop_instance))
        .transfer_syntax(super::presentation::trim_uid(ts))
        .implementation_class_uid(crate::deid::engine::IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(crate::deid::engine::IMPLEMENTATION_VERSION_NAME);
    let ae = calling_ae.trim();
    if !ae.is_empty() {
        b = b.source_application_entity_title(ae);
    }
    let meta = b.build().map_err(|e| e.to_string())?;
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    meta.write(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The meta group's copy of the instance UID. A non-conformant UID (letters,
/// as some software writes) would make the whole meta group unreadable, so
/// it is replaced there by a UID derived from it; the data set, which is what
/// gets de-identified and checked against the command, keeps the original.
fn meta_uid(uid: &str) -> String {
    if uid.len() <= 64 && uid.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return uid.to_string();
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(uid.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// Parse the spooled file as the worker will and compare its UIDs with the
/// command. A file that fails goes to quarantine with the reason.
fn check_or_quarantine(
    path: &std::path::Path,
    cmd: &Command,
    quarantine: &Quarantine,
    origin: &str,
) -> Result<(), (u16, &'static str)> {
    let bytes = std::fs::read(path).map_err(|e| {
        tracing::error!(error = %e, "cannot read back the spool file");
        (
            status::OUT_OF_RESOURCES,
            "out of resources: spool read failed",
        )
    })?;
    let verdict = check(&bytes, cmd);
    if let Err((s, why, reason)) = &verdict {
        tracing::warn!(status = format!("{s:04X}"), %reason, "C-STORE refused");
        if let Err(e) = quarantine.put(&bytes, reason, origin) {
            tracing::error!(error = %format!("{e:#}"), "cannot quarantine a refused instance");
        }
        return Err((*s, why));
    }
    Ok(())
}

type Refusal = (u16, &'static str, String);

fn check(bytes: &[u8], cmd: &Command) -> Result<(), Refusal> {
    let cannot = |reason: String| {
        (
            status::CANNOT_UNDERSTAND,
            "cannot understand: data set does not parse",
            reason,
        )
    };
    crate::pipeline::precheck::check(bytes)
        .map_err(|r| cannot(format!("received data set does not parse: {r}")))?;
    let obj = crate::pipeline::batch::parse(bytes)
        .map_err(|r| cannot(format!("received data set: {r}")))?;
    let text = |t| crate::deid::engine::text(&obj, t);
    let mismatch = |what: &str| {
        (
            status::DATA_SET_MISMATCH,
            "data set does not match the SOP class or instance of the command",
            format!("received data set: {what} differs from the C-STORE command"),
        )
    };
    if text(tags::SOP_CLASS_UID) != cmd.sop_class {
        return Err(mismatch("SOPClassUID"));
    }
    if text(tags::SOP_INSTANCE_UID) != cmd.sop_instance {
        return Err(mismatch("SOPInstanceUID"));
    }
    Ok(())
}
