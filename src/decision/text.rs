//! Text a client chose (caller identity, model name, version, path), cut
//! to a fixed number of bytes before it enters a decision record, so an
//! unauthenticated request cannot make an entry as large as its headers
//! or body. A cut value keeps its first bytes (readable) and the SHA-256
//! of the whole (so a claimed full value can still be checked).

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Most bytes of a caller identity, model name or version label kept in a
/// decision. Configured model names and version labels are at most this
/// long, so a longer one names nothing the gateway serves.
pub const MAX_NAME_BYTES: usize = 128;

/// Most bytes of a request path kept in a decision.
pub const MAX_PATH_BYTES: usize = 256;

/// A value as the decision keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capped {
    /// The whole value, or its first bytes up to the cap (on a character boundary).
    pub kept: String,
    /// SHA-256 (lower-case hex) of the whole value's UTF-8 bytes, when it was cut.
    pub whole_sha256: Option<String>,
}

impl Capped {
    /// `text` within `max` bytes.
    pub fn new(text: &str, max: usize) -> Self {
        if text.len() <= max {
            return Self {
                kept: text.to_owned(),
                whole_sha256: None,
            };
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            kept: text[..end].to_owned(),
            whole_sha256: Some(sha256_hex(text.as_bytes())),
        }
    }

    /// Whether the value was longer than its cap.
    pub fn was_cut(&self) -> bool {
        self.whole_sha256.is_some()
    }
}

/// The SHA-256 digests of the members a decision keeps cut (none for a
/// member kept whole); each becomes `<member>_sha256` in the entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CutDigests {
    /// Of the whole caller identity.
    pub caller: Option<String>,
    /// Of the whole model name.
    pub model: Option<String>,
    /// Of the whole version label.
    pub version: Option<String>,
    /// Of the whole request path.
    pub path: Option<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    super::capture::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_kept_whole() {
        let capped = Capped::new("svc-alice", 128);
        assert_eq!(capped.kept, "svc-alice");
        assert!(!capped.was_cut());
        assert!(!Capped::new(&"a".repeat(128), 128).was_cut());
    }

    #[test]
    fn long_values_keep_a_prefix_on_a_char_boundary_and_the_digest() {
        let capped = Capped::new(&"a".repeat(129), 128);
        assert_eq!(capped.kept, "a".repeat(128));
        assert_eq!(
            capped.whole_sha256.as_deref(),
            Some(sha256_hex("a".repeat(129).as_bytes()).as_str())
        );
        // 127 ASCII bytes then a 3-byte character that would straddle the cap.
        let text = format!("{}\u{20ac}tail", "a".repeat(127));
        let capped = Capped::new(&text, 128);
        assert_eq!(capped.kept, "a".repeat(127));
        assert!(capped.was_cut());
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
