//! A head MR series that arrives split across replicas.
//!
//! A series is assembled on one replica. Behind a load balancer without
//! source affinity, its instances can reach several replicas, and each would
//! then process a fragment as if it were the whole series. With a shared key
//! store (PostgreSQL) every replica records the series it receives in the
//! shared claims table ([`PgKeyStore::series_arrived`]): the first one owns
//! the series; a replica that receives an instance of a series another one
//! owns marks it split and quarantines that instance; the owner sees the
//! mark when the series is complete, or when its next instance arrives, and
//! quarantines its part too. Nothing of a split series is forwarded.
//!
//! With the embedded store (one replica) there is no claim and no cost.

use crate::keystore::PgKeyStore;
use crate::runtime::Runtime;
use anyhow::Result;

/// This replica's view of the shared series claims.
pub struct Split<'a> {
    store: &'a PgKeyStore,
    /// Names each series in the claims table by a keyed hash.
    pseudo: &'a crate::deid::pseudonym::Pseudonymizer,
    replica: String,
}

/// Domain of the keyed hash that names a series in the claims table.
const CLAIM_DOMAIN: &str = "series-claim";

impl<'a> Split<'a> {
    /// `None` unless the key store is shared.
    pub fn of(rt: &'a Runtime) -> Option<Split<'a>> {
        let store = rt.store.shared()?;
        Some(Split {
            store,
            pseudo: rt.deid.pseudonymizer(),
            replica: rt
                .config
                .keystore
                .replica_id(rt.config.node.port, rt.config.data_dir()),
        })
    }

    /// The claims table's key of the series whose output UID is `series`
    /// (already a keyed pseudonym of the Series Instance UID; hashed again
    /// under its own domain so the table cannot be joined with outputs).
    fn key(&self, series: &str) -> String {
        self.pseudo.hash(CLAIM_DOMAIN, series, 32)
    }

    /// An instance of `series` arrived here. `Some(reason)`: the series is
    /// split, quarantine the instance instead of holding it.
    pub fn arrived(&self, series: &str) -> Result<Option<String>> {
        let claim = self
            .store
            .series_arrived(&self.key(series), &self.replica)?;
        if !claim.split {
            return Ok(None);
        }
        Ok(Some(self.reason(&claim.others(&self.replica))))
    }

    /// The held `series` is complete here: marks the claim finished.
    /// `Some(reason)`: it is split, quarantine what this replica holds.
    pub fn complete(&self, series: &str) -> Result<Option<String>> {
        let Some(claim) = self.store.series_finished(&self.key(series))? else {
            return Ok(None);
        };
        let others = claim.others(&self.replica);
        if !claim.split && others.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.reason(&others)))
    }

    fn reason(&self, others: &[String]) -> String {
        reason(&self.replica, others)
    }
}

/// The quarantine reason of a split series.
pub fn reason(me: &str, others: &[String]) -> String {
    let also = if others.is_empty() {
        "another replica".to_string()
    } else {
        format!("replica {}", others.join(", replica "))
    };
    format!(
        "head MR series: arrived split across replicas (this is replica {me}; also on {also}); \
         configure source affinity on the load balancer so that a sender stays on one replica"
    )
}

/// The series key (its output UID) of a claimed folder `<key>.<nanos>`.
pub fn key_of_claimed(dir: &std::path::Path) -> Option<String> {
    let name = dir.file_name()?.to_str()?;
    let (key, nanos) = name.rsplit_once('.')?;
    nanos
        .chars()
        .all(|c| c.is_ascii_digit())
        .then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_the_replicas_and_the_fix() {
        let r = reason("b:104:00aa", &["a:104:11bb".into()]);
        assert!(r.starts_with("head MR series: arrived split across replicas"));
        assert!(r.contains("also on replica a:104:11bb") && r.contains("source affinity"));
        assert!(reason("b", &[]).contains("also on another replica"));
    }

    #[test]
    fn claimed_folders_name_their_series() {
        let p = std::path::Path::new("/d/series/claimed/2.25.1234.1700000000000000000");
        assert_eq!(key_of_claimed(p).as_deref(), Some("2.25.1234"));
        assert_eq!(key_of_claimed(std::path::Path::new("/d/x")), None);
    }
}
