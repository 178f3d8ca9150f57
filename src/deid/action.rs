//! Action codes of PS3.15 Table E.1-1 and the concrete actions they resolve to.

/// A cell of Table E.1-1, exactly as the standard writes it.
///
/// Compound codes (`X/Z`, `X/D`, ...) leave the choice to the implementation,
/// bounded by what the IOD requires; [`super::iod`] makes that choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionCode {
    /// Replace with a non-zero length dummy value consistent with the VR.
    D,
    /// Replace with a zero length value (or a dummy if the VR forbids empty).
    Z,
    /// Remove.
    X,
    /// Keep.
    K,
    /// Clean: replace with values of similar meaning that identify nobody.
    C,
    /// Replace the UID with a non-identifying one, consistently within the set.
    U,
    /// `X/Z`
    XZ,
    /// `X/D`
    XD,
    /// `Z/D`
    ZD,
    /// `X/Z/D`
    XZD,
    /// `X/Z/U*`: remove, empty, or replace every UID inside the sequence.
    XZU,
}

impl ActionCode {
    /// The code as the standard spells it, for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionCode::D => "D",
            ActionCode::Z => "Z",
            ActionCode::X => "X",
            ActionCode::K => "K",
            ActionCode::C => "C",
            ActionCode::U => "U",
            ActionCode::XZ => "X/Z",
            ActionCode::XD => "X/D",
            ActionCode::ZD => "Z/D",
            ActionCode::XZD => "X/Z/D",
            ActionCode::XZU => "X/Z/U*",
        }
    }
}

/// What the engine does to one element, after options, overrides and the IOD
/// have been taken into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Keep,
    Remove,
    /// Zero-length value (an empty sequence for SQ).
    Empty,
    /// A dummy value of the element's VR.
    Dummy,
    /// Clean: dates shift, free text is scrubbed, sequences are recursed.
    Clean,
    /// Replace each UID value with its keyed pseudonym.
    ReplaceUid,
    /// A fixed replacement value from the configuration.
    Replace(String),
    /// A keyed hash of the value, fitted into the VR's maximum length.
    Hash,
    /// The patient pseudonym (PatientID).
    PatientPseudonym,
    /// A name derived from the patient pseudonym (PatientName).
    PseudonymName,
}
