//! Erasing a payload behind the write-ahead file while the gateway runs.
//!
//! The payload may be in three places: the batch in memory (the overlay),
//! the store behind, and the segment file holding the batch's record. So:
//! 1. every waiting batch is applied to the store behind and flushed, and
//!    the overlay forgets them: reads now come from the store, and nothing
//!    writes those batches again (a reopen writes only what the overlay
//!    holds, a start's replay only what the store lacks);
//! 2. the store behind erases the payload, durably;
//! 3. the segment holding the record is retired: if it is the current one
//!    the appender starts the next segment at once, then the store is
//!    flushed past it and it is deleted (as every segment below the
//!    store's flush is).
//!
//! All of it holds `applying`, so the applier and a reopen wait; commits
//! go on (only starting the next segment holds the appender briefly).

use super::{Shared, applier, lock};
use crate::ledger::store::StoreError;

/// Tries to delete the segment holding the payload this many times; a
/// commit racing the roll can leave its batch out of the first flush.
const RETIRE_ATTEMPTS: usize = 3;

/// Erases the payloads of entries `seqs` (of a log of `size` entries);
/// see the module.
pub(super) fn erase(shared: &Shared, seqs: &[u64], size: u64) -> Result<Vec<bool>, StoreError> {
    let durable: Vec<u64> = seqs.iter().copied().filter(|seq| *seq < size).collect();
    if durable.is_empty() {
        return Ok(vec![false; seqs.len()]);
    }
    let _applying = lock(&shared.applying);
    if let Some(reason) = &lock(&shared.state).failed {
        return Err(StoreError::Engine(format!(
            "the store behind the write-ahead file failed: {reason}"
        )));
    }
    apply(shared)?;
    let erased = shared.inner.erase_payloads(seqs)?;
    let holding = |shared: &Shared| {
        let appender = lock(&shared.appender);
        let mut held = durable.iter().filter_map(|seq| appender.holding(*seq));
        held.next()
            .map(|current| current || held.any(|current| current))
    };
    for _ in 0..RETIRE_ATTEMPTS {
        match holding(shared) {
            None => return Ok(erased),
            Some(true) => lock(&shared.appender).roll()?,
            Some(false) => {}
        }
        apply(shared)?;
    }
    if holding(shared).is_some() {
        // Not current any more, so the applier deletes it with its next flush.
        tracing::warn!("erased payloads: their write-ahead segment is deleted with the next flush");
    }
    Ok(erased)
}

/// Applies and flushes what waits; a failure stops commits, as the
/// applier's own would.
fn apply(shared: &Shared) -> Result<(), StoreError> {
    applier::apply_waiting_held(shared).inspect_err(|err| {
        lock(&shared.state).failed = Some(err.to_string());
        shared.changed.notify_all();
    })
}
