//! What makes the gateway unhealthy right now: a process-wide set of faults
//! (disk space below the reserve, a key store or output that cannot be
//! written) with their reasons. The parts that meet a fault set it and
//! clear it when it is gone; `/healthz` answers 503 with the reasons while
//! any is set, so a load balancer or monitor sees a stuck gateway even
//! though its port still answers. Reasons name paths and counts, never PHI.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The kinds of fault, one reason each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Free space on the data directory's file system is below the reserve.
    DiskSpace,
    /// The pipeline cannot write (outputs, key store, quarantine).
    Pipeline,
    /// The shared key store's database (PostgreSQL) does not answer.
    KeyStore,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::DiskSpace => "disk_space",
            Fault::Pipeline => "pipeline",
            Fault::KeyStore => "key_store",
        }
    }
}

static FAULTS: Mutex<BTreeMap<Fault, String>> = Mutex::new(BTreeMap::new());

fn faults() -> std::sync::MutexGuard<'static, BTreeMap<Fault, String>> {
    FAULTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Set `fault` with `reason`; logged at ERROR when it is new.
pub fn set(fault: Fault, reason: impl Into<String>) {
    let reason = reason.into();
    let mut f = faults();
    if f.get(&fault) != Some(&reason) {
        if !f.contains_key(&fault) {
            tracing::error!(fault = fault.name(), %reason, "unhealthy");
        }
        f.insert(fault, reason);
    }
}

/// Clear `fault`; logged at INFO when it was set.
pub fn clear(fault: Fault) {
    if faults().remove(&fault).is_some() {
        tracing::info!(fault = fault.name(), "recovered");
    }
}

/// Whether `fault` is set.
pub fn is_set(fault: Fault) -> bool {
    faults().contains_key(&fault)
}

/// The faults now set, as (name, reason).
pub fn current() -> Vec<(&'static str, String)> {
    faults()
        .iter()
        .map(|(k, v)| (k.name(), v.clone()))
        .collect()
}
