//! A model's `kpi_snapshot` entries over a time range, from the ledger
//! (`GET /admin/kpis/{model}/history?from=&to=`), with the
//! `risk_register_set` entries the period report checks them against: the
//! one in force at the first snapshot and any recorded after it.
//!
//! The snapshots written since the gateway started are held in memory
//! ([`crate::kpi::KpiHistory`], the latest 500 per model) and cost no
//! read. The earlier ones are not in the store's governance index (they
//! are written often and nothing replays them at start), so they are
//! found by reading the range's entries below those, newest first, with a
//! byte search that spares parsing the decisions between them. That read
//! is bounded so that a page stays within its budget whatever the ledger
//! holds: the time range becomes a seq range by binary search over the
//! entries' times, at most [`READ_BUDGET`] entries are read, and at most
//! [`MAX_SNAPSHOTS`] snapshots are answered (the latest). The answer says
//! which bound stopped the read and where (`limited_by`, `read_from_seq`).
//! The registers are found through the governance index (they are in
//! it), reading at most [`REGISTER_BUDGET`] of its entries, newest first.

use crate::kpi::Covered;
use crate::ledger::export::UtcTime;
use crate::ledger::export::select::first_at_or_after;
use crate::ledger::store::{LedgerStore, StoreError};
use memchr::memmem::Finder;
use serde_json::{Value, json};
use std::ops::ControlFlow;

/// Entries read at most below the snapshots held in memory (as many as
/// the decision search reads for a page).
pub const READ_BUDGET: u64 = 20_000;
/// Snapshots answered at most (the latest of the range).
pub const MAX_SNAPSHOTS: usize = 500;
/// Governance entries read at most to find the registers.
pub const REGISTER_BUDGET: usize = 2_000;
/// `risk_register_set` entries answered at most (the latest).
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
/// end), from `recent` (the snapshots held in memory) and `store`
/// (blocking reads: run off the async workers).
pub fn read_history(
    store: &dyn LedgerStore,
    model: &str,
    from: Option<&str>,
    to: Option<&str>,
    recent: Covered,
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
    let in_range = |entry: &Value| {
        entry["seq"]
            .as_u64()
            .is_some_and(|seq| (lo..hi).contains(&seq))
    };
    let mut held: Vec<Value> = recent.snapshots.into_iter().filter(in_range).collect();
    let mut limit = Limit::None;
    if held.len() > MAX_SNAPSHOTS {
        held.drain(..held.len() - MAX_SNAPSHOTS);
        limit = Limit::Points;
    }
    let from_memory = held.len();
    // Below the snapshots held, the ledger's entries, newest first.
    let scan_to = hi.min(recent.since.max(lo));
    let snapshot_kind = needle("kind", SNAPSHOT_KIND);
    let snapshot_model = needle("model", model);
    let mut found: Vec<Value> = Vec::new();
    let (mut end, mut read) = (scan_to, 0u64);
    while end > lo && limit == Limit::None {
        if held.len() + found.len() >= MAX_SNAPSHOTS {
            limit = Limit::Points;
            break;
        }
        if read >= READ_BUDGET {
            limit = Limit::ReadBudget;
            break;
        }
        let start = end.saturating_sub(BLOCK).max(lo);
        let mut block: Vec<Value> = Vec::new();
        store.entries_in(start, end, &mut |_, bytes| {
            if snapshot_kind.find(bytes).is_some()
                && snapshot_model.find(bytes).is_some()
                && let Ok(entry) = serde_json::from_slice::<Value>(bytes)
                && entry["kind"] == SNAPSHOT_KIND
                && entry["model"] == model
            {
                block.push(entry);
            }
            ControlFlow::Continue(())
        })?;
        read += end - start;
        end = start;
        for entry in block.into_iter().rev() {
            if held.len() + found.len() < MAX_SNAPSHOTS {
                found.push(entry);
            } else {
                limit = Limit::Points;
            }
        }
    }
    found.reverse();
    found.extend(held);
    let first = found.first().and_then(|s| s["seq"].as_u64());
    let (registers, in_force) = registers(store, first, hi)?;
    Ok(json!({
        "model": model,
        "source": "ledger",
        "from": from,
        "to": to,
        "range": { "from_seq": lo, "to_seq": hi },
        "from_memory": from_memory,
        "read": read,
        "read_from_seq": end,
        "limited_by": limit.to_json(),
        "max_snapshots": MAX_SNAPSHOTS,
        "read_budget": READ_BUDGET,
        "snapshots": found,
        "registers": registers,
        "register_in_force": in_force.to_json(),
    }))
}

/// `"name":value` as canonical bytes spell it.
fn needle(name: &str, value: &str) -> Finder<'static> {
    let text = format!("\"{name}\":{}", Value::from(value));
    Finder::new(text.as_bytes()).into_owned()
}

/// The `risk_register_set` entries below `hi` back to the one in force
/// at seq `first` (without a snapshot: the one in force at `hi`), oldest
/// first, through the governance index, reading at most
/// [`REGISTER_BUDGET`] entries and keeping at most [`MAX_REGISTERS`]; and
/// whether the one in force was found (`false`: none is recorded before,
/// or the budget ran out first).
fn registers(
    store: &dyn LedgerStore,
    first: Option<u64>,
    hi: u64,
) -> Result<(Vec<Value>, Registers), StoreError> {
    let kind = needle("kind", REGISTER_KIND);
    let seqs = store.governance_seqs()?;
    let below: Vec<u64> = seqs
        .iter()
        .rev()
        .filter(|seq| **seq < hi)
        .copied()
        .collect();
    let mut found = Vec::new();
    let mut outcome = Registers::NoneRecorded;
    for (read, seq) in below.iter().enumerate() {
        if read >= REGISTER_BUDGET {
            outcome = Registers::BudgetSpent;
            break;
        }
        let Some(bytes) = store.entry(*seq)? else {
            continue;
        };
        if kind.find(&bytes).is_none() {
            continue;
        }
        let entry: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if entry["kind"] != REGISTER_KIND {
            continue;
        }
        // Full: the in-force one (found last) takes the oldest place.
        if found.len() == MAX_REGISTERS {
            found.pop();
        }
        found.push(entry);
        if first.is_none_or(|first| *seq <= first) {
            outcome = Registers::InForceFound;
            break;
        }
    }
    found.reverse();
    Ok((found, outcome))
}

/// How the search for the register in force ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registers {
    InForceFound,
    NoneRecorded,
    BudgetSpent,
}

impl Registers {
    fn to_json(self) -> Value {
        json!(match self {
            Registers::InForceFound => "found",
            Registers::NoneRecorded => "none_recorded",
            Registers::BudgetSpent => "not_found_within_budget",
        })
    }
}

#[cfg(test)]
mod tests;
