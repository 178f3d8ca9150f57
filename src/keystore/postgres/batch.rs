//! Reverse-map writes batched per pipeline worker.
//!
//! A worker thread that calls [`PgKeyStore::defer_writes_on_this_thread`]
//! no longer writes each record when `put_*` is called: the sealed record
//! waits in the thread's batch, and [`KeyStore::flush`](super::KeyStore::flush)
//! on that thread writes the whole batch in one transaction (one
//! `INSERT .. SELECT FROM unnest(..) ON CONFLICT DO NOTHING` per table), so a
//! settle of 32 instances costs one commit instead of one or more each.
//!
//! The caller keeps the rule that nothing is emitted before its record is
//! durable: the worker hands its outputs to the router only after the flush
//! succeeded (see `pipeline::workers`). Every other thread (the series
//! thread, HTTP, CLI, migration) writes at once, as before. Reads on a
//! deferring thread see its own pending records.

use std::cell::RefCell;
use std::collections::HashMap;

use anyhow::Result;

use super::{Kind, PgKeyStore};

/// One sealed record waiting for the flush.
pub(super) struct Pending {
    kind: Kind,
    key: String,
    sealed: Vec<u8>,
}

thread_local! {
    /// Store id -> this thread's pending records, for the stores this
    /// thread defers for.
    static BATCHES: RefCell<HashMap<u64, Vec<Pending>>> = RefCell::new(HashMap::new());
}

impl PgKeyStore {
    /// From now on, `put_*` on this thread wait for this thread's next
    /// `flush` (see the module).
    pub fn defer_writes_on_this_thread(&self) {
        BATCHES.with(|b| {
            b.borrow_mut().entry(self.id).or_default();
        });
    }

    /// Queues `sealed` when this thread defers; otherwise gives it back.
    pub(super) fn try_defer(&self, kind: Kind, key: &str, sealed: Vec<u8>) -> Option<Vec<u8>> {
        BATCHES.with(|b| {
            let mut b = b.borrow_mut();
            let Some(batch) = b.get_mut(&self.id) else {
                return Some(sealed);
            };
            // The same patient comes with every instance: queued once.
            if !batch.iter().any(|p| p.kind == kind && p.key == key) {
                batch.push(Pending {
                    kind,
                    key: key.to_string(),
                    sealed,
                });
            }
            None
        })
    }

    /// This thread's pending record under `key`, if any.
    pub(super) fn pending(&self, kind: Kind, key: &str) -> Option<Vec<u8>> {
        BATCHES.with(|b| {
            b.borrow()
                .get(&self.id)?
                .iter()
                .find(|p| p.kind == kind && p.key == key)
                .map(|p| p.sealed.clone())
        })
    }

    /// Writes this thread's batch in one transaction; on an error the batch
    /// stays for the next try. The number of records written.
    pub(super) fn flush_batch(&self) -> Result<usize> {
        let batch = BATCHES.with(|b| b.borrow_mut().get_mut(&self.id).map(std::mem::take));
        let Some(batch) = batch.filter(|b| !b.is_empty()) else {
            return Ok(0);
        };
        let mut by_kind: Vec<(Kind, Vec<String>, Vec<Vec<u8>>)> = Vec::new();
        for kind in Kind::ALL {
            let (keys, values): (Vec<String>, Vec<Vec<u8>>) = batch
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| (p.key.clone(), p.sealed.clone()))
                .unzip();
            if !keys.is_empty() {
                by_kind.push((kind, keys, values));
            }
        }
        let pool = self.pool.clone();
        let written = self.call("writing a batch of records", async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            for (kind, keys, values) in &by_kind {
                let stmt = tx.prepare_cached(&batch_insert_sql(*kind)).await?;
                tx.execute(&stmt, &[keys, values]).await?;
            }
            tx.commit().await?;
            Ok(())
        });
        match written {
            Ok(()) => {
                for p in &batch {
                    self.known.insert(p.kind.tree_name(), &p.key);
                }
                Ok(batch.len())
            }
            Err(e) => {
                BATCHES.with(|b| {
                    let mut b = b.borrow_mut();
                    let slot = b.entry(self.id).or_default();
                    let newer = std::mem::replace(slot, batch);
                    slot.extend(newer);
                });
                Err(e)
            }
        }
    }
}

fn batch_insert_sql(kind: Kind) -> String {
    format!(
        "INSERT INTO {} (key, sealed) SELECT * FROM unnest($1::text[], $2::bytea[]) \
         ON CONFLICT (key) DO NOTHING",
        kind.tree_name()
    )
}
