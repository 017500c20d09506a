//! Decision ids: the second they were drawn (32 bits) then 96 bits from a
//! CSPRNG, shown as hex.
//!
//! The leading second keeps ids drawn close in time close in the ledger's
//! id index, so recording a decision touches the few index pages of the
//! current second instead of a random page of an index that outgrows the
//! cache. The 96 random bits keep ids unguessable. The generator is `rand`'s thread-local ChaCha12 generator, seeded and
//! periodically reseeded from the operating system. A system call per id
//! measured as a few percent of the gateway's CPU under load.

use serde::Serialize;
use std::fmt;

/// An unguessable decision id: a 32-bit Unix second then 96 random bits,
/// rendered as 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionId([u8; 16]);

impl DecisionId {
    /// Draws a fresh, unguessable id.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        // Wraps in 2106; only locality depends on it.
        bytes[..4].copy_from_slice(&(second as u32).to_be_bytes());
        rand::rng().fill_bytes(&mut bytes[4..]);
        Self(bytes)
    }

    /// Parses the 32-hex-digit form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let raw = text.as_bytes();
        if raw.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in raw.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            bytes[i] = (hi * 16 + lo) as u8;
        }
        Some(Self(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The 32 lower-case hex digits (ASCII), without going through `fmt`:
    /// this runs for every request.
    pub fn hex(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, byte) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(byte >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(byte & 0x0f)];
        }
        out
    }
}

impl fmt::Display for DecisionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        // INVARIANT: hex digits are ASCII.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for DecisionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DecisionId({self})")
    }
}

impl Serialize for DecisionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        let id = DecisionId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(DecisionId::parse(&text), Some(id));
    }

    #[test]
    fn parse_rejects_bad_text() {
        assert_eq!(DecisionId::parse("abc"), None);
        assert_eq!(DecisionId::parse(&"g".repeat(32)), None);
        assert_eq!(DecisionId::parse(&"é".repeat(16)), None);
    }

    #[test]
    fn ids_differ_in_their_random_bits_and_start_with_their_second() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let (a, b) = (DecisionId::random(), DecisionId::random());
        assert_ne!(a.as_bytes()[4..], b.as_bytes()[4..]);
        let second = u32::from_be_bytes(a.as_bytes()[..4].try_into().unwrap());
        assert!(
            second == before || second == before + 1,
            "{second} vs {before}"
        );
    }
}
