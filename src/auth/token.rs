//! API tokens: `dg_<id>_<secret>`.
//!
//! The id (12 hex digits) finds the user without trying every hash; the
//! secret (256 random bits) is what is checked, against an Argon2id hash.
//! Argon2 is slow on purpose, which is why a token is hashed once per user
//! and verified results are cached briefly by the caller.

use anyhow::{anyhow, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::rngs::OsRng;
use rand::RngCore;

const PREFIX: &str = "dg_";

/// A token as presented by a client, split into its parts.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({})", self.id)
    }
}

impl Token {
    /// A new random token.
    pub fn generate() -> Token {
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(&mut secret);
        Token {
            id: hex::encode(id),
            secret: hex::encode(secret),
        }
    }

    /// Parses `dg_<12 hex>_<64 hex>`; anything else is not a token.
    pub fn parse(text: &str) -> Option<Token> {
        let rest = text.trim().strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hex_of(id, 12) && hex_of(secret, 64)).then(|| Token {
            id: id.to_ascii_lowercase(),
            secret: secret.to_ascii_lowercase(),
        })
    }

    /// The full token text, shown once to the user it is issued to.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }

    /// Argon2id PHC string of the secret, with a random salt.
    pub fn hash(&self) -> Result<String> {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default()
            .hash_password(self.secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow!("hashing token: {e}"))
    }

    /// Whether this token's secret matches `phc` (constant-time inside argon2).
    pub fn verify(&self, phc: &str) -> bool {
        PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(self.secret.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_verify() {
        let t = Token::generate();
        let text = t.reveal();
        assert!(text.starts_with("dg_"));
        assert_eq!(text.len(), 3 + 12 + 1 + 64);
        let parsed = Token::parse(&text).unwrap();
        assert_eq!(parsed, t);
        let phc = t.hash().unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains(&t.secret));
        assert!(parsed.verify(&phc));
        assert!(!Token::generate().verify(&phc));
        assert!(!t.verify("not a hash"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "dg_",
            "Bearer dg_x",
            "dg_0123456789ab",
            "dg_0123456789a_0000000000000000000000000000000000000000000000000000000000000000",
            "xx_0123456789ab_0000000000000000000000000000000000000000000000000000000000000000",
            "dg_0123456789ab_zz00000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(Token::parse(bad).is_none(), "{bad}");
        }
        // Debug never shows the secret.
        let t = Token::generate();
        assert!(!format!("{t:?}").contains(&t.secret));
    }
}
