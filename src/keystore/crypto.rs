//! Authenticated encryption of key-store records.
//!
//! XChaCha20-Poly1305 is used because its 192-bit nonce can be drawn at random
//! for every record with no practical risk of reuse (unlike AES-GCM's 96 bits),
//! so no nonce counter has to be persisted or coordinated between processes.
//!
//! Sealed layout: `version (1 byte) || nonce (24 bytes) || ciphertext+tag`.
//! The version byte lets a future format coexist with this one.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use thiserror::Error;

/// Current sealed-record format.
pub const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// Why a sealed record could not be opened.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Shorter than header + tag: truncated or not a sealed record at all.
    #[error("sealed record is too short ({0} bytes): truncated or not a sealed record")]
    TooShort(usize),
    /// Written by an unknown (newer?) format.
    #[error(
        "sealed record has unknown format version {0} (this build reads version {FORMAT_VERSION})"
    )]
    UnknownVersion(u8),
    /// Poly1305 tag mismatch.
    #[error(
        "sealed record failed authentication: wrong encryption key, \
         or the record was tampered with or moved to another key"
    )]
    Authentication,
}

/// Seals and opens records with one 256-bit key.
pub struct RecordCipher {
    aead: XChaCha20Poly1305,
}

impl RecordCipher {
    /// Builds a cipher for `key` (the `encryption_key` of the secrets file).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            aead: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Encrypts `plaintext`, binding it to `aad` (which is not stored: the
    /// caller must present the same `aad` to [`open`](Self::open)).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        // The only failure mode of this AEAD is a message over ~256 GiB; key
        // store records are a few hundred bytes.
        let ct = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("XChaCha20-Poly1305 cannot fail for messages under 256 GiB");
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts a record produced by [`seal`](Self::seal) with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        if sealed[0] != FORMAT_VERSION {
            return Err(CryptoError::UnknownVersion(sealed[0]));
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        self.aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| CryptoError::Authentication)
    }
}

impl std::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordCipher { key: <redacted> }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7u8; 32];

    #[test]
    fn seal_open_roundtrip() {
        let c = RecordCipher::new(&KEY);
        let sealed = c.seal(b"patients\0P1", b"DOE^JOHN");
        assert_eq!(sealed[0], FORMAT_VERSION);
        assert_eq!(sealed.len(), HEADER_LEN + 8 + TAG_LEN);
        assert_eq!(c.open(b"patients\0P1", &sealed).unwrap(), b"DOE^JOHN");
    }

    #[test]
    fn nonces_are_fresh() {
        let c = RecordCipher::new(&KEY);
        assert_ne!(c.seal(b"a", b"same"), c.seal(b"a", b"same"));
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = RecordCipher::new(&KEY).seal(b"a", b"secret");
        let other = RecordCipher::new(&[8u8; 32]);
        assert_eq!(other.open(b"a", &sealed), Err(CryptoError::Authentication));
    }

    #[test]
    fn wrong_aad_fails() {
        let c = RecordCipher::new(&KEY);
        let sealed = c.seal(b"patients\0P1", b"secret");
        assert_eq!(
            c.open(b"patients\0P2", &sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn tampering_fails() {
        let c = RecordCipher::new(&KEY);
        let sealed = c.seal(b"a", b"secret");
        for i in 1..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert_eq!(
                c.open(b"a", &t),
                Err(CryptoError::Authentication),
                "byte {i}"
            );
        }
    }

    #[test]
    fn bad_version_and_short_input() {
        let c = RecordCipher::new(&KEY);
        let mut sealed = c.seal(b"a", b"secret");
        sealed[0] = 9;
        assert_eq!(c.open(b"a", &sealed), Err(CryptoError::UnknownVersion(9)));
        assert_eq!(c.open(b"a", &[1u8; 10]), Err(CryptoError::TooShort(10)));
        let msg = CryptoError::Authentication.to_string();
        assert!(msg.contains("wrong encryption key"));
    }
}
