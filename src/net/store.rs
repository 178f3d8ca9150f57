//! One C-STORE data set on its way to the spool. A data set up to
//! [`SPILL_AT`] is gathered in memory behind a file meta group built from the
//! command; a larger one is streamed to a temp file. Success is only returned
//! once the file is fsync'd, understood and renamed into `ready/`; every other
//! outcome is a real failure status. The finishing steps (write, fsync, parse
//! check, rename, folder fsync) run in one blocking task: each thread hand-off
//! sits on the sender's critical path, since it waits for every response.

use super::dimse::{status, Command};
use crate::pipeline::disk::Reserve;
use crate::pipeline::refused::Refused;
use crate::pipeline::spool::Spool;
use dicom_dictionary_std::tags;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Data sets up to this size stay in memory until they are complete; larger
/// ones go to disk as they arrive, so memory per association stays bounded.
const SPILL_AT: usize = 4 * 1024 * 1024;

/// Write buffer for a spilled data set.
const BUFFER: usize = 256 * 1024;

/// What finishing an instance needs from the receiver.
pub struct Sink {
    pub spool: Arc<Spool>,
    pub queue: mpsc::Sender<String>,
    /// Diagnostic copies of what was refused (capped).
    pub refused: Refused,
    /// Free space kept on the data directory's file system.
    pub reserve: Reserve,
}

/// Where the received bytes are (always starting with preamble and meta).
enum Body {
    Memory(Vec<u8>),
    File(tokio::io::BufWriter<tokio::fs::File>),
    /// Refused or failed: the rest is drained.
    Dropped,
}

/// An instance being received.
pub struct Incoming {
    id: String,
    path: PathBuf,
    body: Body,
    /// The failure to report once the last fragment is in.
    failed: Option<(u16, &'static str)>,
    committed: bool,
    pub bytes: u64,
    pub command: Command,
}

/// A status with a comment for the sender (never PHI).
pub type Verdict = (u16, Option<&'static str>);

/// A failure on the way into the spool: status and comment for the sender.
type Failure = (u16, &'static str);

const DISK_FULL: Failure = (
    status::OUT_OF_RESOURCES,
    "out of resources: disk space below the gateway's reserve",
);

const SPOOL_WRITE_FAILED: Failure = (
    status::OUT_OF_RESOURCES,
    "out of resources: spool write failed",
);

impl Incoming {
    /// Start an instance: the preamble and file meta group go first.
    pub async fn start(spool: &Spool, command: Command, ts: &str, calling_ae: &str) -> Incoming {
        let (id, path) = spool.new_incoming();
        let mut inc = Incoming {
            id,
            path,
            body: Body::Dropped,
            failed: None,
            committed: false,
            bytes: 0,
            command,
        };
        match file_meta(&inc.command, ts, calling_ae) {
            Ok(meta) => inc.body = Body::Memory(meta),
            Err(e) => {
                tracing::warn!(error = %e, "cannot build a file meta group from the command");
                inc.failed = Some((status::CANNOT_UNDERSTAND, "invalid C-STORE command"));
            }
        }
        inc
    }

    fn spool_error(&mut self, e: std::io::Error) {
        tracing::error!(error = %e, "spool write failed");
        self.failed = Some(SPOOL_WRITE_FAILED);
        self.body = Body::Dropped;
    }

    /// Refuse the instance: the rest is drained and `status` reported.
    pub fn refuse(&mut self, status: u16, why: &'static str) {
        self.failed = Some((status, why));
        self.body = Body::Dropped;
    }

    /// Append a data set fragment. After a failure the rest is drained.
    pub async fn write(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        let result = match &mut self.body {
            Body::Dropped => Ok(()),
            Body::File(w) => w.write_all(data).await,
            Body::Memory(buf) if buf.len() + data.len() <= SPILL_AT => {
                buf.extend_from_slice(data);
                Ok(())
            }
            Body::Memory(buf) => {
                let head = std::mem::take(buf);
                self.spill(&head, data).await
            }
        };
        if let Err(e) = result {
            self.spool_error(e);
        }
    }

    /// Move a data set that outgrew memory to its temp file.
    async fn spill(&mut self, head: &[u8], data: &[u8]) -> std::io::Result<()> {
        let f = tokio::fs::File::create(&self.path).await?;
        let mut w = tokio::io::BufWriter::with_capacity(BUFFER, f);
        w.write_all(head).await?;
        w.write_all(data).await?;
        self.body = Body::File(w);
        Ok(())
    }

    /// The last fragment is in: make the instance durable and decide.
    pub async fn finish(mut self, sink: &Sink) -> Verdict {
        if let Some((s, why)) = self.failed {
            return (s, Some(why));
        }
        let body = match std::mem::replace(&mut self.body, Body::Dropped) {
            Body::Memory(bytes) => Some(bytes),
            Body::File(mut w) => {
                if let Err(e) = w.flush().await {
                    self.spool_error(e);
                    return (SPOOL_WRITE_FAILED.0, Some(SPOOL_WRITE_FAILED.1));
                }
                None
            }
            Body::Dropped => return (status::OUT_OF_RESOURCES, Some("spool file missing")),
        };
        let (spool, refused) = (sink.spool.clone(), sink.refused.clone());
        let reserve = sink.reserve.clone();
        let (id, path, command) = (self.id.clone(), self.path.clone(), self.command.clone());
        let size = self.bytes;
        let durable = move || {
            // Below the reserve nothing more is acknowledged: the key store
            // and the pipeline keep the room to finish what already was.
            reserve.admit(size).map_err(|why| {
                tracing::warn!(reason = %why, "C-STORE refused: disk space");
                DISK_FULL
            })?;
            make_durable(&spool, &refused, &id, &path, &command, body)
        };
        let done = run_blocking(durable).await;
        if let Err((s, why)) = done {
            return (s, Some(why));
        }
        self.committed = true;
        // Durable from here on: Success is true even if the worker queue is
        // closed (shutdown), since a restart resumes everything in ready/.
        // Awaiting a full queue is the back-pressure on the sender.
        let _ = sink.queue.send(self.id.clone()).await;
        (status::SUCCESS, None)
    }
}

/// Run blocking work (parse, write, fsync) for the ack path. On the
/// multi-threaded runtime it runs in place: handing it to the blocking pool
/// and back costs two thread wake-ups on the path every sender waits on.
/// A panic inside is a failure status, as it was on the blocking pool.
async fn run_blocking<F>(f: F) -> Result<(), Failure>
where
    F: FnOnce() -> Result<(), Failure> + Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    const PANICKED: Failure = (status::OUT_OF_RESOURCES, "internal error");
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        let run = || std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        return tokio::task::block_in_place(run).unwrap_or(Err(PANICKED));
    }
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(PANICKED))
}

/// Check the data set against the command (keeping a capped copy of what
/// fails), write
/// and fsync it (when it was still in memory) and commit it into `ready/`.
fn make_durable(
    spool: &Spool,
    refused: &Refused,
    id: &str,
    path: &std::path::Path,
    command: &Command,
    body: Option<Vec<u8>>,
) -> Result<(), Failure> {
    let in_memory = body.is_some();
    let bytes = match body {
        Some(b) => b,
        None => {
            let f = std::fs::File::options().read(true).write(true).open(path);
            f.and_then(|f| f.sync_all()).map_err(|e| {
                tracing::error!(error = %e, "spool fsync failed");
                SPOOL_WRITE_FAILED
            })?;
            std::fs::read(path).map_err(|e| {
                tracing::error!(error = %e, "cannot read back the spool file");
                SPOOL_WRITE_FAILED
            })?
        }
    };
    check_or_refuse(&bytes, command, refused)?;
    let committed = if in_memory {
        spool.accept(id, path, &bytes)
    } else {
        spool.commit(id, path)
    };
    committed.map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "spool commit failed");
        (
            status::OUT_OF_RESOURCES,
            "out of resources: spool commit failed",
        )
    })
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

/// Parse the data set as the worker will and compare its UIDs with the
/// command. A data set that fails is refused; a copy is kept under the cap.
fn check_or_refuse(bytes: &[u8], cmd: &Command, refused: &Refused) -> Result<(), Failure> {
    let verdict = check(bytes, cmd);
    if let Err((s, why, reason)) = &verdict {
        tracing::warn!(status = format!("{s:04X}"), %reason, "C-STORE refused");
        refused.keep(bytes, reason);
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
    let obj = crate::dicom::parse(bytes).map_err(|r| cannot(format!("received data set: {r}")))?;
    let text = |t| crate::dicom::text(&obj, t);
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
