//! The ledger signing key's file format: PKCS#8 PEM, written as v1 (RFC
//! 8410 `OneAsymmetricKey` version 0, no embedded public key: what
//! `openssl genpkey -algorithm ed25519` writes and what OpenSSL 3 and
//! pyca/cryptography load), read as v1 or v2 (the form earlier govgate
//! versions wrote, with the public key embedded and checked on load).

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};

/// A key file that is not a PKCS#8 PEM Ed25519 private key (v1 or v2), or
/// a v2 one whose embedded public key is not the private key's. Carries no
/// key material.
#[derive(Debug, thiserror::Error)]
#[error("not a PKCS#8 PEM Ed25519 private key")]
pub struct KeyFileError;

/// `key` as a PKCS#8 v1 PEM document (RFC 8410, no public key).
pub fn encode_pem(key: &SigningKey) -> Result<Zeroizing<String>, KeyFileError> {
    // The `pkcs8` crate (through ed25519-dalek's re-export) writes v1 when
    // the public key is left out; `SigningKey::to_pkcs8_pem` always
    // embeds it (v2), which OpenSSL 3 refuses.
    KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .map_err(|_| KeyFileError)
}

/// The signing key in `pem`: PKCS#8 v1 or v2 (a v2 document's public key
/// must match its private key).
pub fn decode_pem(pem: &str) -> Result<SigningKey, KeyFileError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyFileError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_v1_and_reads_v1_and_v2() {
        use base64::Engine;
        let key = SigningKey::from_bytes(&[9; 32]);
        let v1 = encode_pem(&key).unwrap();
        let body: String = v1
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        // SEQUENCE of 46 bytes: INTEGER 0 (v1), the algorithm, the seed; no public key.
        assert_eq!(der.len(), 48);
        assert_eq!(der[..5], [0x30, 0x2e, 0x02, 0x01, 0x00]);
        assert_eq!(der[16..], key.to_bytes());
        assert_eq!(decode_pem(&v1).unwrap().to_bytes(), key.to_bytes());
        let v2 = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(decode_pem(&v2).unwrap().to_bytes(), key.to_bytes());
        assert!(decode_pem("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n").is_err());
    }
}
