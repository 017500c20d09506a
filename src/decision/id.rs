//! Decision ids: 128 bits from the operating system's CSPRNG, shown as hex.

use serde::Serialize;
use std::fmt;

/// An unguessable decision id: 128 random bits, rendered as 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionId([u8; 16]);

impl DecisionId {
    /// Draws a fresh id from the OS random source.
    ///
    /// Errors only if the OS has no entropy source, which the caller treats
    /// as a gateway fault.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
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
}

impl fmt::Display for DecisionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
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
        let id = DecisionId::random().unwrap();
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
    fn ids_differ() {
        assert_ne!(DecisionId::random().unwrap(), DecisionId::random().unwrap());
    }
}
