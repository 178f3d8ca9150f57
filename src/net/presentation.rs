//! What the receiver negotiates: Verification, every standard Storage SOP
//! class (looked up in the DICOM dictionary, never a hand list), and the
//! transfer syntaxes the pipeline can decode or pass through safely.

use dicom_core::dictionary::{UidDictionary, UidDictionaryEntry};
use dicom_dictionary_std::{uids, StandardSopClassDictionary};

/// Accepted transfer syntaxes. A proposal lists them in the sender's order of
/// preference; the first one that is also here wins. (Big endian is retired
/// but older devices still send it.)
#[allow(deprecated)]
pub const TRANSFER_SYNTAXES: &[&str] = &[
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
    uids::EXPLICIT_VR_BIG_ENDIAN,
    uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    uids::JPEG_BASELINE8_BIT,
    uids::JPEG_EXTENDED12_BIT,
    uids::JPEG_LOSSLESS,
    uids::JPEG_LOSSLESS_SV1,
    uids::JPEGLS_LOSSLESS,
    uids::JPEGLS_NEAR_LOSSLESS,
    uids::JPEG2000_LOSSLESS,
    uids::JPEG2000,
    uids::RLE_LOSSLESS,
];

/// A UID as sent on the wire may carry a trailing NUL or space.
pub fn trim_uid(uid: &str) -> &str {
    uid.trim_end_matches(['\0', ' ']).trim_start()
}

/// Whether an abstract syntax is one we accept: Verification or a standard
/// Storage SOP class (retired ones included: old modalities still send them).
pub fn is_accepted(abstract_syntax: &str) -> bool {
    let uid = trim_uid(abstract_syntax);
    uid == uids::VERIFICATION || is_storage_sop_class(uid)
}

/// A standard SOP class whose PS3.6 name says "… Storage" (after the
/// " SOP Class", " - For Presentation/Processing", " - Trial" and
/// " (Retired)" qualifiers). Excludes Storage Commitment and the like.
pub fn is_storage_sop_class(uid: &str) -> bool {
    StandardSopClassDictionary
        .by_uid(trim_uid(uid))
        .is_some_and(|e| is_storage_name(e.name()))
}

fn is_storage_name(name: &str) -> bool {
    let mut n = name.trim();
    for suffix in [
        " (Retired)",
        " - Trial",
        " SOP Class",
        " - For Presentation",
        " - For Processing",
    ] {
        n = n.strip_suffix(suffix).unwrap_or(n);
    }
    n.ends_with(" Storage")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)] // retired classes are still accepted
    fn storage_classes_come_from_the_dictionary() {
        for uid in [
            uids::MR_IMAGE_STORAGE,
            uids::CT_IMAGE_STORAGE,
            uids::ENHANCED_MR_IMAGE_STORAGE,
            uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
            uids::COMPREHENSIVE_SR_STORAGE,
            uids::ULTRASOUND_IMAGE_STORAGE_RETIRED,
            "1.2.840.10008.5.1.4.1.1.4\0",
        ] {
            assert!(is_accepted(uid), "{uid}");
        }
        for uid in [
            uids::STORAGE_COMMITMENT_PUSH_MODEL,
            uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_FIND,
            uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
            uids::BASIC_FILM_SESSION,
            "1.3.12.2.1107.5.9.1",
            "",
        ] {
            assert!(!is_accepted(uid), "{uid}");
        }
        assert!(is_accepted(uids::VERIFICATION));
    }

    #[test]
    fn transfer_syntaxes_are_known_to_the_registry() {
        use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
        use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
        for ts in TRANSFER_SYNTAXES {
            let t = TransferSyntaxRegistry.get(ts).expect(ts);
            assert!(!t.is_unsupported(), "{ts}");
        }
    }
}
