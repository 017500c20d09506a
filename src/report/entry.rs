//! One entry as the report's sections read it: its seq, time and members.

use super::ReportError;
use crate::ledger::export::UtcTime;
use serde_json::{Map, Value};

/// A parsed entry of the period.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its seq.
    pub seq: u64,
    /// Its `time`.
    pub time: UtcTime,
    /// Its `time` in milliseconds since 1970 (entries carry milliseconds).
    pub time_ms: i64,
    members: Map<String, Value>,
}

impl Entry {
    /// Parses entry `seq`'s canonical bytes.
    pub fn parse(seq: u64, bytes: &[u8]) -> Result<Self, ReportError> {
        let bad = |why: &str| ReportError::Entry {
            seq,
            why: why.to_owned(),
        };
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
            time_ms: (time.unix_seconds() * 1000.0).round() as i64,
            members,
        })
    }

    /// Its `kind`.
    pub fn kind(&self) -> &str {
        self.str("kind").unwrap_or_default()
    }

    /// A member, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members.get(name)
    }

    /// A string member.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.members.get(name).and_then(Value::as_str)
    }

    /// An integer member.
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.members.get(name).and_then(Value::as_u64)
    }

    /// A member as JSON (null when absent).
    pub fn value(&self, name: &str) -> Value {
        self.members.get(name).cloned().unwrap_or(Value::Null)
    }

    /// Its `time` text.
    pub fn time_text(&self) -> &str {
        self.str("time").unwrap_or_default()
    }
}
