//! Getting the pipeline going again after a storage fault without an
//! operator. The worker that meets a write error keeps the instance in the
//! spool, retries with back-off and marks the gateway unhealthy; once the
//! error is gone it clears the mark. One fault does not go away by itself:
//! sled keeps an I/O error (say, a full disk during a flush) for the life of
//! the database handle, so every later write fails even after space
//! returns. When free space is back and a probe write to the key store
//! still fails, the process executes itself again (same PID, arguments and
//! environment): everything acknowledged is durable in the spool, exactly as
//! after `kill -9`, and the new image reopens the database.

use crate::health::{self, Fault};
use crate::runtime::Runtime;
use std::time::Duration;

/// Back-off before retry `attempt` (1-based): 1 s doubling to 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs((1u64 << attempt.saturating_sub(1).min(5)).min(30))
}

/// A write to the key store's database and a flush, as a probe.
fn store_writes(rt: &Runtime) -> bool {
    let db = rt.store.db();
    db.insert(b"__probe", &b"1"[..])
        .and_then(|_| db.flush())
        .is_ok()
}

/// After a failed attempt: when the data directory has room again but the
/// key store still cannot write, restart the process in place.
pub fn after_failure(rt: &Runtime, reserve: &super::disk::Reserve, error: &anyhow::Error) {
    health::set(Fault::Pipeline, format!("cannot write: {error:#}"));
    if reserve.has_room() && !store_writes(rt) {
        reexec();
    }
}

/// Replace this process by a fresh copy of itself.
fn reexec() {
    use std::os::unix::process::CommandExt;
    tracing::error!(
        "the key store cannot write after an I/O error, though space is back; \
         restarting the process to reopen it (acknowledged instances resume from the spool)"
    );
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(std::env::args_os().next().unwrap_or_default())
        .args(std::env::args_os().skip(1))
        .exec();
    tracing::error!(error = %err, "cannot restart the process");
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_to_thirty_seconds() {
        let s: Vec<u64> = (1..=8).map(|a| super::backoff(a).as_secs()).collect();
        assert_eq!(s, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
