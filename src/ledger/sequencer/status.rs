//! Whether the ledger commits. The committer sets it; the appending half
//! refuses at once while it does not (no queue of doomed work builds up);
//! readiness checks report it. It also keeps the last outage until the
//! ledger has recorded it (`ledger_outage`, written once the ledger
//! commits again).

use crate::decision::NotReady;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

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
    /// The outage not yet recorded in the ledger.
    outage: Mutex<Option<Outage>>,
}

/// A time the ledger did not commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// When the first commit failed.
    pub since: SystemTime,
    /// When the ledger committed again (`None`: not yet).
    pub until: Option<SystemTime>,
    /// Why it stopped (the first failure's error).
    pub reason: String,
}

impl LedgerStatus {
    /// Whether the ledger commits: one atomic read, for checks made per
    /// request.
    pub fn is_committing(&self) -> bool {
        !self.inner.stopped.load(Ordering::Acquire)
    }

    /// `Ok` while the ledger commits; otherwise why it does not (the
    /// store's error).
    pub fn check(&self) -> Result<(), NotReady> {
        if self.is_committing() {
            return Ok(());
        }
        Err(NotReady::LedgerNotCommitting(self.lock().clone()))
    }

    /// Marks the ledger as not committing, for `reason`. A stop before
    /// the previous outage was recorded continues it: one outage, from
    /// its first failure.
    pub(super) fn stop(&self, reason: String) {
        {
            let mut outage = self.outage();
            match outage.as_mut() {
                Some(open) => open.until = None,
                None => {
                    *outage = Some(Outage {
                        since: SystemTime::now(),
                        until: None,
                        reason: reason.clone(),
                    });
                }
            }
        }
        *self.lock() = reason;
        self.inner.stopped.store(true, Ordering::Release);
    }

    /// Marks the ledger as committing again.
    pub(super) fn resume(&self) {
        if let Some(outage) = self.outage().as_mut() {
            outage.until = Some(SystemTime::now());
        }
        self.inner.stopped.store(false, Ordering::Release);
    }

    /// The outage that has ended and is not recorded yet.
    pub fn ended_outage(&self) -> Option<Outage> {
        if !self.is_committing() {
            return None;
        }
        self.outage()
            .as_ref()
            .filter(|outage| outage.until.is_some())
            .cloned()
    }

    /// `recorded` is in the ledger: forgets it, unless the ledger stopped
    /// again meanwhile (then the outage goes on, and is recorded whole).
    pub fn outage_recorded(&self, recorded: &Outage) {
        let mut outage = self.outage();
        match outage.as_mut() {
            Some(current) if current == recorded => *outage = None,
            // Stopped again after the recorded outage ended: the rest
            // counts from that end.
            Some(current) if current.since == recorded.since => {
                current.since = recorded.until.unwrap_or(current.since);
            }
            _ => {}
        }
    }

    fn outage(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        self.inner
            .outage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        // A plain string: a panic elsewhere leaves it usable.
        self.inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_kept_from_its_first_failure_until_it_is_recorded() {
        let status = LedgerStatus::default();
        assert_eq!(status.ended_outage(), None, "no outage yet");
        status.stop("disk full".to_owned());
        assert_eq!(status.ended_outage(), None, "not ended while stopped");
        // Retries that fail again keep the first failure's time and reason.
        let since = status.outage().as_ref().unwrap().since;
        status.stop("still full".to_owned());
        status.resume();
        let ended = status.ended_outage().unwrap();
        assert_eq!((ended.since, ended.reason.as_str()), (since, "disk full"));
        assert!(ended.until.unwrap() >= since);
        status.outage_recorded(&ended);
        assert_eq!(status.ended_outage(), None, "recorded once");
    }

    #[test]
    fn a_failure_before_the_outage_is_recorded_continues_it() {
        let status = LedgerStatus::default();
        status.stop("disk full".to_owned());
        status.resume();
        let first = status.ended_outage().unwrap();
        status.stop("disk full again".to_owned());
        status.resume();
        let whole = status.ended_outage().unwrap();
        assert_eq!(
            (whole.since, whole.reason.as_str()),
            (first.since, "disk full")
        );
        // The first part was recorded while the second began: the rest
        // counts from the recorded end.
        status.stop("third".to_owned());
        status.outage_recorded(&first);
        status.resume();
        let rest = status.ended_outage().unwrap();
        assert_eq!(rest.since, first.until.unwrap());
    }
}
