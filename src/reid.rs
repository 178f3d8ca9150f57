//! Authorized re-identification: one place where a pseudonym is turned back
//! into an identity, for the CLI and the HTTP API alike.
//!
//! Every call is written to the audit log *before* anything is returned, and
//! a failure to write the audit record means nothing is revealed. The audit
//! record names the pseudonym, never the identity.

use crate::keystore::{KeyStore, PatientRecord, SledKeyStore};
use anyhow::{bail, Result};
use serde::Serialize;

/// Longest reason or ticket accepted (they are stored in the audit log).
const MAX_TEXT: usize = 1000;

/// What is being looked up.
#[derive(Clone, Debug)]
pub enum Lookup {
    Patient(String),
    Uid(String),
    Accession(String),
    /// The original pixels a pixel route replaced in instance `uid`.
    Photo(String),
}

impl Lookup {
    /// Audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Lookup::Patient(_) => "reid.patient",
            Lookup::Uid(_) => "reid.uid",
            Lookup::Accession(_) => "reid.accession",
            Lookup::Photo(_) => "reid.photo",
        }
    }

    /// The pseudonym or UID looked up (what the audit record names).
    pub fn subject(&self) -> &str {
        match self {
            Lookup::Patient(s) | Lookup::Uid(s) | Lookup::Accession(s) | Lookup::Photo(s) => s,
        }
    }
}

/// What a look-up revealed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revealed {
    Patient(PatientRecord),
    Uid {
        original_uid: String,
    },
    Accession {
        original_accession_number: String,
    },
    /// Sealed-region record of [`crate::routes::photo::encode_regions`].
    PhotoRegions {
        #[serde(skip)]
        regions: Vec<u8>,
    },
}

/// Why a re-identification is done.
#[derive(Clone, Debug)]
pub struct Justification {
    pub reason: String,
    pub ticket: Option<String>,
}

impl Justification {
    /// A reason is required; both are bounded because they go in the log.
    pub fn check(&self) -> Result<()> {
        if self.reason.trim().is_empty() {
            bail!("a reason is required: say why the re-identification is needed");
        }
        if self.reason.len() > MAX_TEXT || self.ticket.as_ref().is_some_and(|t| t.len() > MAX_TEXT)
        {
            bail!("reason and ticket are limited to {MAX_TEXT} bytes");
        }
        Ok(())
    }

    fn ticket(&self) -> Option<&str> {
        self.ticket.as_deref().filter(|t| !t.trim().is_empty())
    }
}

/// Looks up `what` for `actor`, auditing the attempt first.
///
/// Returns `Ok(None)` when the pseudonym is unknown (also audited). A missing
/// reason is refused and audited as `rejected`.
pub fn reveal(
    store: &SledKeyStore,
    actor: &str,
    what: &Lookup,
    why: &Justification,
) -> Result<Option<Revealed>> {
    let audit = store.audit();
    let record = |outcome: &str| {
        audit.append(
            actor,
            what.action(),
            what.subject(),
            &why.reason,
            why.ticket(),
            outcome,
        )
    };
    if let Err(e) = why.check() {
        record("rejected: no valid reason")?;
        return Err(e);
    }
    let found = match what {
        Lookup::Patient(p) => store.get_patient(p)?.map(Revealed::Patient),
        Lookup::Uid(u) => store
            .get_uid(u)?
            .map(|original_uid| Revealed::Uid { original_uid }),
        Lookup::Accession(a) => {
            store
                .get_accession(a)?
                .map(|original_accession_number| Revealed::Accession {
                    original_accession_number,
                })
        }
        Lookup::Photo(u) => store
            .get_pixels(u)?
            .map(|regions| Revealed::PhotoRegions { regions }),
    };
    let outcome = if found.is_some() {
        "revealed"
    } else {
        "not_found"
    };
    record(outcome)?;
    Ok(found)
}

/// The text the CLI prints for a revealed identity.
pub fn describe(r: &Revealed) -> String {
    match r {
        Revealed::Patient(p) => format!(
            "PatientID: {}\nIssuerOfPatientID: {}\nPatientName: {}\nPatientBirthDate: {}",
            p.patient_id,
            p.issuer.clone().unwrap_or_default(),
            p.name.clone().unwrap_or_default(),
            p.birth_date.clone().unwrap_or_default()
        ),
        Revealed::Uid { original_uid } => format!("UID: {original_uid}"),
        Revealed::Accession {
            original_accession_number,
        } => format!("AccessionNumber: {original_accession_number}"),
        Revealed::PhotoRegions { regions } => format!("original pixels: {} bytes", regions.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::Secrets;

    #[test]
    fn audits_before_revealing_and_refuses_without_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledKeyStore::open(dir.path(), &Secrets::generate()).unwrap();
        store.put_uid("2.25.1", "1.2.3.4").unwrap();
        let why = Justification {
            reason: "incidental finding".into(),
            ticket: Some("IRB-7".into()),
        };
        let got = reveal(&store, "api:alice", &Lookup::Uid("2.25.1".into()), &why).unwrap();
        assert_eq!(
            got,
            Some(Revealed::Uid {
                original_uid: "1.2.3.4".into()
            })
        );
        let none = reveal(&store, "api:alice", &Lookup::Uid("2.25.9".into()), &why).unwrap();
        assert!(none.is_none());
        let blank = Justification {
            reason: "  ".into(),
            ticket: None,
        };
        assert!(reveal(&store, "api:alice", &Lookup::Uid("2.25.1".into()), &blank).is_err());
        let log = store.audit().list(|_| true).unwrap();
        let outcomes: Vec<_> = log.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(
            outcomes,
            ["revealed", "not_found", "rejected: no valid reason"]
        );
        assert!(log.iter().all(|r| !r.subject.contains("1.2.3.4")));
        assert_eq!(log[0].ticket.as_deref(), Some("IRB-7"));
        assert_eq!(store.audit().verify(), Ok(3));
    }
}
