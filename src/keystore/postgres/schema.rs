//! The PostgreSQL schema of the shared key store.
//!
//! | table           | columns                      | holds                                  |
//! |-----------------|------------------------------|----------------------------------------|
//! | `patients`, `uids`, `accessions`, `pixel_regions` | `key text`, `sealed bytea` | as the sled trees of the same name |
//! | `keystore_meta` | `name text`, `value text`    | `key_id/<table>`: key id that sealed it |
//! | `audit_records` | `seq bigint`, `body bytea`   | the audit chain, one JSON record a row |
//! | `audit_head`    | one row: `seq`, `hash`       | the chain's head, row-locked by appends |
//! | `users`         | `name text`, `record bytea`  | users, roles, token hashes (JSON)      |
//! | `series_claims` | `key text`, `owner text`, `seen_by text[]`, `split`, `touched`, `finished` | which replica holds each head MR series ([`super::series_claims`]) |
//!
//! Keys are pseudonyms (as in sled); every value is sealed. The gateway's
//! role needs only SELECT and INSERT on the record tables and UPDATE on
//! `audit_head` and `users` (see the README): the database itself then refuses edits
//! and deletions of records. `series_claims` holds no record (a keyed hash
//! and replica names): the role updates and deletes its rows.

use super::super::kind::Kind;

/// The DDL, idempotent; run under an advisory lock so replicas starting
/// together do not race on `CREATE TABLE`.
pub(super) fn ddl() -> String {
    let mut sql = String::new();
    for kind in Kind::ALL {
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, sealed bytea NOT NULL);\n",
            kind.tree_name()
        ));
    }
    sql.push_str(
        "CREATE TABLE IF NOT EXISTS keystore_meta (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS audit_records (seq bigint PRIMARY KEY CHECK (seq > 0), body bytea NOT NULL);
CREATE TABLE IF NOT EXISTS users (name text PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (
    id smallint PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash text NOT NULL
);
CREATE TABLE IF NOT EXISTS series_claims (
    key text PRIMARY KEY,
    owner text NOT NULL,
    seen_by text[] NOT NULL,
    split boolean NOT NULL DEFAULT false,
    touched timestamptz NOT NULL,
    finished timestamptz
);
",
    );
    sql
}

/// Tables the gateway needs; when all exist, no DDL is run (so a role
/// without CREATE works on a schema set up by its owner).
pub(super) const TABLES: [&str; 9] = [
    "patients",
    "uids",
    "accessions",
    "pixel_regions",
    "keystore_meta",
    "audit_records",
    "audit_head",
    "users",
    "series_claims",
];

/// Arbitrary constant for `pg_advisory_xact_lock` around the DDL.
pub(super) const DDL_LOCK: i64 = 0x6465_6964_6761_7465; // "deidgate"

pub(super) fn insert_sql(kind: Kind) -> String {
    format!(
        "INSERT INTO {} (key, sealed) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        kind.tree_name()
    )
}

pub(super) fn select_sql(kind: Kind) -> String {
    format!("SELECT sealed FROM {} WHERE key = $1", kind.tree_name())
}

pub(super) fn count_sql(kind: Kind) -> String {
    format!("SELECT count(*) FROM {}", kind.tree_name())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ddl_names_every_table() {
        let ddl = super::ddl();
        for t in super::TABLES {
            assert!(ddl.contains(&format!("EXISTS {t} (")), "{t}");
        }
    }
}
