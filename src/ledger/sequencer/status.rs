//! Whether the ledger commits. The committer sets it; the appending half
//! refuses at once while it does not (no queue of doomed work builds up);
//! readiness checks report it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A shared view of the writer's state; cheap to clone.
#[derive(Clone, Default)]
pub struct LedgerStatus {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Read on every append, so it is an atomic, not the lock.
    stopped: AtomicBool,
    /// Why, while stopped.
    reason: Mutex<String>,
}

impl LedgerStatus {
    /// Whether the ledger commits: one atomic read, for checks made per
    /// request.
    pub fn is_committing(&self) -> bool {
        !self.inner.stopped.load(Ordering::Acquire)
    }

    /// `Ok` while the ledger commits; otherwise why it does not, as
    /// `ledger not committing: <the store's error>`.
    pub fn check(&self) -> Result<(), String> {
        if self.is_committing() {
            return Ok(());
        }
        Err(format!("ledger not committing: {}", self.lock()))
    }

    /// Marks the ledger as not committing, for `reason`.
    pub(super) fn stop(&self, reason: String) {
        *self.lock() = reason;
        self.inner.stopped.store(true, Ordering::Release);
    }

    /// Marks the ledger as committing again.
    pub(super) fn resume(&self) {
        self.inner.stopped.store(false, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        // A plain string: a panic elsewhere leaves it usable.
        self.inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
