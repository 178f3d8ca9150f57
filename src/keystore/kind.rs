//! The kinds of sealed record, shared by every key-store backend: the name
//! of their tree (sled) or table (PostgreSQL), and the associated data that
//! binds a sealed value to its kind and key. Both backends seal with the same
//! [`RecordCipher`](super::RecordCipher) and this associated data, so a
//! sealed value copies verbatim from one to the other.

/// Tree of patient records.
pub const PATIENTS_TREE: &str = "patients";
/// Tree of original UIDs.
pub const UIDS_TREE: &str = "uids";
/// Tree of original accession numbers.
pub const ACCESSIONS_TREE: &str = "accessions";
/// Tree of original pixels replaced by a pixel route (photo faces).
pub const PIXELS_TREE: &str = "pixel_regions";

/// The sealed trees (tables in PostgreSQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Patient,
    Uid,
    Accession,
    Pixels,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] = [Kind::Patient, Kind::Uid, Kind::Accession, Kind::Pixels];

    pub(crate) fn tree_name(self) -> &'static str {
        match self {
            Kind::Patient => PATIENTS_TREE,
            Kind::Uid => UIDS_TREE,
            Kind::Accession => ACCESSIONS_TREE,
            Kind::Pixels => PIXELS_TREE,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.tree_name() == name)
    }

    pub(crate) fn meta_key(self) -> String {
        format!("key_id/{}", self.tree_name())
    }

    /// Associated data binding a sealed value to its tree and key.
    pub(crate) fn aad(self, key: &[u8]) -> Vec<u8> {
        let name = self.tree_name().as_bytes();
        let mut aad = Vec::with_capacity(name.len() + 1 + key.len());
        aad.extend_from_slice(name);
        aad.push(0);
        aad.extend_from_slice(key);
        aad
    }
}
