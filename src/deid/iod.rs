//! Resolving the compound actions of Table E.1-1 (`X/Z`, `X/D`, `Z/D`,
//! `X/Z/D`, `X/Z/U*`).
//!
//! The standard lets the implementation remove the attribute where the IOD
//! allows it and otherwise empty it (Type 2) or give it a dummy (Type 1). We do
//! not carry PS3.3's module tables, so for the 49 compound rows we record the
//! *strictest* type the attribute has in the common composite IODs (PS3.3,
//! 2024b). Taking the strictest type means output stays valid for every IOD we
//! receive; the price is that a few Type 3 uses keep an empty or dummy value
//! instead of being removed, which leaks nothing.

use super::action::{Action, ActionCode};
use dicom_core::Tag;

/// Strictest attribute type across the common composite IODs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Type 1 or 1C somewhere: must be present with a value.
    Type1,
    /// Type 2 or 2C somewhere: must be present, may be empty.
    Type2,
    /// Optional everywhere we know of.
    Type3,
}

/// The strictest requirement of the attributes that have compound actions.
pub fn requirement(tag: Tag) -> Requirement {
    use Requirement::*;
    match (tag.group(), tag.element()) {
        // Acquisition Context Sequence: Type 2 in the Acquisition Context module.
        (0x0040, 0x0555) => Type2,
        // Acquisition DateTime: Type 1C in the Enhanced MR/CT/XA image modules.
        (0x0008, 0x002A) => Type1,
        // Content Date/Time: Type 1 in SR Document General, Presentation State, SEG.
        (0x0008, 0x0023) | (0x0008, 0x0033) => Type1,
        // Content Creator's Name: Type 2 in Presentation State Identification.
        (0x0070, 0x0084) => Type2,
        // Contrast/Bolus Agent: Type 2 in the Contrast/Bolus module.
        (0x0018, 0x0010) => Type2,
        // Device Serial Number: Type 1 in Enhanced General Equipment.
        (0x0018, 0x1000) => Type1,
        // Instruction Performed DateTime: Type 1 in its sequence.
        (0x0018, 0x9919) => Type1,
        // Observation DateTime: Type 1C in SR content items.
        (0x0040, 0xA032) => Type1,
        // Patient ID: Type 2, but it is pseudonymized before we get here.
        (0x0010, 0x0020) => Type2,
        // Patient's Sex Neutered, Responsible Person and Responsible
        // Organization: Type 2C for non-human subjects.
        (0x0010, 0x2203) | (0x0010, 0x2297) | (0x0010, 0x2299) => Type2,
        // Referenced Performed Procedure Step Sequence: Type 2 in SR Document
        // Series, but Type 3 with exactly one item in General Series, so an
        // empty sequence is wrong somewhere. The dummy of a sequence is the
        // sequence itself with its items de-identified (its UIDs replaced).
        (0x0008, 0x1111) => Type1,
        // Operators' Name: Type 2 in RT Series.
        (0x0008, 0x1070) => Type2,
        // Reviewer Name: Type 2C in RT Approval.
        (0x300E, 0x0008) => Type2,
        // RT Plan Date/Time: Type 2 in RT General Plan.
        (0x300A, 0x0006) | (0x300A, 0x0007) => Type1,
        // Treatment Machine Name: Type 2 in RT Beams.
        (0x300A, 0x00B2) => Type2,
        // First/Most Recent Treatment Date, Treatment Date/Time: Type 2 in RT records.
        (0x3008, 0x0054) | (0x3008, 0x0056) | (0x3008, 0x0250) | (0x3008, 0x0251) => Type1,
        _ => Type3,
    }
}

/// Resolve a compound code to a concrete action: remove where allowed,
/// otherwise empty (Type 2) or dummy (Type 1). Simple codes map directly.
pub fn resolve(code: ActionCode, tag: Tag) -> Action {
    use ActionCode::*;
    use Requirement::{Type1, Type2, Type3};
    let req = requirement(tag);
    match code {
        D => Action::Dummy,
        Z => Action::Empty,
        // A plain X on an attribute that some IOD requires (Type 2C for
        // animals) is emptied instead: same privacy, valid output.
        X => match req {
            Type3 => Action::Remove,
            _ => Action::Empty,
        },
        K => Action::Keep,
        C => Action::Clean,
        U => Action::ReplaceUid,
        // `U*`: the sequence stays, and every UID inside it is replaced by the
        // recursion (the references keep pointing at the pseudonymized objects).
        XZU => Action::Keep,
        XZ => match req {
            Type3 => Action::Remove,
            _ => Action::Empty,
        },
        XD => match req {
            Type3 => Action::Remove,
            _ => Action::Dummy,
        },
        ZD => match req {
            Type1 => Action::Dummy,
            _ => Action::Empty,
        },
        XZD => match req {
            Type3 => Action::Remove,
            Type2 => Action::Empty,
            Type1 => Action::Dummy,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_actions_remove_where_the_iod_allows() {
        // Station Name X/Z/D is optional everywhere: removed.
        assert_eq!(
            resolve(ActionCode::XZD, Tag(0x0008, 0x1010)),
            Action::Remove
        );
        // Device Serial Number X/Z/D is Type 1 in Enhanced General Equipment: dummy.
        assert_eq!(resolve(ActionCode::XZD, Tag(0x0018, 0x1000)), Action::Dummy);
        // Acquisition Context Sequence X/Z is Type 2: emptied.
        assert_eq!(resolve(ActionCode::XZ, Tag(0x0040, 0x0555)), Action::Empty);
        // Content Date Z/D is Type 1 in SR: dummy; Contrast/Bolus Agent Z/D Type 2: empty.
        assert_eq!(resolve(ActionCode::ZD, Tag(0x0008, 0x0023)), Action::Dummy);
        assert_eq!(resolve(ActionCode::ZD, Tag(0x0018, 0x0010)), Action::Empty);
        // Protocol Name X/D is optional: removed.
        assert_eq!(resolve(ActionCode::XD, Tag(0x0018, 0x1030)), Action::Remove);
        // Referenced Image Sequence X/Z/U*: kept, its UIDs replaced inside.
        assert_eq!(resolve(ActionCode::XZU, Tag(0x0008, 0x1140)), Action::Keep);
    }

    #[test]
    fn simple_codes_map_directly() {
        let t = Tag(0x0010, 0x1000);
        assert_eq!(resolve(ActionCode::X, t), Action::Remove);
        assert_eq!(resolve(ActionCode::Z, t), Action::Empty);
        assert_eq!(resolve(ActionCode::D, t), Action::Dummy);
        assert_eq!(resolve(ActionCode::K, t), Action::Keep);
        assert_eq!(resolve(ActionCode::C, t), Action::Clean);
        assert_eq!(resolve(ActionCode::U, t), Action::ReplaceUid);
    }
}
