//! Keyed, deterministic pseudonyms: UIDs, patient IDs and names, accession
//! numbers and per-patient date shifts, all derived with HMAC-SHA-256 from the
//! site's pseudonym key.
//!
//! Deterministic derivation (not allocation) is what lets replicas and reruns
//! agree without talking to each other; the key is what stops anyone else from
//! reproducing or reversing a pseudonym by trying candidate identifiers.
//!
//! Collision bound for patient pseudonyms: 16 Crockford base-32 characters
//! carry 80 bits. For n patients the birthday bound gives
//! P(any collision) <= n(n-1)/2 / 2^80: 4.1e-11 for 10 million patients and
//! 4.1e-7 for a billion. UIDs carry 122 random bits (UUID version 8 layout):
//! P <= n^2 / 2^123, about 9.4e-15 for 10^12 UIDs.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Width of the random part of a patient pseudonym (base-32 characters).
pub const PATIENT_PSEUDONYM_CHARS: usize = 16;

/// Crockford's base-32 alphabet: no I, L, O, U, so pseudonyms read back safely.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Derives every pseudonym from one secret key.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: [u8; 32],
    prefix: String,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymizer")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Pseudonymizer {
    pub fn new(key: [u8; 32], patient_prefix: &str) -> Self {
        Pseudonymizer {
            key,
            prefix: patient_prefix.to_string(),
        }
    }

    /// HMAC over a domain label and the parts, each length-prefixed so that
    /// ("ab","c") and ("a","bc") never collide.
    pub fn mac(&self, domain: &str, parts: &[&str]) -> [u8; 32] {
        let mut m =
            <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(b"deidgate/v1/");
        m.update(domain.as_bytes());
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p.as_bytes());
        }
        m.finalize().into_bytes().into()
    }

    /// `2.25.<decimal of 128 bits>`, laid out as a version-8 UUID (RFC 9562) so
    /// the value is a valid UUID-derived OID.
    pub fn uid(&self, original: &str) -> String {
        uid_from_mac(&self.mac("uid", &[original.trim_end_matches(['\0', ' '])]))
    }

    /// The UID of an instance whose SOP Instance UID another patient's
    /// instance already has: keyed on the UID and `parts` (the patient,
    /// and offline the content), so it differs from [`Self::uid`] and stays
    /// the same when the same instance comes again.
    pub fn duplicate_uid(&self, original: &str, parts: &[&str]) -> String {
        let mut all = vec![original.trim_end_matches(['\0', ' '])];
        all.extend_from_slice(parts);
        uid_from_mac(&self.mac("uid-duplicate", &all))
    }

    /// The stable identity of a patient: issuer and ID (see [`patient_key`]).
    pub fn patient(&self, patient_key: &str) -> String {
        let mac = self.mac("patient", &[patient_key]);
        format!("{}{}", self.prefix, base32(&mac, PATIENT_PSEUDONYM_CHARS))
    }

    /// A PN value derived from the patient pseudonym.
    pub fn patient_name(&self, pseudonym: &str) -> String {
        format!("{pseudonym}^PSEUDONYM")
    }

    /// A keyed hash of `value` fitted into `max_len` base-32 characters.
    pub fn hash(&self, domain: &str, value: &str, max_len: usize) -> String {
        let mac = self.mac(domain, &[value]);
        base32(&mac, max_len.min(51))
    }

    /// The date shift of a patient, in days, within [min, max].
    pub fn date_shift(&self, patient_key: &str, min: i64, max: i64) -> i64 {
        let mac = self.mac("dateshift", &[patient_key]);
        super::dates::day_shift_from_bytes(&mac, min, max)
    }
}

/// `2.25.` and 128 bits of `mac` laid out as a version-8 UUID.
fn uid_from_mac(mac: &[u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&mac[..16]);
    b[6] = (b[6] & 0x0F) | 0x80; // version 8
    b[8] = (b[8] & 0x3F) | 0x80; // RFC 4122 variant
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// The key a patient is known by: issuer + ID when there is an ID; otherwise
/// name + birth date; otherwise the study (a patient we cannot link).
pub fn patient_key(id: &str, issuer: &str, name: &str, birth: &str, study_uid: &str) -> String {
    let id = id.trim();
    if !id.is_empty() {
        format!("id\u{1}{}\u{1}{}", issuer.trim(), id)
    } else if !name.trim().is_empty() {
        format!("name\u{1}{}\u{1}{}", name.trim(), birth.trim())
    } else {
        format!("study\u{1}{}", study_uid.trim())
    }
}

/// The first `chars` base-32 digits of `bytes` (5 bits each).
fn base32(bytes: &[u8], chars: usize) -> String {
    let mut out = String::with_capacity(chars);
    let (mut acc, mut bits, mut i) = (0u32, 0u32, 0usize);
    while out.len() < chars {
        if bits < 5 {
            acc = (acc << 8) | u32::from(bytes[i]);
            i += 1;
            bits += 8;
        }
        bits -= 5;
        out.push(CROCKFORD[((acc >> bits) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: u8) -> Pseudonymizer {
        Pseudonymizer::new([key; 32], "")
    }

    #[test]
    fn uids_are_deterministic_valid_and_keyed() {
        let a = p(1).uid("1.2.840.113619.2.1.1.322987881.621.736169244.4");
        assert_eq!(
            a,
            p(1).uid("1.2.840.113619.2.1.1.322987881.621.736169244.4")
        );
        assert_ne!(
            a,
            p(2).uid("1.2.840.113619.2.1.1.322987881.621.736169244.4")
        );
        assert!(a.starts_with("2.25."));
        assert!(a.len() <= 64, "UI max length is 64: {a}");
        let digits = &a[5..];
        assert!(!digits.starts_with('0') && digits.chars().all(|c| c.is_ascii_digit()));
        let v: u128 = digits.parse().unwrap();
        assert_eq!((v >> 76) & 0xF, 8, "UUID version 8");
        // Trailing padding does not change the identity of a UID.
        assert_eq!(p(1).uid("1.2.3\0"), p(1).uid("1.2.3"));
    }

    #[test]
    fn patient_pseudonyms_have_fixed_width_and_prefix() {
        let x = Pseudonymizer::new([7; 32], "SITE1-");
        let a = x.patient(&patient_key("12345", "HOSP", "", "", ""));
        assert_eq!(a.len(), 6 + PATIENT_PSEUDONYM_CHARS);
        assert!(a.starts_with("SITE1-"));
        assert!(a[6..].bytes().all(|b| CROCKFORD.contains(&b)));
        // Different issuer, different patient.
        assert_ne!(a, x.patient(&patient_key("12345", "OTHER", "", "", "")));
        // Under another key everything changes.
        let b = Pseudonymizer::new([8; 32], "SITE1-")
            .patient(&patient_key("12345", "HOSP", "", "", ""));
        assert_ne!(a, b);
    }

    #[test]
    fn hash_fits_the_vr_length() {
        let h = p(1).hash("accession", "ACC-2024-000123", 16);
        assert_eq!(h.len(), 16);
        assert_ne!(h, p(1).hash("accession", "ACC-2024-000124", 16));
    }

    #[test]
    fn base32_is_msb_first() {
        assert_eq!(base32(&[0xFF, 0xFF], 3), "ZZZ");
        assert_eq!(base32(&[0x00, 0x00], 3), "000");
        assert_eq!(base32(&[0b0000_1000, 0b0100_0000], 3), "110");
    }

    #[test]
    fn date_shift_is_per_patient_and_in_range() {
        let x = p(3);
        let k = patient_key("A1", "", "", "", "");
        let s = x.date_shift(&k, -3650, -365);
        assert_eq!(s, x.date_shift(&k, -3650, -365));
        assert!((-3650..=-365).contains(&s));
    }
}
