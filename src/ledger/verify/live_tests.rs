//! Verifying a store the running gateway keeps committing to.

use super::*;
use crate::ledger::memstore::MemStore;
use crate::ledger::store::{CommitBatch, StoreError};
use crate::ledger::tree::Hash;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

/// A store whose first `size()` answers from before its last batch: the
/// batch commits between verification's reads of the size and of the
/// checkpoints, as on a running gateway.
struct CommitsMeanwhile {
    mem: Arc<MemStore>,
    size_before_last: Mutex<Option<u64>>,
}

impl LedgerStore for CommitsMeanwhile {
    fn size(&self) -> Result<u64, StoreError> {
        match self.size_before_last.lock().unwrap().take() {
            Some(size) => Ok(size),
            None => self.mem.size(),
        }
    }
    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.mem.commit(batch)
    }
    fn discard_above(&self, size: u64) -> Result<u64, StoreError> {
        self.mem.discard_above(size)
    }
    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.mem.entry(seq)
    }
    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        self.mem.node(level, index)
    }
    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        self.mem.checkpoint_covering(seq)
    }
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.mem.latest_checkpoint()
    }
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.mem.checkpoints()
    }
    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        self.mem.decision_seq(id)
    }
    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.mem.payload(seq)
    }
    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        self.mem.entry_signature(seq)
    }
    fn governance_seqs(&self) -> Result<Vec<u64>, StoreError> {
        self.mem.governance_seqs()
    }
    fn entries_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.mem.entries_in(from, to, f)
    }
    fn leaf_nodes_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[Hash]),
    ) -> Result<(), StoreError> {
        self.mem.leaf_nodes_in(from, to, f)
    }
    fn signatures_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8; 64]),
    ) -> Result<(), StoreError> {
        self.mem.signatures_in(from, to, f)
    }
    fn decisions_of_second(
        &self,
        second: [u8; 4],
        f: &mut dyn FnMut(&[u8; 16], u64),
    ) -> Result<(), StoreError> {
        self.mem.decisions_of_second(second, f)
    }
}

#[tokio::test]
async fn a_batch_committed_while_verifying_starts_is_left_for_the_next_pass() {
    let written = super::tests::ledger_with([1; 32], 4).await;
    let checkpoints = written.checkpoints().unwrap();
    let before_last = checkpoints[checkpoints.len() - 2].0;
    let store = CommitsMeanwhile {
        mem: written,
        size_before_last: Mutex::new(Some(before_last)),
    };

    let verified = verify_store(&store, &super::tests::verifier([1; 32])).unwrap();
    assert_eq!(
        verified.entries, before_last,
        "the log as it was at the first read"
    );
    assert_eq!(verified.checkpoints, checkpoints.len() as u64 - 1);
}
