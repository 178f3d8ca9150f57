//! Claims on head MR series, shared by the replicas: a head MR series must
//! be assembled on one replica, so the first replica that holds an instance
//! of a series records a claim; another replica that receives an instance of
//! the same series marks the claim split (and quarantines what it has), and
//! the owner sees the mark when the series is complete.
//!
//! One row per series in `series_claims`. Its key is a keyed hash of the
//! series (the caller's [`Pseudonymizer::hash`](crate::deid::pseudonym::Pseudonymizer::hash)
//! of the series' pseudonymous UID, itself a keyed hash of the Series
//! Instance UID): no original UID, not even the output UID, is stored. The
//! other columns are replica names (not identifiers of anybody), a flag and
//! two times. A finished claim counts for [`FINISHED_KEEP`] to catch a part
//! that comes late to another replica, then no longer (the next arrival
//! starts it afresh, the next finish deletes it); a claim nobody touched
//! for [`STALE`] (a replica that never came back) likewise.

use anyhow::Result;

use super::PgKeyStore;

/// How long a finished claim is kept: long enough for the rest of a
/// transfer that went to another replica, short enough that the series can
/// be sent again through one replica soon after.
pub const FINISHED_KEEP: &str = "10 minutes";
/// How long an unfinished claim nobody touches is kept.
pub const STALE: &str = "7 days";

/// A series' claim as the database has it after this replica's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesClaim {
    /// The replica that held the series first.
    pub owner: String,
    /// Instances of the series reached more than one replica.
    pub split: bool,
    /// Every replica that received part of it, in arrival order.
    pub seen_by: Vec<String>,
}

impl SeriesClaim {
    /// The replicas other than `me` that have part of the series.
    pub fn others(&self, me: &str) -> Vec<String> {
        let mut v: Vec<String> = self.seen_by.iter().filter(|r| *r != me).cloned().collect();
        if self.owner != me && !v.contains(&self.owner) {
            v.insert(0, self.owner.clone());
        }
        v
    }
}

/// A claim that no longer counts: finished more than [`FINISHED_KEEP`] ago,
/// or untouched for [`STALE`]. An arrival starts it afresh.
fn expired(c: &str) -> String {
    format!(
        "({c}.finished < now() - interval '{FINISHED_KEEP}' OR {c}.touched < now() - interval '{STALE}')"
    )
}

fn arrive_sql() -> String {
    let old = expired("c");
    format!(
        "INSERT INTO series_claims AS c (key, owner, seen_by, split, touched)
VALUES ($1, $2, ARRAY[$2]::text[], false, now())
ON CONFLICT (key) DO UPDATE SET
    owner = CASE WHEN {old} THEN EXCLUDED.owner ELSE c.owner END,
    split = CASE WHEN {old} THEN false ELSE c.split OR c.owner <> EXCLUDED.owner END,
    seen_by = CASE WHEN {old} THEN ARRAY[EXCLUDED.owner]
                   WHEN EXCLUDED.owner = ANY(c.seen_by) THEN c.seen_by
                   ELSE c.seen_by || EXCLUDED.owner END,
    finished = CASE WHEN {old} OR c.owner = EXCLUDED.owner THEN NULL ELSE c.finished END,
    touched = now()
RETURNING owner, split, seen_by"
    )
}

const FINISH_SQL: &str = "
UPDATE series_claims SET finished = now(), touched = now() WHERE key = $1
RETURNING owner, split, seen_by";

fn cleanup_sql() -> String {
    format!("DELETE FROM series_claims s WHERE {}", expired("s"))
}

fn claim_of(row: &tokio_postgres::Row) -> SeriesClaim {
    SeriesClaim {
        owner: row.get(0),
        split: row.get(1),
        seen_by: row.get(2),
    }
}

impl PgKeyStore {
    /// Replica `replica` received an instance of series `key`: claims the
    /// series when nobody has, or records that it reached another replica
    /// (the claim is then split). One statement, atomic under concurrent
    /// arrivals on several replicas.
    pub fn series_arrived(&self, key: &str, replica: &str) -> Result<SeriesClaim> {
        let pool = self.pool.clone();
        let (key, replica) = (key.to_string(), replica.to_string());
        self.call("claiming a head MR series", async move {
            let client = pool.get().await?;
            let stmt = client.prepare_cached(&arrive_sql()).await?;
            let row = client.query_one(&stmt, &[&key, &replica]).await?;
            Ok(claim_of(&row))
        })
    }

    /// The series `key` is complete on this replica: marks its claim
    /// finished and returns it (`None`: no claim, e.g. expired), then drops
    /// claims finished long ago or abandoned.
    pub fn series_finished(&self, key: &str) -> Result<Option<SeriesClaim>> {
        let pool = self.pool.clone();
        let key = key.to_string();
        self.call("closing a head MR series claim", async move {
            let client = pool.get().await?;
            let stmt = client.prepare_cached(FINISH_SQL).await?;
            let claim = client
                .query_opt(&stmt, &[&key])
                .await?
                .map(|r| claim_of(&r));
            client.execute(&cleanup_sql(), &[]).await?;
            Ok(claim)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_names_the_expiry_once_per_use() {
        assert!(arrive_sql().contains("interval '10 minutes'"));
        assert!(cleanup_sql().starts_with("DELETE FROM series_claims s WHERE (s.finished"));
    }

    #[test]
    fn others_names_the_owner_and_the_other_receivers() {
        let c = SeriesClaim {
            owner: "a".into(),
            split: true,
            seen_by: vec!["a".into(), "b".into(), "c".into()],
        };
        assert_eq!(c.others("b"), ["a", "c"]);
        assert_eq!(c.others("a"), ["b", "c"]);
        let c = SeriesClaim {
            owner: "a".into(),
            split: false,
            seen_by: vec!["b".into()],
        };
        assert_eq!(c.others("b"), ["a"]);
    }
}
