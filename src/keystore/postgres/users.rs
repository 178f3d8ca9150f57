//! Users and their token hashes in the shared database, so a user created
//! on one replica can use every replica and a revocation holds everywhere.
//! Records are the same JSON as in sled's `users` tree (names of staff,
//! roles, Argon2 token hashes: no patient data, not sealed).

use anyhow::Result;

use super::PgKeyStore;

impl PgKeyStore {
    /// Inserts a new user record; false when the name is taken.
    pub(crate) fn user_insert(&self, name: &str, record: Vec<u8>) -> Result<bool> {
        let pool = self.pool.clone();
        let name = name.to_string();
        self.call("adding a user", async move {
            let client = pool.get().await?;
            let n = client
                .execute(
                    "INSERT INTO users (name, record) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                    &[&name, &record],
                )
                .await?;
            Ok(n == 1)
        })
    }

    /// Replaces an existing user record (revocation).
    pub(crate) fn user_replace(&self, name: &str, record: Vec<u8>) -> Result<()> {
        let pool = self.pool.clone();
        let name = name.to_string();
        self.call("updating a user", async move {
            let client = pool.get().await?;
            client
                .execute(
                    "UPDATE users SET record = $2 WHERE name = $1",
                    &[&name, &record],
                )
                .await?;
            Ok(())
        })
    }

    /// The record of `name`.
    pub(crate) fn user_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let pool = self.pool.clone();
        let name = name.to_string();
        self.call("reading a user", async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached("SELECT record FROM users WHERE name = $1")
                .await?;
            Ok(client.query_opt(&stmt, &[&name]).await?.map(|r| r.get(0)))
        })
    }

    /// Every user record, by name.
    pub(crate) fn user_all(&self) -> Result<Vec<Vec<u8>>> {
        let pool = self.pool.clone();
        self.call("listing users", async move {
            let client = pool.get().await?;
            let stmt = client
                .prepare_cached("SELECT record FROM users ORDER BY name")
                .await?;
            Ok(client
                .query(&stmt, &[])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }
}
