//! Who may use the HTTP API, and for what.
//!
//! Users and their API tokens live in the key store's sled database (tree
//! `users`); tokens are stored only as Argon2id hashes, so a copy of the
//! database does not let anyone in. Each user carries roles:
//!
//! * `reid`: reverse pseudonyms and pseudonymize new identifiers;
//! * `auditor`: read the audit log;
//! * `operator`: see status and quarantine, never identities; retry and purge
//!   dead letters, purge quarantined objects;
//! * `reviewer`: see a quarantined object's pixels (a downscaled preview,
//!   every one audited) and release it; never the key store's identities.

pub mod ratelimit;
pub mod role;
pub mod token;
pub mod users;

pub use ratelimit::FailureLimiter;
pub use role::Role;
pub use token::Token;
pub use users::{User, UserStore};
