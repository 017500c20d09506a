//! The pinned store as a report job reads the period from it: after each
//! range read it rests (a quarter of a core at most, as the online export)
//! and, once the gateway stops, refuses further reads, so the job ends at
//! its next window of entries instead of holding the shutdown.

use crate::ledger::pace::Pace;
use crate::ledger::store::{CommitBatch, LedgerStore, Pinned, StoreError};
use crate::ledger::tree::Hash;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Time slept per unit of work (see [`Pace::new`]).
const REST_PER_BUSY: u32 = 3;

/// What [`StoppingStore`] answers once the gateway stops.
pub(super) const STOPPED: &str = "the gateway is shutting down";

/// [`Pinned`], paced and stopped (see the module docs).
pub(super) struct StoppingStore {
    inner: Arc<Pinned>,
    stop: Arc<AtomicBool>,
    pace: Mutex<Pace>,
}

impl StoppingStore {
    pub(super) fn new(inner: Arc<Pinned>, stop: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            stop,
            pace: Mutex::new(Pace::new(REST_PER_BUSY)),
        }
    }

    fn stopped(&self) -> Result<(), StoreError> {
        if self.stop.load(Ordering::Acquire) {
            return Err(StoreError::Engine(STOPPED.to_owned()));
        }
        Ok(())
    }

    fn rest(&self) {
        let stop = || self.stop.load(Ordering::Acquire);
        self.pace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .rest(&stop);
    }
}

impl LedgerStore for StoppingStore {
    fn size(&self) -> Result<u64, StoreError> {
        self.inner.size()
    }

    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.inner.commit(batch)
    }

    fn discard_above(&self, size: u64) -> Result<u64, StoreError> {
        self.inner.discard_above(size)
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.stopped()?;
        self.inner.entry(seq)
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        self.inner.node(level, index)
    }

    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        self.inner.checkpoint_covering(seq)
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.inner.latest_checkpoint()
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.inner.checkpoints()
    }

    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        self.inner.decision_seq(id)
    }

    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.payload(seq)
    }

    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        self.inner.entry_signature(seq)
    }

    fn governance_seqs(&self) -> Result<Vec<u64>, StoreError> {
        self.inner.governance_seqs()
    }

    fn entries_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.stopped()?;
        self.inner.entries_in(from, to, f)?;
        self.rest();
        self.stopped()
    }

    fn leaf_nodes_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[Hash]),
    ) -> Result<(), StoreError> {
        self.inner.leaf_nodes_in(from, to, f)
    }

    fn signatures_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8; 64]),
    ) -> Result<(), StoreError> {
        self.inner.signatures_in(from, to, f)
    }

    fn decisions_of_second(
        &self,
        second: [u8; 4],
        f: &mut dyn FnMut(&[u8; 16], u64),
    ) -> Result<(), StoreError> {
        self.inner.decisions_of_second(second, f)
    }
}
