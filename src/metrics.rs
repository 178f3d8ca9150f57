//! Process-wide counters for `/metrics` (Prometheus text format). Counts
//! only: no identifier, original or pseudonymous, is ever a label.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The gateway's counters.
pub struct Metrics {
    pub associations: AtomicU64,
    pub associations_rejected: AtomicU64,
    pub associations_active: AtomicI64,
    pub instances_stored: AtomicU64,
    pub instances_refused: AtomicU64,
    pub instances_deidentified: AtomicU64,
    pub instances_quarantined: AtomicU64,
    /// Instances whose SOP Instance UID another patient's instance had.
    pub duplicate_uids: AtomicU64,
    /// Objects whose output the output guard found an original identifier
    /// in (quarantined, or delivered under `on_hit = "warn"`).
    pub guard_hits: AtomicU64,
    /// Lines of burned-in text the text route read that held one of the
    /// object's own identifiers (filled: a sign the source leaks).
    pub text_phi_lines: AtomicU64,
    /// Records in the spool log not yet done (a gauge, set by the log).
    pub spool_logged: AtomicI64,
    /// Syncs of the spool log before a Success, and their total time (µs):
    /// the disk's share of every sender's wait.
    pub spool_syncs: AtomicU64,
    pub spool_sync_micros: AtomicU64,
    /// Damaged regions found in the spool log at replay (acknowledged
    /// instances that may be lost), by this process.
    pub spool_damaged_records: AtomicU64,
    /// Copies of damaged log segments kept in `spool/wal/damaged/` (a
    /// gauge, counted at start, so it survives restarts).
    pub spool_damaged_segments: AtomicU64,
}

pub static METRICS: Metrics = Metrics {
    associations: AtomicU64::new(0),
    associations_rejected: AtomicU64::new(0),
    associations_active: AtomicI64::new(0),
    instances_stored: AtomicU64::new(0),
    instances_refused: AtomicU64::new(0),
    instances_deidentified: AtomicU64::new(0),
    instances_quarantined: AtomicU64::new(0),
    duplicate_uids: AtomicU64::new(0),
    guard_hits: AtomicU64::new(0),
    text_phi_lines: AtomicU64::new(0),
    spool_logged: AtomicI64::new(0),
    spool_syncs: AtomicU64::new(0),
    spool_sync_micros: AtomicU64::new(0),
    spool_damaged_records: AtomicU64::new(0),
    spool_damaged_segments: AtomicU64::new(0),
};

/// Add one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One metric in the text exposition format.
pub fn line(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    out.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    ));
}

/// The process-wide counters as Prometheus text.
pub fn render() -> String {
    let m = &METRICS;
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut s = String::new();
    line(
        &mut s,
        "deidgate_associations_total",
        "counter",
        "Associations accepted.",
        g(&m.associations),
    );
    line(
        &mut s,
        "deidgate_associations_rejected_total",
        "counter",
        "Associations rejected.",
        g(&m.associations_rejected),
    );
    line(
        &mut s,
        "deidgate_associations_active",
        "gauge",
        "Associations open now.",
        m.associations_active.load(Ordering::Relaxed),
    );
    line(
        &mut s,
        "deidgate_instances_stored_total",
        "counter",
        "C-STOREs answered with Success (durable in the spool).",
        g(&m.instances_stored),
    );
    line(
        &mut s,
        "deidgate_instances_refused_total",
        "counter",
        "C-STOREs answered with a failure status.",
        g(&m.instances_refused),
    );
    line(
        &mut s,
        "deidgate_instances_deidentified_total",
        "counter",
        "Instances de-identified and routed.",
        g(&m.instances_deidentified),
    );
    line(
        &mut s,
        "deidgate_instances_quarantined_total",
        "counter",
        "Instances kept back in quarantine.",
        g(&m.instances_quarantined),
    );
    line(
        &mut s,
        "deidgate_duplicate_uids_total",
        "counter",
        "Instances whose SOP Instance UID another patient's instance already had (quarantined or given a new UID).",
        g(&m.duplicate_uids),
    );
    line(
        &mut s,
        "deidgate_guard_hits_total",
        "counter",
        "Objects whose encoded output still held one of their own original identifiers (output guard): quarantined, or delivered under on_hit = \"warn\".",
        g(&m.guard_hits),
    );
    line(
        &mut s,
        "deidgate_text_phi_lines_total",
        "counter",
        "Burned-in text lines read by the text route that held one of the object's own identifiers (filled; the source leaks PHI into its pixels).",
        g(&m.text_phi_lines),
    );
    line(
        &mut s,
        "deidgate_spool_syncs_total",
        "counter",
        "Spool log syncs (one per instance logged before its Success).",
        g(&m.spool_syncs),
    );
    line(
        &mut s,
        "deidgate_spool_sync_seconds_total",
        "counter",
        "Time spent in those syncs; divided by the syncs, the disk's latency per acknowledged instance.",
        g(&m.spool_sync_micros) as f64 / 1e6,
    );
    line(
        &mut s,
        "deidgate_spool_damaged_records_total",
        "counter",
        "Damaged regions found in the spool log at replay (acknowledged instances possibly lost; see spool/wal/damaged/).",
        g(&m.spool_damaged_records),
    );
    line(
        &mut s,
        "deidgate_spool_damaged_segments",
        "gauge",
        "Copies of damaged spool log segments kept in spool/wal/damaged/.",
        g(&m.spool_damaged_segments),
    );
    s
}

/// Counts an open association for as long as it lives.
pub struct Active;

impl Active {
    pub fn enter() -> Active {
        METRICS.associations_active.fetch_add(1, Ordering::Relaxed);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        METRICS.associations_active.fetch_sub(1, Ordering::Relaxed);
    }
}
