//! In-memory index of a forward queue: which job is due first and which
//! jobs share its study, without reading the queue tree.
//!
//! The queue itself (sled) is the durable truth; the index is rebuilt from it
//! when the queue is opened and updated under the same lock as every change.
//! Without it, picking a batch decoded every queued job, so draining a
//! backlog of n jobs cost O(n²): after a day-long PACS outage the forwarder
//! would spend its time re-reading the queue instead of sending.

use std::collections::{BTreeSet, HashMap};

/// What the index keeps per job (no PHI: UIDs are already pseudonyms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sop_instance: String,
    pub study_uid: String,
    pub enqueued_at: u64,
    pub next_at: u64,
}

#[derive(Debug, Default)]
pub struct Index {
    /// Every job, by SOP Instance UID (the queue's key).
    jobs: HashMap<String, Entry>,
    /// (next_at, enqueued_at, sop): the first entry is the job due first.
    due: BTreeSet<(u64, u64, String)>,
    /// Per study, (enqueued_at, sop) in sending order.
    studies: HashMap<String, BTreeSet<(u64, String)>>,
}

impl Index {
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Add or replace the job with this SOP Instance UID.
    pub fn put(&mut self, e: Entry) {
        self.remove(&e.sop_instance);
        self.due
            .insert((e.next_at, e.enqueued_at, e.sop_instance.clone()));
        self.studies
            .entry(e.study_uid.clone())
            .or_default()
            .insert((e.enqueued_at, e.sop_instance.clone()));
        self.jobs.insert(e.sop_instance.clone(), e);
    }

    pub fn remove(&mut self, sop: &str) {
        let Some(e) = self.jobs.remove(sop) else {
            return;
        };
        self.due
            .remove(&(e.next_at, e.enqueued_at, e.sop_instance.clone()));
        if let Some(s) = self.studies.get_mut(&e.study_uid) {
            s.remove(&(e.enqueued_at, e.sop_instance));
            if s.is_empty() {
                self.studies.remove(&e.study_uid);
            }
        }
    }

    /// The next batch at time `now`: the study of the job due first, and up
    /// to `limit` of that study's due jobs in the order they were queued.
    pub fn next_batch(&self, now: u64, limit: usize) -> Vec<String> {
        let Some((next_at, _, sop)) = self.due.first() else {
            return Vec::new();
        };
        if *next_at > now {
            return Vec::new();
        }
        let study = &self.jobs[sop].study_uid;
        self.studies[study]
            .iter()
            .filter(|(_, s)| self.jobs[s].next_at <= now)
            .take(limit)
            .map(|(_, s)| s.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(sop: &str, study: &str, enq: u64, next: u64) -> Entry {
        Entry {
            sop_instance: sop.into(),
            study_uid: study.into(),
            enqueued_at: enq,
            next_at: next,
        }
    }

    #[test]
    fn batches_the_study_of_the_job_due_first() {
        let mut ix = Index::default();
        ix.put(e("a", "S1", 10, 10));
        ix.put(e("b", "S2", 11, 11));
        ix.put(e("c", "S1", 12, 12));
        ix.put(e("d", "S1", 13, 500)); // backing off
        assert_eq!(ix.next_batch(100, 10), ["a", "c"]);
        assert_eq!(ix.next_batch(100, 1), ["a"]);
        assert_eq!(
            ix.next_batch(5, 10),
            Vec::<String>::new(),
            "nothing due yet"
        );
        // A retried job goes behind the jobs that became due before it.
        ix.put(e("a", "S1", 10, 200));
        assert_eq!(ix.next_batch(100, 10), ["b"]);
        ix.remove("b");
        assert_eq!(ix.next_batch(100, 10), ["c"]);
        assert_eq!(ix.next_batch(600, 10), ["a", "c", "d"]);
        for s in ["a", "c", "d"] {
            ix.remove(s);
        }
        assert!(ix.is_empty() && ix.studies.is_empty() && ix.due.is_empty());
    }
}
