//! Routing de-identified objects to their destinations: folder sinks get a
//! durable copy, DICOM destinations get an outbox file and a queue entry.

use super::forward::{self, DicomDestination, DicomRoute, Job, Queue};
use crate::config::{DestinationConfig, DestinationKind};
use crate::net::scu::Peer;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What the router needs to know about a de-identified object (no PHI).
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub sop_class: String,
    pub sop_instance: String,
    pub study_uid: String,
    pub series_uid: String,
    pub modality: String,
}

impl ObjectInfo {
    /// The routing facts of a freshly de-identified object: its SOP class and
    /// modality from the object, the new UIDs as the engine returned them.
    pub fn of(
        object: &dicom_object::DefaultDicomObject,
        sop_instance: String,
        study_uid: String,
        series_uid: String,
    ) -> ObjectInfo {
        ObjectInfo {
            sop_class: object
                .meta()
                .media_storage_sop_class_uid()
                .trim_end_matches('\0')
                .to_string(),
            sop_instance,
            study_uid,
            series_uid,
            modality: crate::dicom::text(object, dicom_dictionary_std::tags::MODALITY),
        }
    }
}

/// All destinations.
pub struct Router {
    folders: Vec<(DestinationConfig, PathBuf)>,
    pub dicom: Vec<DicomRoute>,
}

impl Router {
    pub fn new(
        dests: &[DestinationConfig],
        data_dir: &Path,
        our_ae: &str,
        db: &sled::Db,
    ) -> Result<Router> {
        let mut r = Router {
            folders: Vec::new(),
            dicom: Vec::new(),
        };
        for d in dests {
            d.validate().map_err(anyhow::Error::msg)?;
            if d.kind == DestinationKind::Folder {
                let p = if d.path.is_empty() {
                    data_dir.join("out")
                } else {
                    PathBuf::from(&d.path)
                };
                // Created up front: `sync` opens every root, used or not.
                std::fs::create_dir_all(&p)
                    .with_context(|| format!("cannot create {}", p.display()))?;
                r.folders.push((d.clone(), p));
                continue;
            }
            let calling = if d.calling_ae_title.is_empty() {
                our_ae
            } else {
                &d.calling_ae_title
            };
            let destination = DicomDestination {
                name: d.name.clone(),
                peer: Peer {
                    ae_title: d.ae_title.clone(),
                    host: d.host.clone(),
                    port: d.port,
                    calling_ae_title: calling.to_string(),
                    timeout: Duration::from_secs(d.timeout_secs.max(1)),
                    tls: d
                        .dicom_tls_config()
                        .map_err(|e| anyhow::anyhow!("[[destination]] {}: {e}", d.name))?
                        .map(|config| crate::net::scu::PeerTls {
                            config,
                            server_name: d.tls_name().to_string(),
                        }),
                },
                retry_initial_secs: d.retry_initial_secs,
                retry_max_secs: d.retry_max_secs.max(d.retry_initial_secs),
                max_age_secs: d.max_age_hours * 3600,
                batch_size: d.batch_size.max(1),
                dead_dir: data_dir.join("dead_letter").join(&d.name),
            };
            let outbox = forward::outbox_dir(data_dir, &d.name);
            std::fs::create_dir_all(&outbox)
                .with_context(|| format!("cannot create {}", outbox.display()))?;
            let queue = Queue::open(db, &d.name)?;
            // Here, before any worker can place a file in the outbox.
            let (orphans, strays) =
                super::dead_letter::clean_at_start(&queue, &outbox, &destination.dead_dir)?;
            if orphans + strays > 0 {
                tracing::info!(
                    destination = %d.name,
                    orphans,
                    strays,
                    "removed outbox files no queued job refers to, and dead-letter files without a record"
                );
            }
            let dead = queue.dead_count();
            if dead > 0 {
                tracing::warn!(destination = %d.name, dead_letters = dead, "dead letters waiting: deidgate deadletter list");
            }
            r.dicom.push(DicomRoute {
                config: d.clone(),
                destination,
                queue,
                outbox,
                wake: Arc::new((Mutex::new(false), Condvar::new())),
                stow: match d.kind {
                    DestinationKind::Stow => Some(Arc::new(crate::net::stow::Stow::new(d)?)),
                    _ => None,
                },
            });
        }
        if r.folders.is_empty() && r.dicom.is_empty() {
            bail!("no [[destination]] configured: de-identified objects would have nowhere to go");
        }
        Ok(r)
    }

    /// Names of the folder destinations.
    pub fn folders(&self) -> impl Iterator<Item = &str> {
        self.folders.iter().map(|(c, _)| c.name.as_str())
    }

    /// Make everything placed so far durable: one syncfs(2) per file system
    /// that holds a destination, instead of an fsync per file and folder.
    pub fn sync(&self) -> Result<()> {
        let roots = self
            .folders
            .iter()
            .map(|(_, p)| p)
            .chain(self.dicom.iter().map(|d| &d.outbox));
        for r in roots {
            super::output::sync_filesystem_of(r)?;
        }
        Ok(())
    }

    /// Hand a de-identified file to every destination that wants it.
    /// Idempotent: running it again after a crash links the same files and
    /// enqueues nothing twice.
    pub fn dispatch(
        &self,
        staged: &Path,
        info: &ObjectInfo,
        calling_ae: Option<&str>,
    ) -> Result<usize> {
        let mut n = 0;
        for (cfg, root) in &self.folders {
            if cfg.accepts(&info.modality, calling_ae) {
                let dst = super::output::object_path(
                    root,
                    &info.study_uid,
                    &info.series_uid,
                    &info.sop_instance,
                );
                place(staged, &dst)?;
                n += 1;
            }
        }
        for d in &self.dicom {
            if !d.config.accepts(&info.modality, calling_ae) {
                continue;
            }
            // A unique name per copy: a newer copy of the same instance never
            // overwrites the file the forwarder may be sending right now.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let dst = d.outbox.join(format!("{}.{nanos}.dcm", info.sop_instance));
            place(staged, &dst)?;
            let now = forward::now();
            let replaced = d.queue.enqueue(&Job {
                path: dst,
                sop_class: info.sop_class.clone(),
                sop_instance: info.sop_instance.clone(),
                study_uid: info.study_uid.clone(),
                enqueued_at: now,
                attempts: 0,
                next_at: now,
                last_error: None,
            })?;
            if let Some(old) = replaced {
                // Durable first: a crash must not restore the old job
                // without its file (it would hold back its whole study).
                d.queue.flush()?;
                std::fs::remove_file(old).ok();
            }
            let (lock, cv) = &*d.wake;
            *lock.lock().expect("wake lock") = true;
            cv.notify_one();
            n += 1;
        }
        Ok(n)
    }
}

/// Put `src` at `dst`: a hard link when possible, else a copy. Not yet
/// durable: the caller runs [`Router::sync`] before it forgets the source.
fn place(src: &Path, dst: &Path) -> Result<()> {
    let dir = dst.parent().context("destination without parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if dst.exists() {
        std::fs::remove_file(dst).ok();
    }
    if std::fs::hard_link(src, dst).is_err() {
        let bytes = std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
        return super::output::write_atomic(dst, &bytes, false);
    }
    Ok(())
}
