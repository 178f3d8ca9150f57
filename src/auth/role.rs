//! The roles a user can hold. Deliberately few and disjoint: nobody gets
//! identities by being an operator or an auditor.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One permission set of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reverse pseudonyms (audited) and pseudonymize identifiers.
    Reid,
    /// Read the audit log.
    Auditor,
    /// See status, queues and quarantine reasons; never identities.
    Operator,
    /// See the pixels of quarantined objects (a downscaled preview, audited)
    /// and release them; never the identities in the key store.
    Reviewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Reid, Role::Auditor, Role::Operator, Role::Reviewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reid => "reid",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::Reviewer => "reviewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!("unknown role {s:?}: expected reid, auditor, operator or reviewer")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert_eq!(" Operator ".parse::<Role>(), Ok(Role::Operator));
        assert_eq!("reviewer".parse::<Role>(), Ok(Role::Reviewer));
        assert!("admin"
            .parse::<Role>()
            .unwrap_err()
            .contains("unknown role"));
    }
}
