//! The applier thread: writes the batches waiting in memory to the store
//! behind the write-ahead file and flushes it, on its tick or when many
//! wait; forgets them and deletes their segments once flushed.

use super::{APPLY_FROM_BYTES, APPLY_FROM_ENTRIES, Shared, lock};
use crate::ledger::store::StoreError;
use std::sync::PoisonError;
use std::time::Instant;

/// Fails the store closed if the applier panics: commits would otherwise
/// fill memory and then wait for an applier that is gone.
struct FailOnPanic<'a>(&'a Shared);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = lock(&self.0.state);
            state.failed = Some(super::APPLIER_GONE.to_owned());
            state.applier_gone = true;
            drop(state);
            self.0.changed.notify_all();
        }
    }
}

/// Writes waiting batches to the store behind and flushes it, on its tick
/// or when many wait, until closing.
pub(super) fn apply_loop(shared: &Shared) {
    let _fail_on_panic = FailOnPanic(shared);
    let mut last_flush = Instant::now();
    loop {
        {
            let mut state = lock(&shared.state);
            loop {
                let waiting = state.overlay.entries_above(state.applied);
                if state.failed.is_none()
                    && waiting > 0
                    && (state.closing
                        || waiting >= APPLY_FROM_ENTRIES
                        || state.overlay.bytes() >= APPLY_FROM_BYTES
                        || last_flush.elapsed() >= shared.flush_every)
                {
                    break;
                }
                if state.closing {
                    return;
                }
                let wait = shared.flush_every.saturating_sub(last_flush.elapsed());
                let wait = if waiting == 0 || wait.is_zero() {
                    shared.flush_every
                } else {
                    wait
                };
                state = shared
                    .changed
                    .wait_timeout(state, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        last_flush = Instant::now();
        if let Err(err) = apply_waiting(shared) {
            tracing::error!(error = %err, "ledger store behind the write-ahead file failed; the ledger stops acknowledging until it recovers (nothing acknowledged is lost: it is in the write-ahead file)");
            lock(&shared.state).failed = Some(err.to_string());
            shared.changed.notify_all();
        }
    }
}

/// Applies every waiting batch, flushes the store, forgets the batches and
/// deletes the segments it now holds.
pub(super) fn apply_waiting(shared: &Shared) -> Result<(), StoreError> {
    let _applying = lock(&shared.applying);
    apply_waiting_held(shared)
}

/// [`apply_waiting`], for a caller that holds `shared.applying`.
pub(super) fn apply_waiting_held(shared: &Shared) -> Result<(), StoreError> {
    let (applied, waiting) = {
        let state = lock(&shared.state);
        (state.applied, state.overlay.batches_above(state.applied))
    };
    let mut through = applied;
    for batch in &waiting {
        shared.faults.apply()?;
        shared.inner.apply(batch)?;
        through = batch.checkpoint.0;
        lock(&shared.state).applied = through;
    }
    shared.faults.flush()?;
    shared.inner.flush()?;
    lock(&shared.state).overlay.forget_through(through);
    shared.changed.notify_all();
    lock(&shared.appender).remove_below(through);
    Ok(())
}
