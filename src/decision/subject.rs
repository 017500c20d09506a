//! Data subjects: the keyed hash a decision carries instead of the subject
//! id a request names, so that "everything about subject X" can be found
//! (and erased) without the ledger ever holding X in clear.
//!
//! The hash is BLAKE3 in keyed mode under the gateway's subject key (a
//! secret, 32 random bytes): without the key nobody can test a guessed id
//! against the ledger, and with it the gateway finds a subject's decisions
//! through an index of these hashes.

use std::fmt;

/// The gateway's secret key for subject hashes.
#[derive(Clone)]
pub struct SubjectKey([u8; 32]);

impl SubjectKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The subject hash of `subject_id` under this key.
    pub fn hash(&self, subject_id: &str) -> SubjectHash {
        SubjectHash(*blake3::keyed_hash(&self.0, subject_id.as_bytes()).as_bytes())
    }
}

impl fmt::Debug for SubjectKey {
    /// Never the key itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectKey(..)")
    }
}

/// A subject id's keyed hash: what a decision entry's `subject` member
/// holds, in lower-case hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectHash(pub [u8; 32]);

impl SubjectHash {
    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits (either case).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        let mut out = [0; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for SubjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::hex(&self.0))
    }
}

impl serde::Serialize for SubjectHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_keyed_blake3_of_the_id() {
        let key = SubjectKey::from_bytes([7; 32]);
        let hash = key.hash("customer-42");
        assert_eq!(
            hash.0,
            *blake3::keyed_hash(&[7; 32], b"customer-42").as_bytes()
        );
        // Another key, another hash: without the key an id cannot be tested.
        assert_ne!(SubjectKey::from_bytes([8; 32]).hash("customer-42"), hash);
        assert_ne!(key.hash("customer-43"), hash);
        assert_eq!(SubjectHash::parse(&hash.to_string()), Some(hash));
        assert_eq!(
            SubjectHash::parse(&hash.to_string().to_uppercase()),
            Some(hash)
        );
        assert_eq!(SubjectHash::parse("ab"), None);
        assert_eq!(SubjectHash::parse(&"g".repeat(64)), None);
        assert!(!format!("{key:?}").contains('7'));
    }

    #[test]
    fn a_known_answer_pins_the_hash() {
        // BLAKE3 keyed_hash test vector shape: key 0..32, input "abc".
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let hash = SubjectKey::from_bytes(key).hash("abc");
        assert_eq!(
            hash.to_string(),
            blake3::keyed_hash(&key, b"abc").to_hex().as_str()
        );
    }
}
