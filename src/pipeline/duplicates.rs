//! Duplicate SOP Instance UIDs: two different objects that carry the same
//! SOP Instance UID would share one pseudonymised UID, one output file and
//! one forward-queue entry, so the second would silently replace the first.
//! The first keeps the UID; every later one under another patient (offline,
//! in one run: with other content) is a conflict, which the stage either
//! quarantines or delivers under [`Pseudonymizer::duplicate_uid`]
//! (`[filter] duplicate_sop_instance_uid`).
//!
//! The gateway remembers the first patient of each UID in the key store's
//! database, keyed by the UID's pseudonym (no PHI). Offline, the decision is
//! made before the run from the sorted inputs, so it does not depend on
//! which thread gets there first: the same inputs and keys give the same
//! bytes.

use crate::deid::engine::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
use crate::deid::pseudonym::{patient_key, Pseudonymizer};
use anyhow::{Context, Result};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Tree of the first patient pseudonym per SOP Instance UID pseudonym.
const TREE: &str = "instance_owner";

/// Whether an instance may keep its SOP Instance UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First (or the same patient again: a resend).
    Own,
    /// Another patient's (offline: other content's) instance has the UID.
    /// `owner` is that patient's pseudonym; `key` the parts the new UID is
    /// keyed on.
    Conflict { owner: String, key: Vec<String> },
}

/// Decides [`Claim`]s for the stage.
pub trait Claims: Sync {
    /// `uid`: the original SOP Instance UID; `patient`: this instance's
    /// patient pseudonym; `origin`: where it came from (offline: its path).
    fn claim(&self, uid: &str, patient: &str, origin: &str) -> Result<Claim>;
}

/// The gateway's claims, kept in the key store's database.
pub struct StoreClaims {
    tree: sled::Tree,
    pseudo: Pseudonymizer,
}

impl StoreClaims {
    pub fn open(db: &sled::Db, pseudo: Pseudonymizer) -> Result<StoreClaims> {
        let tree = db
            .open_tree(TREE)
            .context("cannot open the instance owner tree")?;
        Ok(StoreClaims { tree, pseudo })
    }
}

impl Claims for StoreClaims {
    fn claim(&self, uid: &str, patient: &str, _origin: &str) -> Result<Claim> {
        let key = self.pseudo.uid(uid);
        let won = self
            .tree
            .compare_and_swap(key.as_bytes(), None::<&[u8]>, Some(patient.as_bytes()))
            .context("key store: cannot record the instance owner")?;
        Ok(match won {
            Ok(()) => Claim::Own,
            Err(e) => match e.current {
                Some(owner) if owner.as_ref() != patient.as_bytes() => Claim::Conflict {
                    owner: String::from_utf8_lossy(&owner).into_owned(),
                    key: vec![patient.to_string()],
                },
                _ => Claim::Own,
            },
        })
    }
}

/// Offline claims, decided from the inputs before the run: in each group of
/// files with one SOP Instance UID, sorted by path, the first keeps it;
/// every file with another patient or other content conflicts.
#[derive(Debug, Default)]
pub struct BatchClaims {
    conflicts: HashMap<String, Claim>,
}

/// What the scan reads of one file.
struct Head {
    path: PathBuf,
    uid: String,
    patient: String,
}

impl BatchClaims {
    /// Read the header of every file (in parallel) and decide. Files that do
    /// not parse are left to the stage, which quarantines them.
    pub fn scan(files: &[PathBuf], pseudo: &Pseudonymizer) -> Result<BatchClaims> {
        let heads: Vec<Head> = files.par_iter().filter_map(|p| head(p, pseudo)).collect();
        let mut groups: BTreeMap<&str, Vec<&Head>> = BTreeMap::new();
        for h in &heads {
            groups.entry(&h.uid).or_default().push(h);
        }
        let mut conflicts = HashMap::new();
        for (_, mut group) in groups.into_iter().filter(|(_, g)| g.len() > 1) {
            group.sort_by(|a, b| a.path.cmp(&b.path));
            let hashes = group
                .iter()
                .map(|h| content_hash(&h.path))
                .collect::<Result<Vec<_>>>()?;
            let (first, first_hash) = (group[0], &hashes[0]);
            for (h, hash) in group.iter().zip(&hashes).skip(1) {
                let key = if h.patient != first.patient {
                    vec![h.patient.clone()]
                } else if hash != first_hash {
                    vec![h.patient.clone(), hash.clone()]
                } else {
                    continue; // a copy: the same output
                };
                let claim = Claim::Conflict {
                    owner: first.patient.clone(),
                    key,
                };
                conflicts.insert(h.path.display().to_string(), claim);
            }
        }
        Ok(BatchClaims { conflicts })
    }

    /// How many inputs conflict.
    pub fn len(&self) -> usize {
        self.conflicts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conflicts.is_empty()
    }
}

impl Claims for BatchClaims {
    fn claim(&self, _uid: &str, _patient: &str, origin: &str) -> Result<Claim> {
        Ok(self.conflicts.get(origin).cloned().unwrap_or(Claim::Own))
    }
}

/// SOP Instance UID and patient pseudonym from the header of `path`.
fn head(path: &Path, pseudo: &Pseudonymizer) -> Option<Head> {
    let obj = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .ok()?;
    let text = |t| crate::dicom::text(&obj, t);
    let uid = text(tags::SOP_INSTANCE_UID);
    if uid.is_empty() {
        return None;
    }
    let key = patient_key(
        &text(tags::PATIENT_ID),
        &text(tags::ISSUER_OF_PATIENT_ID),
        &text(tags::PATIENT_NAME),
        &text(tags::PATIENT_BIRTH_DATE),
        &text(tags::STUDY_INSTANCE_UID),
    );
    Some(Head {
        path: path.to_path_buf(),
        uid,
        patient: pseudo.patient(&key),
    })
}

fn content_hash(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(&sha2::Sha256::digest(&bytes)[..16]))
}

/// Give `obj` the SOP Instance UID `uid` (data set and file meta).
pub fn set_sop_instance_uid(obj: &mut DefaultDicomObject, uid: &str) -> Result<()> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(uid),
    ));
    let m = obj.meta();
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(m.media_storage_sop_class_uid().trim_end_matches('\0'))
        .media_storage_sop_instance_uid(uid)
        .transfer_syntax(m.transfer_syntax().trim_end_matches('\0'))
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .build()
        .context("cannot rebuild the file meta group")?;
    *obj.meta_mut() = meta;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_patient_owns_a_uid_and_a_resend_is_not_a_conflict() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::open(tmp.path()).unwrap();
        let c = StoreClaims::open(&db, Pseudonymizer::new([7; 32], "")).unwrap();
        assert_eq!(c.claim("1.2.3", "PA", "x").unwrap(), Claim::Own);
        assert_eq!(c.claim("1.2.3", "PA", "y").unwrap(), Claim::Own);
        assert_eq!(
            c.claim("1.2.3", "PB", "z").unwrap(),
            Claim::Conflict {
                owner: "PA".into(),
                key: vec!["PB".into()]
            }
        );
        assert_eq!(c.claim("1.2.4", "PB", "z").unwrap(), Claim::Own);
    }
}
