//! The audit chain in PostgreSQL: one chain for every replica.
//!
//! An append is one transaction: lock the one-row `audit_head`
//! (`SELECT .. FOR UPDATE`), insert the record after it, move the head,
//! commit. Appenders on any replica queue on that row lock, so each one
//! extends the head the previous one committed: no two records get the same
//! seq, none links to a stale head, and the chain cannot fork. The record
//! format, its hash and the checks are those of [`AuditLog`]; `verify`
//! walks the records and reads the head from one REPEATABLE READ snapshot,
//! so appends running meanwhile do not look like damage.
//!
//! [`AuditLog`]: crate::keystore::AuditLog

use std::sync::mpsc::{sync_channel, TrySendError};
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio_postgres::IsolationLevel;

use super::PgKeyStore;
use crate::keystore::audit::{
    to_json, AuditError, AuditRecord, ChainCheck, Head, NewRecord, RecordVisitor, SharedAudit,
    GENESIS_HASH,
};

/// Records fetched per round trip while walking the chain.
const PAGE: i32 = 1000;

/// What the walk sends back from the database task.
enum Walked {
    Head(Option<Head>),
    Rows(Vec<(i64, Vec<u8>)>),
    Failed(String),
}

impl PgKeyStore {
    /// Appends one record to the shared chain (see the module doc).
    pub fn audit_append(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        reason: &str,
        ticket: Option<&str>,
        outcome: &str,
    ) -> Result<AuditRecord> {
        SharedAudit::append(
            self,
            &NewRecord {
                actor,
                action,
                subject,
                reason,
                ticket,
                outcome,
            },
        )
    }

    /// Verifies the shared chain and its head; the record count.
    pub fn audit_verify(&self) -> Result<usize, AuditError> {
        let mut check = ChainCheck::new();
        let head = self.walk(&mut |seq, value| check.step(seq, value))?;
        check.finish(head)
    }

    /// Copies a verified chain into an empty one (migration), in one
    /// transaction; refuses when the shared chain already has records.
    pub(crate) fn audit_import(&self, records: Vec<AuditRecord>) -> Result<()> {
        let pool = self.pool.clone();
        self.call("importing the audit chain", async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let row = tx
                .query_one("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE", &[])
                .await?;
            let head: i64 = row.get(0);
            let present: i64 = tx
                .query_one("SELECT count(*) FROM audit_records", &[])
                .await?
                .get(0);
            if head != 0 || present != 0 {
                return Err(anyhow!(
                    "the PostgreSQL audit chain already has {present} records: \
                     a chain is only copied into an empty one"
                ));
            }
            let stmt = tx
                .prepare("INSERT INTO audit_records (seq, body) VALUES ($1, $2)")
                .await?;
            let mut last: Option<(i64, String)> = None;
            for rec in &records {
                let seq = i64::try_from(rec.seq)?;
                tx.execute(&stmt, &[&seq, &to_json(rec)]).await?;
                last = Some((seq, rec.hash.clone()));
            }
            if let Some((seq, hash)) = last {
                tx.execute(
                    "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
                    &[&seq, &hash],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

impl SharedAudit for PgKeyStore {
    fn append(&self, f: &NewRecord<'_>) -> Result<AuditRecord> {
        let owned = (
            f.actor.to_string(),
            f.action.to_string(),
            f.subject.to_string(),
            f.reason.to_string(),
            f.ticket.map(str::to_string),
            f.outcome.to_string(),
        );
        let pool = self.pool.clone();
        self.call("appending an audit record", async move {
            let (actor, action, subject, reason, ticket, outcome) = owned;
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let lock = tx
                .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
                .await?;
            let row = tx
                .query_opt(&lock, &[])
                .await?
                .ok_or_else(|| anyhow!("the audit head row is missing: run audit verify"))?;
            let (seq, hash): (i64, String) = (row.get(0), row.get(1));
            let prev = if seq == 0 {
                GENESIS_HASH.to_string()
            } else {
                hash
            };
            let rec = NewRecord {
                actor: &actor,
                action: &action,
                subject: &subject,
                reason: &reason,
                ticket: ticket.as_deref(),
                outcome: &outcome,
            }
            .at(u64::try_from(seq)? + 1, prev);
            let next = seq + 1;
            let insert = tx
                .prepare_cached("INSERT INTO audit_records (seq, body) VALUES ($1, $2)")
                .await?;
            // A record already at `next` means the head is behind the chain:
            // the primary key refuses it and the append fails (run verify).
            tx.execute(&insert, &[&next, &to_json(&rec)]).await?;
            let move_head = tx
                .prepare_cached("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .await?;
            tx.execute(&move_head, &[&next, &rec.hash]).await?;
            tx.commit().await?;
            Ok(rec)
        })
    }

    fn walk(&self, f: &mut RecordVisitor<'_>) -> Result<Option<Head>, AuditError> {
        self.ensure_ready()
            .map_err(|e| AuditError::Storage(format!("{e:#}")))?;
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| AuditError::Storage("key store closed".into()))?;
        let pool = self.pool.clone();
        let (tx, rx) = sync_channel::<Walked>(4);
        rt.spawn(async move {
            let send = |mut w: Walked| {
                let tx = tx.clone();
                async move {
                    loop {
                        match tx.try_send(w) {
                            Ok(()) => return true,
                            Err(TrySendError::Disconnected(_)) => return false,
                            Err(TrySendError::Full(back)) => {
                                w = back;
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    }
                }
            };
            let run = async {
                let mut client = pool.get().await?;
                let txn = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                let head = txn
                    .query_opt("SELECT seq, hash FROM audit_head WHERE id = 1", &[])
                    .await?
                    .and_then(|r| {
                        let seq: i64 = r.get(0);
                        (seq > 0).then(|| Head {
                            seq: seq as u64,
                            hash: r.get(1),
                        })
                    });
                if !send(Walked::Head(head)).await {
                    return Ok(());
                }
                let portal = txn
                    .bind("SELECT seq, body FROM audit_records ORDER BY seq", &[])
                    .await?;
                loop {
                    let rows = txn.query_portal(&portal, PAGE).await?;
                    if rows.is_empty() {
                        break;
                    }
                    let page = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                    if !send(Walked::Rows(page)).await {
                        break;
                    }
                }
                txn.commit().await?;
                Ok::<_, anyhow::Error>(())
            };
            if let Err(e) = run.await {
                send(Walked::Failed(format!("{e:#}"))).await;
            }
        });
        let storage = |m: String| AuditError::Storage(format!("PostgreSQL key store: {m}"));
        let mut head = None;
        let mut got_head = false;
        for w in rx {
            match w {
                Walked::Head(h) => {
                    head = h;
                    got_head = true;
                }
                Walked::Rows(rows) => {
                    for (seq, body) in rows {
                        let seq = u64::try_from(seq).map_err(|e| storage(e.to_string()))?;
                        f(seq, &body)?;
                    }
                }
                Walked::Failed(m) => return Err(storage(m)),
            }
        }
        if !got_head {
            return Err(storage("the audit walk stopped early".into()));
        }
        Ok(head)
    }

    fn count(&self) -> Result<usize> {
        let pool = self.pool.clone();
        self.call("counting audit records", async move {
            let client = pool.get().await?;
            let n: i64 = client
                .query_one("SELECT count(*) FROM audit_records", &[])
                .await?
                .get(0);
            Ok(n as usize)
        })
    }
}
