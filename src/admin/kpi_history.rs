//! A model's `kpi_snapshot` entries over a time range, read from the
//! ledger (`GET /admin/kpis/{model}/history?from=&to=`), with the
//! `risk_register_set` entries the period report checks them against: the
//! one in force at the first snapshot and any recorded after it.
//!
//! Snapshots are not in the store's governance index (they are written
//! often and nothing replays them at start), so they are found by reading
//! the range's entries, newest first, with a byte search that spares
//! parsing the decisions between them. The read is bounded, to keep a
//! page within its budget whatever the ledger holds: the time range
//! becomes a seq range by binary search over the entries' times, at most
//! [`READ_BUDGET`] entries of it are read (the newest), and at most
//! [`MAX_SNAPSHOTS`] snapshots are kept (the latest). The answer says
//! which bound stopped the read and where (`limited_by`, `read_from_seq`).
//! The register in force before the entries read is found through the
//! governance index (registers are in it), reading at most
//! [`REGISTER_BUDGET`] of its entries.

use crate::ledger::export::UtcTime;
use crate::ledger::export::select::first_at_or_after;
use crate::ledger::store::{LedgerStore, StoreError};
use memchr::memmem::Finder;
use serde_json::{Value, json};
use std::ops::ControlFlow;

/// Entries of the range read at most (the newest).
pub const READ_BUDGET: u64 = 100_000;
/// Snapshots kept at most (the latest of the range).
pub const MAX_SNAPSHOTS: usize = 500;
/// Governance entries read at most to find the register in force.
pub const REGISTER_BUDGET: usize = 2_000;
/// `risk_register_set` entries kept at most.
const MAX_REGISTERS: usize = 100;
/// Entries per range read, newest block first.
const BLOCK: u64 = 1024;

const SNAPSHOT_KIND: &str = "kpi_snapshot";
const REGISTER_KIND: &str = crate::risk::REGISTER_SET;

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A time that does not parse (the client's).
    #[error("{0}")]
    Time(String),
    /// The store failed (ours).
    #[error("the ledger could not be read: {0}")]
    Store(#[from] StoreError),
}

/// What stopped the read before the range's first entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// Every entry of the range was read.
    None,
    /// [`MAX_SNAPSHOTS`] snapshots were found.
    Points,
    /// [`READ_BUDGET`] entries were read.
    ReadBudget,
}

impl Limit {
    fn to_json(self) -> Value {
        match self {
            Limit::None => Value::Null,
            Limit::Points => json!("points"),
            Limit::ReadBudget => json!("read_budget"),
        }
    }
}

fn time(name: &str, text: Option<&str>) -> Result<Option<UtcTime>, HistoryError> {
    text.filter(|t| !t.is_empty())
        .map(|t| UtcTime::parse(t).map_err(|err| HistoryError::Time(format!("{name}: {err}"))))
        .transpose()
}

/// The history of `model` between `from` (inclusive) and `to`
/// (exclusive), RFC 3339 (either may be absent: the log's start, its
/// end), from `store` (blocking reads: run off the async workers).
pub fn read_history(
    store: &dyn LedgerStore,
    model: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Value, HistoryError> {
    let (from_time, to_time) = (time("from", from)?, time("to", to)?);
    let size = store.size()?;
    let lo = match from_time {
        Some(at) => first_at_or_after(store, at, 0, size)?,
        None => 0,
    };
    let hi = match to_time {
        Some(at) => first_at_or_after(store, at, lo, size)?,
        None => size,
    };
    let snapshot_kind = needle("kind", SNAPSHOT_KIND);
    let snapshot_model = needle("model", model);
    let register_kind = needle("kind", REGISTER_KIND);

    // Newest first while reading.
    let (mut snapshots, mut registers) = (Vec::new(), Vec::new());
    let (mut end, mut read, mut limit) = (hi, 0u64, Limit::None);
    while end > lo {
        if snapshots.len() >= MAX_SNAPSHOTS {
            limit = Limit::Points;
            break;
        }
        if read >= READ_BUDGET {
            limit = Limit::ReadBudget;
            break;
        }
        let start = end.saturating_sub(BLOCK).max(lo);
        let mut block: Vec<(bool, Value)> = Vec::new();
        store.entries_in(start, end, &mut |_, bytes| {
            let is_snapshot =
                snapshot_kind.find(bytes).is_some() && snapshot_model.find(bytes).is_some();
            let is_register = !is_snapshot && register_kind.find(bytes).is_some();
            if (is_snapshot || is_register)
                && let Ok(entry) = serde_json::from_slice::<Value>(bytes)
            {
                block.push((is_snapshot, entry));
            }
            ControlFlow::Continue(())
        })?;
        read += end - start;
        end = start;
        for (is_snapshot, entry) in block.into_iter().rev() {
            if is_snapshot && entry["kind"] == SNAPSHOT_KIND && entry["model"] == model {
                if snapshots.len() < MAX_SNAPSHOTS {
                    snapshots.push(entry);
                } else {
                    limit = Limit::Points;
                }
            } else if !is_snapshot && entry["kind"] == REGISTER_KIND {
                registers.push(entry);
            }
        }
    }
    snapshots.reverse();
    registers.reverse();
    let first_snapshot = snapshots.first().and_then(|s| s["seq"].as_u64());
    let kept = in_force_and_after(registers, first_snapshot);
    let registers = match kept.first().and_then(|r| r["seq"].as_u64()) {
        // A register read at or before the first snapshot is in force.
        Some(seq) if first_snapshot.is_none_or(|first| seq <= first) => kept,
        _ => {
            let below = first_snapshot.unwrap_or(end).min(end);
            let mut with_earlier = register_before(store, below, &register_kind)?
                .into_iter()
                .collect::<Vec<_>>();
            with_earlier.extend(kept);
            with_earlier
        }
    };
    Ok(json!({
        "model": model,
        "source": "ledger",
        "from": from,
        "to": to,
        "range": { "from_seq": lo, "to_seq": hi },
        "read": read,
        "read_from_seq": end,
        "limited_by": limit.to_json(),
        "max_snapshots": MAX_SNAPSHOTS,
        "read_budget": READ_BUDGET,
        "snapshots": snapshots,
        "registers": registers,
    }))
}

/// `"name":value` as canonical bytes spell it.
fn needle(name: &str, value: &str) -> Finder<'static> {
    let text = format!("\"{name}\":{}", Value::from(value));
    Finder::new(text.as_bytes()).into_owned()
}

/// Of `registers` (oldest first), the last at or before `first` (the
/// first snapshot's seq) and every one after it, at most
/// [`MAX_REGISTERS`] (the latest).
fn in_force_and_after(registers: Vec<Value>, first: Option<u64>) -> Vec<Value> {
    let seq = |r: &Value| r["seq"].as_u64().unwrap_or_default();
    let start = match first {
        Some(first) => registers.iter().rposition(|r| seq(r) <= first).unwrap_or(0),
        None => registers.len().saturating_sub(1),
    };
    let mut kept: Vec<Value> = registers.into_iter().skip(start).collect();
    if kept.len() > MAX_REGISTERS {
        kept.drain(..kept.len() - MAX_REGISTERS);
    }
    kept
}

/// The last `risk_register_set` below seq `below`, through the
/// governance index, reading at most [`REGISTER_BUDGET`] entries.
fn register_before(
    store: &dyn LedgerStore,
    below: u64,
    kind: &Finder<'_>,
) -> Result<Option<Value>, StoreError> {
    let seqs = store.governance_seqs()?;
    let candidates = seqs.iter().rev().filter(|seq| **seq < below);
    for seq in candidates.take(REGISTER_BUDGET) {
        let Some(bytes) = store.entry(*seq)? else {
            continue;
        };
        if kind.find(&bytes).is_some() {
            let entry: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if entry["kind"] == REGISTER_KIND {
                return Ok(Some(entry));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
