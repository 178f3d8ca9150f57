//! Users of the API, stored in the key store's database (tree `users`; on
//! replicas, table `users` of the shared PostgreSQL key store).
//!
//! A user is a name, a set of roles and one token hash. Revoking keeps the
//! record (with the time of revocation) so the audit trail still names a
//! known account; a revoked user can never authenticate again, and a name is
//! never reused.

use super::{Role, Token};
use anyhow::{bail, Context, Result};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Tree holding one JSON [`User`] per name.
pub const USERS_TREE: &str = "users";

/// One account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub roles: Vec<Role>,
    /// Public half of the token, to find the user from a presented token.
    pub token_id: String,
    /// Argon2id PHC string of the token secret.
    pub token_hash: String,
    /// RFC 3339 UTC.
    pub created: String,
    /// RFC 3339 UTC time of revocation, if revoked.
    pub revoked: Option<String>,
}

impl User {
    pub fn has(&self, role: Role) -> bool {
        self.revoked.is_none() && self.roles.contains(&role)
    }
}

/// The `users` tree.
#[derive(Clone)]
pub struct UserStore {
    tree: sled::Tree,
    /// Replicas on a shared key store keep their users there instead.
    shared: Option<std::sync::Arc<crate::keystore::PgKeyStore>>,
}

impl UserStore {
    pub fn open(db: &sled::Db) -> Result<UserStore> {
        Ok(UserStore {
            tree: db.open_tree(USERS_TREE).context("opening users tree")?,
            shared: None,
        })
    }

    /// The users of `store`: its sled database, or the shared database
    /// when the gateway is a replica on one.
    pub fn for_store(store: &crate::keystore::SledKeyStore) -> Result<UserStore> {
        let mut users = Self::open(store.db())?;
        users.shared = store.shared().cloned();
        Ok(users)
    }

    /// Creates a user and returns its token, the only time it is visible.
    pub fn add(&self, name: &str, roles: &[Role]) -> Result<(User, Token)> {
        check_name(name)?;
        if roles.is_empty() {
            bail!("a user needs at least one role (reid, auditor, operator, reviewer)");
        }
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let token = Token::generate();
        let user = User {
            name: name.to_string(),
            roles,
            token_id: token.id.clone(),
            token_hash: token.hash()?,
            created: now(),
            revoked: None,
        };
        let json = serde_json::to_vec(&user)?;
        if let Some(pg) = &self.shared {
            if !pg.user_insert(name, json)? {
                bail!("user {name:?} already exists (names are never reused; pick another)");
            }
            return Ok((user, token));
        }
        let swapped = self
            .tree
            .compare_and_swap(name, None::<&[u8]>, Some(json))
            .context("writing users tree")?;
        if swapped.is_err() {
            bail!("user {name:?} already exists (names are never reused; pick another)");
        }
        self.tree.flush().context("flushing users tree")?;
        Ok((user, token))
    }

    /// All users, by name.
    pub fn list(&self) -> Result<Vec<User>> {
        if let Some(pg) = &self.shared {
            return pg
                .user_all()?
                .iter()
                .map(|v| serde_json::from_slice(v).context("decoding user record"))
                .collect();
        }
        self.tree
            .iter()
            .values()
            .map(|v| {
                let v = v.context("reading users tree")?;
                serde_json::from_slice(&v).context("decoding user record")
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Result<Option<User>> {
        if let Some(pg) = &self.shared {
            return pg
                .user_get(name)?
                .map(|v| serde_json::from_slice(&v).context("decoding user record"))
                .transpose();
        }
        self.tree
            .get(name)
            .context("reading users tree")?
            .map(|v| serde_json::from_slice(&v).context("decoding user record"))
            .transpose()
    }

    /// Marks a user revoked; its token stops working at once.
    pub fn revoke(&self, name: &str) -> Result<User> {
        let Some(mut user) = self.get(name)? else {
            bail!("no user {name:?}");
        };
        if user.revoked.is_none() {
            user.revoked = Some(now());
            if let Some(pg) = &self.shared {
                pg.user_replace(name, serde_json::to_vec(&user)?)?;
                return Ok(user);
            }
            self.tree
                .insert(name, serde_json::to_vec(&user)?)
                .context("writing users tree")?;
            self.tree.flush().context("flushing users tree")?;
        }
        Ok(user)
    }

    /// The active user owning `token_id` (not yet checked against the secret).
    pub fn by_token_id(&self, token_id: &str) -> Result<Option<User>> {
        Ok(self
            .list()?
            .into_iter()
            .find(|u| u.token_id == token_id && u.revoked.is_none()))
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Names appear in the audit log and in URLs: keep them plain.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if !ok {
        bail!("user name {name:?}: expected 1 to 64 of A-Z a-z 0-9 . _ - @");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, UserStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        (dir, UserStore::open(&db).unwrap())
    }

    #[test]
    fn add_find_revoke() {
        let (_d, s) = store();
        let (u, t) = s.add("alice", &[Role::Reid, Role::Reid]).unwrap();
        assert_eq!(u.roles, vec![Role::Reid]);
        let found = s.by_token_id(&t.id).unwrap().unwrap();
        assert!(t.verify(&found.token_hash));
        assert!(found.has(Role::Reid) && !found.has(Role::Operator));
        assert!(s.add("alice", &[Role::Operator]).is_err());
        s.revoke("alice").unwrap();
        assert!(s.by_token_id(&t.id).unwrap().is_none());
        assert!(!s.get("alice").unwrap().unwrap().has(Role::Reid));
        assert!(s.revoke("bob").is_err());
    }

    #[test]
    fn validates_names_and_roles() {
        let (_d, s) = store();
        assert!(s.add("", &[Role::Reid]).is_err());
        assert!(s.add("a b", &[Role::Reid]).is_err());
        assert!(s.add("carol", &[]).is_err());
        s.add("dr.smith@site-1", &[Role::Auditor, Role::Operator])
            .unwrap();
        assert_eq!(s.list().unwrap().len(), 1);
    }
}
