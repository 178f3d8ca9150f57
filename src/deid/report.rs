//! Per-object counts of what the engine did: safe to log (tags and counts only).

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub kept: u32,
    pub removed: u32,
    pub emptied: u32,
    pub dummied: u32,
    pub cleaned: u32,
    pub replaced: u32,
    pub overridden: u32,
    pub uids_replaced: u32,
    pub dates_shifted: u32,
    pub ages_recomputed: u32,
    pub private_removed: u32,
    pub private_kept: u32,
    /// Public elements in neither the table nor the dictionary, removed.
    pub unknown_removed: BTreeMap<(u16, u16), u32>,
}

impl Report {
    /// Add another report's counts to this one.
    pub fn merge(&mut self, o: &Report) {
        self.kept += o.kept;
        self.removed += o.removed;
        self.emptied += o.emptied;
        self.dummied += o.dummied;
        self.cleaned += o.cleaned;
        self.replaced += o.replaced;
        self.overridden += o.overridden;
        self.uids_replaced += o.uids_replaced;
        self.dates_shifted += o.dates_shifted;
        self.ages_recomputed += o.ages_recomputed;
        self.private_removed += o.private_removed;
        self.private_kept += o.private_kept;
        for (t, n) in &o.unknown_removed {
            *self.unknown_removed.entry(*t).or_default() += n;
        }
    }

    /// Total unknown public elements removed.
    pub fn unknown_total(&self) -> u32 {
        self.unknown_removed.values().sum()
    }
}
