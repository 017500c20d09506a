//! Getting the ledger committing again after a failed commit, without a
//! restart: the committer retries with backoff, each try reopening the
//! store, probing it with a write, and checking its durable tail against
//! the head of the last acknowledged batch.
//!
//! The tail decides:
//! - equal: the failed batch left nothing; resume.
//! - longer: the failed batch reached the disk although its commit
//!   reported an error. Its entries were never acknowledged and their
//!   answers were withheld, so they would claim decisions nobody received:
//!   they are discarded (logged) and their seqs reused. The store never
//!   let anyone read them.
//! - shorter: acknowledged entries are gone. History is never rewritten:
//!   the ledger stays stopped, with a critical error, until someone looks.

use super::{Head, LedgerError, SequencerConfig, load_head};
use crate::ledger::store::{LedgerStore, StoreError};
use std::time::{Duration, Instant};

/// The wait before the first retry; it doubles up to [`LAST_RETRY_DELAY`].
pub(super) const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between two retries.
pub(super) const LAST_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Why a try did not resume.
#[derive(Debug, thiserror::Error)]
pub(super) enum Stuck {
    /// The store does not work yet; try again later.
    #[error(transparent)]
    Retry(#[from] StoreError),
    /// The store lost acknowledged entries or does not match the head:
    /// trying again cannot help.
    #[error("{0}")]
    GiveUp(String),
}

/// When to try next.
pub(super) struct Backoff {
    delay: Duration,
    /// `None` once the ledger has given up.
    due: Option<Instant>,
}

impl Backoff {
    /// The first try comes [`FIRST_RETRY_DELAY`] after the failure.
    pub(super) fn new() -> Self {
        Self {
            delay: FIRST_RETRY_DELAY,
            due: Some(Instant::now() + FIRST_RETRY_DELAY),
        }
    }

    /// How long until the next try; `None`: no more tries.
    pub(super) fn wait(&self) -> Option<Duration> {
        self.due
            .map(|due| due.saturating_duration_since(Instant::now()))
    }

    /// After a try that failed: the wait doubles.
    pub(super) fn failed(&mut self) {
        self.delay = (self.delay * 2).min(LAST_RETRY_DELAY);
        self.due = Some(Instant::now() + self.delay);
    }

    /// After a try that showed retrying is useless.
    pub(super) fn give_up(&mut self) {
        self.due = None;
    }
}

/// One try at resuming on `head`, the head after the last durable batch.
pub(super) fn try_resume(
    store: &dyn LedgerStore,
    config: &SequencerConfig,
    head: &Head,
) -> Result<(), Stuck> {
    let stored = store.reopen()?;
    let durable = head.next_seq;
    if stored < durable {
        return Err(Stuck::GiveUp(format!(
            "the store holds {stored} entries but {durable} were acknowledged: \
             acknowledged entries are missing; the ledger stays stopped"
        )));
    }
    store.probe()?;
    if stored > durable {
        let removed = store.discard_above(durable)?;
        tracing::warn!(
            from_seq = durable,
            removed,
            "ledger: discarded the entries a failed commit left on disk \
             (never acknowledged, their answers withheld); their seqs are reused"
        );
    }
    let found = match load_head(store, &config.origin, &head.signer) {
        Ok(found) => found,
        Err(LedgerError::Store(err)) => return Err(Stuck::Retry(err)),
        Err(err) => return Err(Stuck::GiveUp(err.to_string())),
    };
    if found.next_seq != durable
        || found.prev_hash != head.prev_hash
        || found.frontier.root() != head.frontier.root()
    {
        return Err(Stuck::GiveUp(format!(
            "the store's tail (size {}) does not match the last acknowledged head (size {durable})",
            found.next_seq
        )));
    }
    Ok(())
}
