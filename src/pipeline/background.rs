//! Background threads yield the CPU to the receive path.
//!
//! A DICOM sender waits for each C-STORE response before it sends the next
//! instance, so the gateway's throughput is set by the latency of the ack
//! path (receive, check, log, fsync, respond), not by the total CPU time. The
//! pipeline workers and forwarders run at a lower scheduling priority: while
//! instances are arriving they take the CPU the ack path leaves idle, and
//! when the senders pause they have all of it. Nothing is dropped or delayed
//! indefinitely: the spool is durable and the worker channel is bounded, so
//! a full queue still slows the senders down.

/// Nice value of background pipeline threads (0 is the default, 19 lowest).
const BACKGROUND_NICE: libc::c_int = 10;

/// Lower the calling thread's scheduling priority. Best effort: a failure is
/// logged and the thread keeps the default priority.
pub fn lower_this_thread() {
    // SAFETY: gettid has no preconditions; setpriority only reads its
    // integer arguments. On Linux PRIO_PROCESS with a thread id sets the
    // priority of that one thread.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE)
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background thread's priority");
    }
}
