//! One entry as the report's sections read it: its seq, time and members.
//!
//! Nearly every entry of a period is a decision, of which the sections
//! read a few string and integer members. So an entry is not parsed into
//! a tree of values up front: one scan of its canonical bytes (the one
//! verification uses) finds where each top-level member's value lies, a
//! plain string or integer is read from the bytes in place, and the tree
//! is built only when a section asks for a member as JSON ([`Entry::get`],
//! [`Entry::value`]) or for a string with escapes. Bytes the scan does not
//! vouch for (not canonical) are parsed up front as before, so every
//! member reads the same either way.

use super::ReportError;
use crate::ledger::export::UtcTime;
use serde_json::{Map, Value};
use std::cell::OnceCell;
use std::ops::Range;

/// An entry of the period.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its seq.
    pub seq: u64,
    /// Its `time`.
    pub time: UtcTime,
    /// Its `time` in milliseconds since 1970 (entries carry milliseconds).
    pub time_ms: i64,
    /// Its canonical bytes (empty when parsed up front).
    bytes: Vec<u8>,
    /// Each top-level member's name and value token, as ranges of
    /// `bytes`, in the bytes' order; `None`: parsed up front.
    tops: Option<Vec<(Range<usize>, Range<usize>)>>,
    /// The members as JSON, built on the first ask.
    tree: OnceCell<Map<String, Value>>,
}

impl Entry {
    /// Reads entry `seq`'s canonical bytes.
    pub fn parse(seq: u64, bytes: &[u8]) -> Result<Self, ReportError> {
        let bad = |why: &str| ReportError::Entry {
            seq,
            why: why.to_owned(),
        };
        if let Some(entry) = Self::scanned(seq, bytes) {
            return entry.ok_or_else(|| bad("no valid time"));
        }
        let members: Map<String, Value> =
            serde_json::from_slice(bytes).map_err(|_| bad("not a JSON object"))?;
        let time = members
            .get("time")
            .and_then(Value::as_str)
            .and_then(|text| UtcTime::parse(text).ok())
            .ok_or_else(|| bad("no valid time"))?;
        Ok(Self {
            seq,
            time,
            time_ms: time_ms(time),
            bytes: Vec::new(),
            tops: None,
            tree: OnceCell::from(members),
        })
    }

    /// The entry from one scan of canonical bytes: `None` when the scan
    /// does not vouch for them, `Some(None)` when they have no valid time.
    fn scanned(seq: u64, bytes: &[u8]) -> Option<Option<Self>> {
        let text = std::str::from_utf8(bytes).ok()?;
        let found = crate::ledger::verify::scan_top(text)?;
        let base = text.as_ptr() as usize;
        // Both are slices of `text`: their offsets in it.
        let range = |part: &[u8]| {
            let start = part.as_ptr() as usize - base;
            start..start + part.len()
        };
        let tops: Vec<_> = found
            .iter()
            .map(|(name, token)| (range(name), range(token)))
            .collect();
        // The time: a plain string (a time has nothing to escape).
        let time = found
            .iter()
            .find(|(name, _)| *name == b"time")
            .and_then(|(_, token)| token.strip_prefix(b"\"")?.strip_suffix(b"\""))
            .filter(|inner| !inner.contains(&b'\\'))
            .and_then(|inner| std::str::from_utf8(inner).ok())
            .and_then(|text| UtcTime::parse(text).ok());
        let Some(time) = time else {
            return Some(None);
        };
        Some(Some(Self {
            seq,
            time,
            time_ms: time_ms(time),
            bytes: bytes.to_vec(),
            tops: Some(tops),
            tree: OnceCell::new(),
        }))
    }

    /// Its `kind`.
    pub fn kind(&self) -> &str {
        self.str("kind").unwrap_or_default()
    }

    /// A member, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.tree().get(name)
    }

    /// A string member.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.token(name) {
            Token::Absent => None,
            Token::Here(token) => match token
                .strip_prefix(b"\"")
                .and_then(|t| t.strip_suffix(b"\""))
            {
                Some(inner) if !inner.contains(&b'\\') => std::str::from_utf8(inner).ok(),
                // Not a string, or one whose value is not its bytes.
                Some(_) => self.get(name).and_then(Value::as_str),
                None => None,
            },
            Token::Parsed => self.get(name).and_then(Value::as_str),
        }
    }

    /// An integer member.
    pub fn u64(&self, name: &str) -> Option<u64> {
        match self.token(name) {
            Token::Absent => None,
            Token::Here(token) if !token.is_empty() && token.iter().all(u8::is_ascii_digit) => {
                // Canonical: no leading zeros; too large for u64 is not one.
                std::str::from_utf8(token).ok()?.parse().ok()
            }
            Token::Here(token)
                if matches!(token.first(), Some(b'"' | b'{' | b'[' | b't' | b'f' | b'n')) =>
            {
                None
            }
            // A negative or fractional number: as the tree reads it.
            Token::Here(_) | Token::Parsed => self.get(name).and_then(Value::as_u64),
        }
    }

    /// A member as JSON (null when absent).
    pub fn value(&self, name: &str) -> Value {
        self.get(name).cloned().unwrap_or(Value::Null)
    }

    /// Its `time` text.
    pub fn time_text(&self) -> &str {
        self.str("time").unwrap_or_default()
    }

    /// Where member `name`'s value token lies.
    fn token(&self, name: &str) -> Token<'_> {
        let Some(tops) = &self.tops else {
            return Token::Parsed;
        };
        tops.iter()
            .find(|(at, _)| &self.bytes[at.clone()] == name.as_bytes())
            .map_or(Token::Absent, |(_, token)| {
                Token::Here(&self.bytes[token.clone()])
            })
    }

    /// The members as JSON. Scanned bytes are one canonical JSON object,
    /// so this parse does not fail.
    fn tree(&self) -> &Map<String, Value> {
        self.tree
            .get_or_init(|| serde_json::from_slice(&self.bytes).unwrap_or_default())
    }
}

/// A member's value token, as [`Entry::token`] finds it.
enum Token<'a> {
    /// Not a member.
    Absent,
    /// Its bytes.
    Here(&'a [u8]),
    /// The entry was parsed up front: ask the tree.
    Parsed,
}

fn time_ms(time: UtcTime) -> i64 {
    (time.unix_seconds() * 1000.0).round() as i64
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
