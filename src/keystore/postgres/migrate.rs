//! `deidgate keys migrate --to postgres`: copies a sled key store into the
//! shared PostgreSQL one, then checks the copy from the database side:
//! every sled record is there and opens to the same content, the table
//! counts are at least the sled counts, and the copied audit chain
//! verifies with the same length and head.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use super::PgKeyStore;
use crate::keystore::kind::Kind;
use crate::keystore::SledKeyStore;

/// What a migration copied and checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Records copied, per table.
    pub records: BTreeMap<&'static str, u64>,
    /// Records in each PostgreSQL table afterwards.
    pub in_database: BTreeMap<&'static str, u64>,
    /// Audit records copied (0 when the database chain was kept).
    pub audit_copied: usize,
    /// Length of the verified PostgreSQL audit chain.
    pub audit_verified: usize,
}

/// Copies `sled` into `pg` and verifies the copy (see the module doc).
///
/// Records are insert-only, so a rerun after an interruption copies the
/// rest. The audit chain is copied only into an empty chain; when the
/// database chain is not empty it must be the sled chain's copy already
/// (same length and last hash), else the migration stops.
pub fn migrate_from_sled(sled: &SledKeyStore, pg: &PgKeyStore) -> Result<MigrateReport> {
    if sled.key_id() != pg.key_id() {
        bail!(
            "the sled store is sealed with key id {} and the database with {}: use one secrets file",
            sled.key_id(),
            pg.key_id()
        );
    }
    let mut report = MigrateReport::default();
    sled.export_plain(|tree, key, plain| {
        let kind = Kind::from_name(tree).context("unknown tree")?;
        let key = String::from_utf8(key.to_vec()).context("a key that is not UTF-8")?;
        pg.import_plain(kind, &key, plain.clone())?;
        // Read back from the database: it must open to the same bytes.
        match pg.open_plain(kind, &key)? {
            Some(p) if p == plain => {}
            Some(_) => bail!(
                "{} record {key} differs in the database (an earlier record under the same \
                 pseudonym was kept): the stores disagree",
                kind.tree_name()
            ),
            None => bail!(
                "{} record {key} is missing after the copy",
                kind.tree_name()
            ),
        }
        *report.records.entry(kind.tree_name()).or_default() += 1;
        Ok(())
    })?;
    for kind in Kind::ALL {
        let copied = report.records.get(kind.tree_name()).copied().unwrap_or(0);
        let n = pg.count(kind)?;
        if n < copied {
            bail!(
                "table {} has {n} records, fewer than the {copied} copied",
                kind.tree_name()
            );
        }
        // Every database record opens too (also those of other replicas).
        for key in pg.keys(kind)? {
            pg.open_plain(kind, &key)?;
        }
        report.in_database.insert(kind.tree_name(), n);
    }
    let sled_audit = sled.audit();
    let sled_len = sled_audit
        .verify()
        .map_err(|e| anyhow::anyhow!("the sled audit chain does not verify, not copied: {e}"))?;
    let records = sled_audit.list(|_| true)?;
    let pg_len = pg
        .audit_verify()
        .map_err(|e| anyhow::anyhow!("the database audit chain does not verify: {e}"))?;
    if pg_len == 0 {
        report.audit_copied = records.len();
        pg.audit_import(records)?;
    } else {
        let same = pg_len == sled_len && records.last().map(|r| r.hash.clone()) == last_hash(pg)?;
        if !same {
            bail!(
                "the database already has an audit chain of {pg_len} records that is not this \
                 store's ({sled_len} records): chains are not merged"
            );
        }
    }
    report.audit_verified = pg
        .audit_verify()
        .map_err(|e| anyhow::anyhow!("the copied audit chain does not verify: {e}"))?;
    if report.audit_verified != sled_len {
        bail!(
            "the copied audit chain has {} records, the sled chain {sled_len}",
            report.audit_verified
        );
    }
    Ok(report)
}

fn last_hash(pg: &PgKeyStore) -> Result<Option<String>> {
    use crate::keystore::audit::SharedAudit;
    let mut last = None;
    pg.walk(&mut |_, body| {
        last = Some(body.to_vec());
        Ok(())
    })?;
    Ok(last
        .and_then(|b| serde_json::from_slice::<crate::keystore::AuditRecord>(&b).ok())
        .map(|r| r.hash))
}
