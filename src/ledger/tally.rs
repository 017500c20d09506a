//! The decisions of the last day by outcome, per minute and per
//! configured model, held in memory so that `GET /admin/decisions/summary`
//! and the console's overview answer without reading the ledger (a day
//! may hold millions of decisions). Bounded: a ring of [`MINUTES`] minutes,
//! each with one row of counts per configured model plus one for every
//! other model name (callers choose model names; they never grow the
//! tally). The writer adds a batch's decisions once it is durable; at
//! start [`prime`] counts the entries the ledger already holds from the
//! last day (a blocking scan, capped at [`PRIME_CAP`] entries).

use crate::decision::Outcome;
use crate::ledger::export::UtcTime;
use crate::ledger::export::select::first_at_or_after;
use crate::ledger::store::{LedgerStore, StoreError};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Minutes kept: one day.
pub const MINUTES: u64 = 1440;
/// Entries [`prime`] reads at most (newest first); beyond, the tally says
/// from when it counts.
pub const PRIME_CAP: u64 = 2_000_000;
/// Entries read per range read while priming.
const BLOCK: u64 = 4096;

/// Every outcome a decision entry names, in the order counts are kept.
const OUTCOMES: [Outcome; 7] = [
    Outcome::Served,
    Outcome::Blocked,
    Outcome::Denied,
    Outcome::Held,
    Outcome::Released,
    Outcome::Error,
    Outcome::Streaming,
];

type Counts = [u64; OUTCOMES.len()];

/// Where one decision is counted: its model's row and its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tallied {
    row: u16,
    outcome: u8,
}

/// One minute of counts.
struct Minute {
    /// Minutes since 1970 this slot holds.
    minute: u64,
    /// One row per configured model, then the row of other names.
    rows: Vec<Counts>,
}

struct Inner {
    /// `MINUTES` slots, slot `minute % MINUTES`.
    ring: Vec<Minute>,
    coverage: Coverage,
}

/// How much of the last day the counts cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// The ledger's earlier entries are being counted; what was decided
    /// since the tally started is counted already.
    Priming,
    /// Counted from this Unix time (milliseconds) on: the ledger's first
    /// entry is younger than a day, or priming stopped at its cap.
    Since {
        /// Unix milliseconds.
        unix_ms: u64,
    },
    /// The whole last day.
    Day,
}

/// The tally; share it behind an `Arc`.
pub struct OutcomeTally {
    /// Configured model names, in row order.
    names: Vec<String>,
    rows: HashMap<String, u16>,
    /// When it started counting (Unix ms): the writer counts from then.
    started_ms: u64,
    inner: Mutex<Inner>,
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl OutcomeTally {
    /// An empty tally for the configured `models` (at most 65 535 rows);
    /// priming has not run: it counts from `now`.
    pub fn new(models: impl IntoIterator<Item = String>, now: SystemTime) -> Self {
        let names: Vec<String> = models.into_iter().take(usize::from(u16::MAX)).collect();
        let rows = names
            .iter()
            .enumerate()
            .map(|(row, name)| (name.clone(), row as u16))
            .collect();
        Self {
            names,
            rows,
            started_ms: unix_ms(now),
            inner: Mutex::new(Inner {
                ring: Vec::new(),
                coverage: Coverage::Priming,
            }),
        }
    }

    /// Where a decision of `model` with `outcome` is counted.
    pub fn key(&self, model: Option<&str>, outcome: Outcome) -> Tallied {
        let row = model
            .and_then(|model| self.rows.get(model).copied())
            .unwrap_or(self.names.len() as u16);
        let outcome = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0) as u8;
        Tallied { row, outcome }
    }

    /// Counts decisions recorded at `time` (a committed batch's).
    pub fn add(&self, time: SystemTime, decided: &[Tallied]) {
        if decided.is_empty() {
            return;
        }
        let now = unix_secs(SystemTime::now());
        let mut inner = self.lock();
        for key in decided {
            self.add_at(&mut inner, now, unix_secs(time), *key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one decision recorded at `at` (Unix seconds) when `now` is
    /// the time: nothing older than the ring, nothing from the future.
    fn add_at(&self, inner: &mut Inner, now: u64, at: u64, key: Tallied) {
        let (now, minute) = (now / 60, at / 60);
        if minute > now || minute + MINUTES <= now {
            return;
        }
        if inner.ring.is_empty() {
            inner.ring = (0..MINUTES)
                .map(|_| Minute {
                    minute: 0,
                    rows: Vec::new(),
                })
                .collect();
        }
        let slot = &mut inner.ring[(minute % MINUTES) as usize];
        if slot.minute != minute {
            if slot.minute > minute {
                // A newer minute holds the slot: this one is gone.
                return;
            }
            slot.minute = minute;
            slot.rows = vec![[0; OUTCOMES.len()]; self.names.len() + 1];
        }
        if let Some(row) = slot.rows.get_mut(usize::from(key.row)) {
            row[usize::from(key.outcome)] += 1;
        }
    }

    /// The counts of the last hour and the last day at `now` (to the
    /// minute: the current minute and the 59, resp. 1439, before it), with
    /// what they cover.
    pub fn summary(&self, now: SystemTime) -> Value {
        let now_secs = unix_secs(now);
        let inner = self.lock();
        let window = |minutes: u64| {
            let newest = now_secs / 60;
            let mut rows = vec![[0u64; OUTCOMES.len()]; self.names.len() + 1];
            for slot in inner
                .ring
                .iter()
                .filter(|s| s.minute <= newest && s.minute + minutes > newest)
            {
                for (total, counted) in rows.iter_mut().zip(&slot.rows) {
                    for (t, c) in total.iter_mut().zip(counted) {
                        *t += c;
                    }
                }
            }
            let mut all = [0u64; OUTCOMES.len()];
            for row in &rows {
                for (a, c) in all.iter_mut().zip(row) {
                    *a += c;
                }
            }
            let mut models = Map::new();
            for (name, row) in self.names.iter().zip(&rows) {
                models.insert(name.clone(), outcomes_json(row));
            }
            let other = rows.last().copied().unwrap_or_default();
            json!({
                "total": all.iter().sum::<u64>(),
                "outcomes": outcomes_json(&all),
                "models": models,
                "other_models": outcomes_json(&other),
            })
        };
        let (priming, counted_since) = match inner.coverage {
            Coverage::Priming => (true, Some(self.started_ms)),
            Coverage::Since { unix_ms } => (false, Some(unix_ms)),
            Coverage::Day => (false, None),
        };
        json!({
            "hour": window(60),
            "day": window(MINUTES),
            "priming": priming,
            "counted_since": counted_since.map(|ms| crate::ledger::entry::rfc3339_millis(
                UNIX_EPOCH + std::time::Duration::from_millis(ms))),
        })
    }

    /// What the counts cover.
    pub fn coverage(&self) -> Coverage {
        self.lock().coverage
    }

    fn set_coverage(&self, coverage: Coverage) {
        self.lock().coverage = coverage;
    }
}

fn outcomes_json(counts: &Counts) -> Value {
    let mut out = Map::new();
    for (outcome, count) in OUTCOMES.iter().zip(counts) {
        out.insert(outcome.as_str().to_owned(), json!(count));
    }
    Value::Object(out)
}

/// The time, model and outcome of a decision entry (`None` for other kinds).
fn decided(bytes: &[u8]) -> Option<(u64, Option<String>, Outcome)> {
    // Most entries of a busy ledger are decisions; the byte search spares
    // parsing the others.
    memchr::memmem::find(bytes, b"\"kind\":\"decision\"")?;
    let entry: Value = serde_json::from_slice(bytes).ok()?;
    if entry["kind"] != "decision" {
        return None;
    }
    let time = UtcTime::parse(entry["time"].as_str()?).ok()?;
    let outcome = OUTCOMES
        .into_iter()
        .find(|o| entry["outcome"].as_str() == Some(o.as_str()))?;
    let unix_ms = (time.unix_seconds() * 1000.0).round().max(0.0) as u64;
    Some((unix_ms, entry["model"].as_str().map(str::to_owned), outcome))
}

fn time_of(store: &dyn LedgerStore, seq: u64) -> Result<Option<u64>, StoreError> {
    let Some(bytes) = store.entry(seq)? else {
        return Ok(None);
    };
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| StoreError::Corrupt(format!("entry {seq} is not JSON")))?;
    Ok(value["time"]
        .as_str()
        .and_then(|t| UtcTime::parse(t).ok())
        .map(|t| (t.unix_seconds() * 1000.0).round().max(0.0) as u64))
}

/// Counts the decisions among entries `..end` recorded in the day before
/// `now` (the entries the writer will never add: `end` is the ledger's
/// size when the tally started), newest first, at most `cap` entries;
/// stops early when `stop` is set. Blocking reads: run it off the async
/// workers.
pub fn prime(
    tally: &OutcomeTally,
    store: &dyn LedgerStore,
    end: u64,
    now: SystemTime,
    cap: u64,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    let now_secs = unix_secs(now);
    let day_ago = UtcTime::from_unix_ms(now_secs.saturating_sub(MINUTES * 60) * 1000);
    let lo = first_at_or_after(store, day_ago, 0, end)?;
    let floor = end.saturating_sub(cap).max(lo);
    let mut at = end;
    while at > floor {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let start = at.saturating_sub(BLOCK).max(floor);
        let mut found = Vec::new();
        store.entries_in(start, at, &mut |_, bytes| {
            if let Some((unix_ms, model, outcome)) = decided(bytes) {
                found.push((unix_ms / 1000, tally.key(model.as_deref(), outcome)));
            }
            ControlFlow::Continue(())
        })?;
        let mut inner = tally.lock();
        for (secs, key) in found {
            tally.add_at(&mut inner, now_secs, secs, key);
        }
        drop(inner);
        at = start;
    }
    // Capped, or the ledger began within the day: say from when (an
    // empty ledger: from when the tally started).
    let coverage = if floor > lo || lo == 0 {
        match time_of(store, floor)? {
            Some(unix_ms) if floor < end => Coverage::Since { unix_ms },
            _ => Coverage::Since {
                unix_ms: tally.started_ms,
            },
        }
    } else {
        Coverage::Day
    };
    tally.set_coverage(coverage);
    Ok(())
}

#[cfg(test)]
#[path = "tally_tests.rs"]
mod tests;
