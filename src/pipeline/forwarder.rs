//! The forwarders: one thread per DICOM destination that drains its queue
//! ([`super::forward`]) in batches of one association, records each
//! outcome durably (delivered, rescheduled with back-off, or handed to
//! [`super::dead_letter`]) and sleeps until woken or due.

use super::forward::{backoff, now, DicomDestination, DicomRoute, Job, Queue};
use crate::net::scu::{self, Outcome, Outgoing};
use crate::net::stow::Stow;
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The worker threads of all DICOM destinations.
pub struct Forwarders {
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
    wakes: Vec<Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>>,
}

impl Forwarders {
    /// One thread per DICOM destination (the router's `dicom`). Their
    /// queues become the ones `deidgate deadletter retry` fills and wakes.
    pub fn start(dicom: &[DicomRoute]) -> Forwarders {
        super::dead_letter::register(dicom);
        let stop = Arc::new(AtomicBool::new(false));
        let mut f = Forwarders {
            stop: stop.clone(),
            handles: Vec::new(),
            wakes: Vec::new(),
        };
        for d in dicom {
            let (dest, stow, queue, wake, stop) = (
                d.destination.clone(),
                d.stow.clone(),
                d.queue.clone(),
                d.wake.clone(),
                stop.clone(),
            );
            if queue.depth() > 0 {
                tracing::info!(destination = %dest.name, queued = queue.depth(), "resuming forward queue");
            }
            f.wakes.push(wake.clone());
            let name = format!("forward-{}", dest.name);
            match std::thread::Builder::new()
                .name(name)
                .spawn(move || run_worker_via(dest, stow, queue, stop, wake))
            {
                Ok(h) => f.handles.push(h),
                Err(e) => tracing::error!(error = %e, "cannot start a forwarder"),
            }
        }
        f
    }

    /// Stop after the batch in progress; what is queued stays queued.
    pub fn stop(self) {
        super::dead_letter::unregister();
        self.stop.store(true, Ordering::Relaxed);
        for w in &self.wakes {
            let (lock, cv) = &**w;
            *lock.lock().expect("wake lock") = true;
            cv.notify_all();
        }
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// Drain one destination until `stop` is set. Each batch is one association.
pub fn run_worker(
    dest: DicomDestination,
    queue: Queue,
    stop: Arc<AtomicBool>,
    wake: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
) {
    run_worker_via(dest, None, queue, stop, wake)
}

/// [`run_worker`], sending by STOW-RS when `stow` is given (one request per
/// batch) instead of C-STORE.
pub fn run_worker_via(
    dest: DicomDestination,
    stow: Option<Arc<Stow>>,
    queue: Queue,
    stop: Arc<AtomicBool>,
    wake: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
) {
    // Not lowered like the pipeline workers: the forwarder, too, waits for
    // each response, so its throughput is its latency to get the CPU back.
    let span = tracing::info_span!("forward", destination = %dest.name);
    let _g = span.enter();
    while !stop.load(Ordering::Relaxed) {
        let batch = match queue.next_batch(now(), dest.batch_size) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the forward queue");
                Vec::new()
            }
        };
        if batch.is_empty() {
            let (lock, cv) = &*wake;
            let mut woken = lock.lock().expect("wake lock");
            if !*woken {
                woken = cv
                    .wait_timeout(woken, Duration::from_millis(500))
                    .expect("wake wait")
                    .0;
            }
            *woken = false;
            continue;
        }
        if let Err(e) = deliver(&dest, stow.as_deref(), &queue, batch) {
            tracing::error!(error = %e, "forwarding bookkeeping failed");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Send one batch and record each outcome durably. Delivered files are
/// deleted only after the queue is flushed, so a crash never restores a job
/// whose file is gone.
fn deliver(
    dest: &DicomDestination,
    stow: Option<&Stow>,
    queue: &Queue,
    batch: Vec<Job>,
) -> Result<()> {
    let mut delivered = Vec::new();
    let recorded = send_readable(dest, stow, queue, batch, &mut delivered);
    if !delivered.is_empty() {
        queue.flush()?;
        for f in delivered {
            std::fs::remove_file(f).ok();
        }
    }
    recorded
}

/// Record the jobs whose file cannot be opened on their own, so that one
/// of them never holds back the rest of its study's batch, and send the
/// others in one association. Delivered files are added to `delivered`.
fn send_readable(
    dest: &DicomDestination,
    stow: Option<&Stow>,
    queue: &Queue,
    batch: Vec<Job>,
    delivered: &mut Vec<std::path::PathBuf>,
) -> Result<()> {
    let mut batch_ok = Vec::with_capacity(batch.len());
    for job in batch {
        match unreadable(&job.path) {
            None => batch_ok.push(job),
            Some(outcome) => {
                delivered.extend(record(dest, queue, job, outcome)?);
            }
        }
    }
    let batch = batch_ok;
    if batch.is_empty() {
        return Ok(());
    }
    let items: Vec<Outgoing> = batch
        .iter()
        .map(|j| Outgoing {
            path: j.path.clone(),
            sop_class: j.sop_class.clone(),
            sop_instance: j.sop_instance.clone(),
        })
        .collect();
    let mut reported = vec![false; batch.len()];
    let mut failure: Option<anyhow::Error> = None;
    let mut report = |i: usize, outcome: Outcome| {
        reported[i] = true;
        match record(dest, queue, batch[i].clone(), outcome) {
            Ok(file) => delivered.extend(file),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    };
    let sent = match stow {
        None => scu::send_batch(&dest.peer, &items, &mut report),
        Some(s) => s.send_batch(&items, &mut report),
    };
    if let Err(why) = sent {
        for (job, _) in batch.iter().zip(&reported).filter(|(_, r)| !**r) {
            record(dest, queue, job.clone(), Outcome::Retry(why.clone()))?;
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Why a queued file cannot be sent, if it cannot. A missing file cannot
/// come back (the gateway deletes one only after its job is gone for
/// good), so it is dead-lettered; any other error is retried.
fn unreadable(path: &std::path::Path) -> Option<Outcome> {
    match std::fs::File::open(path) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Outcome::DeadLetter(
            "outbox file missing: deleted outside the gateway, or delivered just before a crash \
             by an earlier version"
                .into(),
        )),
        Err(e) => Some(Outcome::Retry(format!("outbox file unreadable: {e}"))),
    }
}

/// Record one outcome durably: delivered, rescheduled or dead-lettered.
/// If a newer copy of the instance was enqueued meanwhile, the queue keeps
/// that one and this outcome only counts. Returns the file of a completed
/// job, for the caller to delete once the queue is flushed.
fn record(
    dest: &DicomDestination,
    queue: &Queue,
    original: Job,
    outcome: Outcome,
) -> Result<Option<std::path::PathBuf>> {
    let c = &queue.counters;
    let mut job = original.clone();
    let too_old = now().saturating_sub(job.enqueued_at) > dest.max_age_secs;
    // The same instance breaking the association again and again is a
    // refusal by the peer, not an outage.
    let outcome = match outcome {
        Outcome::Retry(why)
            if why.starts_with(scu::ABORTED_ON_INSTANCE)
                && job.attempts + 1 >= scu::MAX_ABORTS_ON_INSTANCE =>
        {
            Outcome::DeadLetter(format!("{why} ({} times)", job.attempts + 1))
        }
        o => o,
    };
    match outcome {
        Outcome::Delivered { status } => {
            let completed = queue.complete(&job)?;
            c.delivered.fetch_add(1, Ordering::Relaxed);
            if status != 0 {
                c.warnings.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(sop = %job.sop_instance, status = format!("{status:04X}"), "delivered with a warning");
            } else {
                tracing::debug!(sop = %job.sop_instance, "delivered");
            }
            return Ok(completed.then_some(job.path));
        }
        Outcome::Retry(why) if !too_old => {
            job.attempts += 1;
            job.next_at =
                now() + backoff(job.attempts, dest.retry_initial_secs, dest.retry_max_secs);
            job.last_error = Some(why.clone());
            if !queue.reschedule(&original, &job)? {
                return Ok(None); // a newer copy replaced it: that one will be sent
            }
            c.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(sop = %job.sop_instance, attempts = job.attempts, reason = %why, "will retry");
        }
        Outcome::Retry(why) | Outcome::DeadLetter(why) => {
            let why = if too_old {
                format!("maximum age exceeded; last error: {why}")
            } else {
                why
            };
            if !super::dead_letter::bury(dest, queue, &original, &why).context("dead-letter")? {
                return Ok(None); // a newer copy replaced it: that one will be sent
            }
            c.dead_lettered.fetch_add(1, Ordering::Relaxed);
            tracing::error!(sop = %job.sop_instance, reason = %why, "dead-lettered");
        }
    }
    Ok(None)
}
