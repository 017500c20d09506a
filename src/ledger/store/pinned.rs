//! A read-only view of a running store as it stood at one signed
//! checkpoint: nothing above that checkpoint's size is seen, and that
//! checkpoint is its latest. A reader of the view (an export on a running
//! gateway) sees exactly what it would see in a stopped gateway's store of
//! that size, however many batches are committed meanwhile.
//!
//! Everything at or below a committed checkpoint is immutable (entries,
//! tree nodes, signatures, index rows), so passing reads through under the
//! size is enough. Payloads are the exception: an erasure removes them,
//! online too, so a reader that reads one twice may find it gone (the
//! online export then stops rather than send a bundle that disagrees with
//! itself).

use super::{CommitBatch, LedgerStore, StoreError};
use crate::ledger::tree::Hash;
use std::ops::ControlFlow;
use std::sync::Arc;

/// The store `inner` seen at its checkpoint of `size` (see the module docs).
pub struct Pinned {
    inner: Arc<dyn LedgerStore>,
    size: u64,
    note: String,
}

impl Pinned {
    /// The store at its latest checkpoint now; `None` for an empty log.
    pub fn at_latest(inner: Arc<dyn LedgerStore>) -> Result<Option<Pinned>, StoreError> {
        Ok(inner
            .latest_checkpoint()?
            .map(|(size, note)| Pinned { inner, size, note }))
    }

    /// The size it is pinned at.
    pub fn size_pinned(&self) -> u64 {
        self.size
    }

    fn refuse() -> StoreError {
        StoreError::Engine("a pinned view of the store is read-only".to_owned())
    }
}

impl LedgerStore for Pinned {
    fn size(&self) -> Result<u64, StoreError> {
        Ok(self.size)
    }

    fn commit(&self, _batch: &CommitBatch) -> Result<(), StoreError> {
        Err(Self::refuse())
    }

    fn discard_above(&self, _size: u64) -> Result<u64, StoreError> {
        Err(Self::refuse())
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if seq >= self.size {
            return Ok(None);
        }
        self.inner.entry(seq)
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        // A node covers leaves index << level .. (index + 1) << level: one
        // that ends above the size was not finished at that checkpoint.
        let end = index
            .checked_add(1)
            .and_then(|next| next.checked_shl(u32::from(level)));
        match end {
            Some(end) if end <= self.size => self.inner.node(level, index),
            _ => Ok(None),
        }
    }

    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        if seq >= self.size {
            return Ok(None);
        }
        // The first checkpoint containing `seq` is at most the pinned one.
        self.inner.checkpoint_covering(seq)
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(Some((self.size, self.note.clone())))
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let mut all = self.inner.checkpoints()?;
        all.retain(|(size, _)| *size <= self.size);
        Ok(all)
    }

    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        Ok(self.inner.decision_seq(id)?.filter(|seq| *seq < self.size))
    }

    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if seq >= self.size {
            return Ok(None);
        }
        self.inner.payload(seq)
    }

    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        if seq >= self.size {
            return Ok(None);
        }
        self.inner.entry_signature(seq)
    }

    fn governance_seqs(&self) -> Result<Vec<u64>, StoreError> {
        let mut seqs = self.inner.governance_seqs()?;
        seqs.retain(|seq| *seq < self.size);
        Ok(seqs)
    }

    fn entries_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.inner.entries_in(from, to.min(self.size), f)
    }

    fn leaf_nodes_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[Hash]),
    ) -> Result<(), StoreError> {
        let size = self.size;
        self.inner
            .leaf_nodes_in(from, to.min(size), &mut |leaf, nodes| {
                // Only the nodes finished within the pinned size.
                let kept = nodes
                    .iter()
                    .enumerate()
                    .take_while(|(level, _)| {
                        (leaf >> level)
                            .checked_add(1)
                            .and_then(|next| next.checked_shl(*level as u32))
                            .is_some_and(|end| end <= size)
                    })
                    .count();
                f(leaf, &nodes[..kept]);
            })
    }

    fn signatures_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8; 64]),
    ) -> Result<(), StoreError> {
        self.inner.signatures_in(from, to.min(self.size), f)
    }

    fn decisions_of_second(
        &self,
        second: [u8; 4],
        f: &mut dyn FnMut(&[u8; 16], u64),
    ) -> Result<(), StoreError> {
        let size = self.size;
        self.inner.decisions_of_second(second, &mut |id, seq| {
            if seq < size {
                f(id, seq);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::EntrySignatures;
    use crate::ledger::entry::EntryBody;
    use crate::ledger::memstore::MemStore;
    use crate::ledger::sequencer::{Ledger, SequencerConfig};
    use crate::ledger::store::StoreNodes;
    use crate::ledger::tree::root;

    async fn append(ledger: &Ledger, n: usize) {
        for _ in 0..n {
            ledger
                .append(EntryBody::GatewayStarted {
                    version: "test".to_owned(),
                })
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn the_view_stays_at_its_checkpoint_while_the_store_grows() {
        let store = Arc::new(MemStore::new());
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let (ledger, writer) = Ledger::open(
            store.clone(),
            SequencerConfig::for_tests("test.example/log", &key, EntrySignatures::Off, 8, 1),
        )
        .unwrap();
        append(&ledger, 5).await;
        let pinned = Pinned::at_latest(store.clone()).unwrap().unwrap();
        let root_then = root(&StoreNodes(&pinned), 5).unwrap();
        append(&ledger, 6).await;
        assert_eq!(store.size().unwrap(), 11);
        assert_eq!(pinned.size().unwrap(), 5);
        assert_eq!(pinned.latest_checkpoint().unwrap().unwrap().0, 5);
        assert_eq!(pinned.entry(5).unwrap(), None);
        assert!(pinned.entry(4).unwrap().is_some());
        assert_eq!(pinned.checkpoint_covering(5).unwrap(), None);
        assert_eq!(pinned.checkpoint_covering(4).unwrap().unwrap().0, 5);
        assert!(
            pinned
                .checkpoints()
                .unwrap()
                .iter()
                .all(|(size, _)| *size <= 5)
        );
        // (2, 1) covers leaves 4..8: not finished at size 5.
        assert_eq!(pinned.node(2, 1).unwrap(), None);
        assert!(store.node(2, 1).unwrap().is_some());
        assert_eq!(root(&StoreNodes(&pinned), 5).unwrap(), root_then);
        let mut seen = Vec::new();
        pinned
            .entries_in(0, 100, &mut |seq, _| {
                seen.push(seq);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        let mut finished = Vec::new();
        pinned
            .leaf_nodes_in(0, 100, &mut |leaf, nodes| {
                finished.push((leaf, nodes.len()))
            })
            .unwrap();
        // Leaf 3 finishes levels 0, 1, 2; leaf 4 only its own level 0.
        assert_eq!(finished, vec![(0, 1), (1, 2), (2, 1), (3, 3), (4, 1)]);
        assert!(pinned.commit(&CommitBatch::default()).is_err());
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();
    }
}
