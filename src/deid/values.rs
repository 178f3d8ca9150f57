//! Building replacement values that fit an element's VR.

use dicom_core::value::{PrimitiveValue, C};
use dicom_core::VR;

/// Maximum value length in characters for string VRs (PS3.5 Table 6.2-1);
/// `None` where the VR is unbounded or not a string.
pub fn max_len(vr: VR) -> Option<usize> {
    Some(match vr {
        VR::AE | VR::CS | VR::SH | VR::DS => 16,
        VR::AS => 4,
        VR::DA => 8,
        VR::DT => 26,
        VR::IS => 12,
        VR::LO | VR::UI | VR::PN => 64,
        VR::LT => 10240,
        VR::ST => 1024,
        VR::TM => 14,
        _ => return None,
    })
}

/// VRs whose values are text that may carry free-form identifying content.
pub fn is_text(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE | VR::CS | VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::UC | VR::UR | VR::UT
    )
}

/// Any character-string VR (text, dates, numbers as strings, UIDs).
pub fn is_string(vr: VR) -> bool {
    is_text(vr)
        || matches!(
            vr,
            VR::AS | VR::DA | VR::DS | VR::DT | VR::IS | VR::TM | VR::UI
        )
}

/// A non-empty dummy value of `vr` that identifies nobody (the `D` action).
/// `None` for VRs that have no meaningful dummy (binary data): the caller
/// empties those.
pub fn dummy(vr: VR) -> Option<PrimitiveValue> {
    let s = match vr {
        VR::AE | VR::CS | VR::LO | VR::LT | VR::SH | VR::ST | VR::UC | VR::UT | VR::PN => {
            "ANONYMIZED"
        }
        VR::UR => "urn:anonymized",
        VR::AS => "000D",
        VR::DA => "19000101",
        VR::DT => "19000101000000",
        VR::TM => "000000",
        VR::DS | VR::IS => "0",
        VR::US => return Some(PrimitiveValue::U16(C::from_elem(0, 1))),
        VR::SS => return Some(PrimitiveValue::I16(C::from_elem(0, 1))),
        VR::UL => return Some(PrimitiveValue::U32(C::from_elem(0, 1))),
        VR::SL => return Some(PrimitiveValue::I32(C::from_elem(0, 1))),
        VR::FL => return Some(PrimitiveValue::F32(C::from_elem(0.0, 1))),
        VR::FD => return Some(PrimitiveValue::F64(C::from_elem(0.0, 1))),
        _ => return None,
    };
    Some(PrimitiveValue::from(s))
}

/// A multi-valued string value from a backslash-joined string.
pub fn strings(joined: &str) -> PrimitiveValue {
    if joined.contains('\\') {
        PrimitiveValue::Strs(joined.split('\\').map(str::to_string).collect())
    } else {
        PrimitiveValue::from(joined.to_string())
    }
}

/// Cut `s` to at most `n` characters.
pub fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
