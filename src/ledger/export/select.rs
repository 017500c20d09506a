//! What a filtered export selects: a seq range found from UTC times, and
//! the entries of one model (its decisions, the ends of their streams and
//! its model-version entries).
//!
//! Times locate seqs, they do not filter entries: the range is
//! `first..last` where `first` is the first seq whose entry's `time` is at
//! or after `since` and `last` the first seq whose `time` is at or after
//! `until`, both found by binary search over seqs. Entries are sequenced
//! in time order, so with a clock that never steps back this is exactly
//! the entries with `since <= time < until`. If the clock stepped back,
//! binary search still returns a seq where the time crosses the bound
//! (`time(seq - 1) < bound <= time(seq)`), and every entry between the two
//! seqs is exported whatever its own time: a time range never has holes.

use crate::ledger::canonical::to_canonical;
use crate::ledger::store::{LedgerStore, StoreError};
use serde_json::Value;

/// A UTC instant, nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcTime(i128);

/// Why a time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 time (like 2026-11-27T11:35:05Z or 2026-11-27T12:35:05.5+01:00)")]
pub struct TimeError(String);

impl UtcTime {
    /// The instant `ms` milliseconds after 1970-01-01T00:00:00Z.
    pub fn from_unix_ms(ms: u64) -> Self {
        UtcTime(i128::from(ms) * 1_000_000)
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn unix_seconds(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Parses RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`
    /// (`T` and `Z` in either case, as RFC 3339 section 5.6 allows).
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        Self::parse_parts(text).ok_or_else(|| TimeError(text.to_owned()))
    }

    fn parse_parts(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let digits = |range: std::ops::Range<usize>| -> Option<i64> {
            let part = b.get(range)?;
            part.iter().all(u8::is_ascii_digit).then(|| {
                part.iter()
                    .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
            })
        };
        let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
        if separators.iter().any(|(i, c)| b.get(*i) != Some(c))
            || !matches!(b.get(10), Some(b'T' | b't'))
        {
            return None;
        }
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        // A leap second (:60) is accepted and counted as the next second's start.
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut rest = &text[19..];
        let mut nanos = 0i128;
        if let Some(frac) = rest.strip_prefix('.') {
            let len = frac.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return None;
            }
            // Digits beyond nanoseconds are dropped (truncated toward the past).
            for (i, digit) in frac.bytes().take(len).enumerate() {
                if i < 9 {
                    nanos += i128::from(digit - b'0') * 10i128.pow(8 - i as u32);
                }
            }
            rest = &frac[len..];
        }
        let offset_minutes = match rest.as_bytes() {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let field = |a: &u8, b: &u8| {
                    (a.is_ascii_digit() && b.is_ascii_digit())
                        .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
                };
                let (hours, minutes) = (field(h1, h2)?, field(m1, m2)?);
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let minutes = hours * 60 + minutes;
                if *sign == b'+' { minutes } else { -minutes }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
        Some(Self(i128::from(seconds) * 1_000_000_000 + nanos))
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `time` of entry `seq`.
fn entry_time(store: &dyn LedgerStore, seq: u64) -> Result<UtcTime, StoreError> {
    let bytes = store
        .entry(seq)?
        .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} missing")))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| StoreError::Corrupt(format!("entry {seq} is not JSON")))?;
    value["time"]
        .as_str()
        .and_then(|text| UtcTime::parse(text).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} has no valid time")))
}

/// The first seq in `lo..hi` whose entry's time is at or after `bound`
/// (`hi` if none), by binary search: O(log n) entry reads.
pub(crate) fn first_at_or_after(
    store: &dyn LedgerStore,
    bound: UtcTime,
    mut lo: u64,
    mut hi: u64,
) -> Result<u64, StoreError> {
    // INVARIANT: time(lo - 1) < bound (or lo is the start) and
    // time(hi) >= bound (or hi is the end): a crossing lies in lo..=hi.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if entry_time(store, mid)? < bound {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// What a model filter selects an entry as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selected {
    /// A `decision` of the model: selected inside the seq range.
    Decision,
    /// The `stream_ended` of a streamed decision of the model (it repeats
    /// the decision's `model`): selected inside the seq range, like a
    /// decision, so a model's bundle holds how its streams ended.
    StreamEnd,
    /// A model-version entry (`version_*`) of the model: selected wherever
    /// it is in the log, so a decision's `approval_seq` can be followed.
    Version,
}

/// Picks the entries of one model out of canonical entry bytes: its
/// decisions, their `stream_ended` entries and its model-version entries.
pub(crate) struct ModelMatch {
    model: String,
    /// `"model":"<name>"` as the canonical bytes spell it: a cheap
    /// pre-filter so only candidate entries are parsed.
    needle: Vec<u8>,
}

impl ModelMatch {
    pub(crate) fn new(model: &str) -> Self {
        let mut needle = b"\"model\":".to_vec();
        // INVARIANT: a string always has a canonical form.
        needle.extend(to_canonical(&Value::String(model.to_owned())).unwrap_or_default());
        Self {
            model: model.to_owned(),
            needle,
        }
    }

    /// Whether `entry` is a decision, a `stream_ended` or a model-version
    /// entry of this model, and which.
    pub(crate) fn selects(&self, entry: &[u8]) -> Option<Selected> {
        if !entry.windows(self.needle.len()).any(|w| w == self.needle) {
            return None;
        }
        let value = serde_json::from_slice::<Value>(entry).ok()?;
        if value["model"] != self.model.as_str() {
            return None;
        }
        match value["kind"].as_str()? {
            "decision" => Some(Selected::Decision),
            "stream_ended" => Some(Selected::StreamEnd),
            kind if kind.starts_with("version_") => Some(Selected::Version),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_to_the_same_instant_in_any_offset() {
        let utc = UtcTime::parse("2026-11-27T11:35:05.641Z").unwrap();
        assert_eq!(
            UtcTime::parse("2026-11-27t12:35:05.641+01:00").unwrap(),
            utc
        );
        assert_eq!(
            UtcTime::parse("2026-11-27T06:05:05.641000-05:30").unwrap(),
            utc
        );
        assert_eq!(
            UtcTime::parse("1970-01-01T00:00:00Z").unwrap(),
            UtcTime(0),
            "the epoch"
        );
        assert_eq!(
            UtcTime::parse("2026-11-27T11:35:05.641Z").unwrap().0,
            1_795_779_305_641_000_000,
            "checked with `date -u -d 2026-11-27T11:35:05Z +%s`"
        );
        assert!(UtcTime::parse("2024-02-29T00:00:00Z").is_ok());
        for bad in [
            "2026-11-27",
            "2026-11-27T11:35:05",
            "2026-11-27 11:35:05Z",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T11:35:05.Z",
            "2026-11-27T11:35:05+0100",
            "2026-11-27T11:35:05Zjunk",
            "+026-11-27T11:35:05Z",
        ] {
            assert!(UtcTime::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_model_match_needs_the_exact_name_in_a_decision_stream_end_or_version_entry() {
        let matcher = ModelMatch::new("scorer");
        let entry = |kind: &str, model: &str| {
            format!(r#"{{"kind":"{kind}","model":"{model}","seq":1}}"#).into_bytes()
        };
        assert_eq!(
            matcher.selects(&entry("decision", "scorer")),
            Some(Selected::Decision)
        );
        assert_eq!(
            matcher.selects(&entry("stream_ended", "scorer")),
            Some(Selected::StreamEnd)
        );
        assert_eq!(matcher.selects(&entry("stream_ended", "other")), None);
        assert_eq!(
            matcher.selects(&entry("version_approved", "scorer")),
            Some(Selected::Version)
        );
        assert_eq!(
            matcher.selects(&entry("version_revoked", "scorer")),
            Some(Selected::Version)
        );
        assert_eq!(matcher.selects(&entry("decision", "scorer-two")), None);
        assert_eq!(matcher.selects(&entry("version_approved", "scor")), None);
        assert_eq!(matcher.selects(&entry("gateway_started", "scorer")), None);
        assert_eq!(matcher.selects(&entry("versioned", "scorer")), None);
        assert_eq!(
            matcher.selects(br#"{"kind":"decision","model":null}"#),
            None
        );
    }
}
