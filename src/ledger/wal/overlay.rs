//! The batches durable in the write-ahead file but not yet flushed to the
//! store, in seq order, and the reads served from them.

use crate::ledger::store::CommitBatch;
use crate::ledger::tree::Hash;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Batches in seq order, with their decision ids for receipt lookups.
#[derive(Default)]
pub(super) struct Overlay {
    batches: VecDeque<Arc<CommitBatch>>,
    /// Decision id to seq; a later batch's row wins, as in the store.
    ids: HashMap<[u8; 16], u64>,
    entries: usize,
    /// Entry and payload bytes held.
    bytes: usize,
}

fn bytes_of(batch: &CommitBatch) -> usize {
    batch
        .entries
        .iter()
        .chain(&batch.payloads)
        .map(|(_, bytes)| bytes.len())
        .sum()
}

impl Overlay {
    pub(super) fn push(&mut self, batch: Arc<CommitBatch>) {
        self.entries += batch.entries.len();
        self.bytes += bytes_of(&batch);
        self.ids.extend(batch.decisions.iter().copied());
        self.batches.push_back(batch);
    }

    /// Entries held.
    pub(super) fn entries(&self) -> usize {
        self.entries
    }

    /// Entry and payload bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held at or above seq `applied`.
    pub(super) fn entries_above(&self, applied: u64) -> usize {
        self.batches
            .iter()
            .rev()
            .take_while(|b| b.checkpoint.0 > applied)
            .map(|b| b.entries.len())
            .sum()
    }

    /// The batches that end above `size`, in order.
    pub(super) fn batches_above(&self, size: u64) -> Vec<Arc<CommitBatch>> {
        self.batches
            .iter()
            .filter(|b| b.checkpoint.0 > size)
            .cloned()
            .collect()
    }

    pub(super) fn batches(&self) -> Vec<Arc<CommitBatch>> {
        self.batches.iter().cloned().collect()
    }

    pub(super) fn last(&self) -> Option<Arc<CommitBatch>> {
        self.batches.back().cloned()
    }

    /// Drops the batches that end at or below `size` (the store has them).
    pub(super) fn forget_through(&mut self, size: u64) {
        while let Some(batch) = self.batches.front() {
            if batch.checkpoint.0 > size {
                break;
            }
            for (id, seq) in &batch.decisions {
                if self.ids.get(id) == Some(seq) {
                    self.ids.remove(id);
                }
            }
            self.entries -= batch.entries.len();
            self.bytes -= bytes_of(batch);
            self.batches.pop_front();
        }
    }

    /// The batch holding entry `seq`.
    pub(super) fn holding(&self, seq: u64) -> Option<Arc<CommitBatch>> {
        let after = self.batches.partition_point(|b| b.first_seq() <= seq);
        let batch = self.batches.get(after.checked_sub(1)?)?;
        (seq < batch.checkpoint.0).then(|| batch.clone())
    }

    pub(super) fn decision(&self, id: &[u8; 16]) -> Option<u64> {
        self.ids.get(id).copied()
    }

    /// The seqs of the decisions held that carry `subject`, ascending.
    pub(super) fn subject_seqs(&self, subject: &[u8; 32]) -> Vec<u64> {
        self.batches
            .iter()
            .flat_map(|batch| batch.subjects.iter())
            .filter(|(hash, _)| hash == subject)
            .map(|(_, seq)| *seq)
            .collect()
    }
}

pub(super) fn entry(batch: &CommitBatch, seq: u64) -> Option<&[u8]> {
    let index = usize::try_from(seq.checked_sub(batch.first_seq())?).ok()?;
    batch.entries.get(index).map(|(_, bytes)| bytes.as_slice())
}

pub(super) fn node(batch: &CommitBatch, level: u8, index: u64) -> Option<Hash> {
    batch
        .nodes
        .iter()
        .find(|(l, i, _)| *l == level && *i == index)
        .map(|(_, _, hash)| *hash)
}

pub(super) fn payload(batch: &CommitBatch, seq: u64) -> Option<&[u8]> {
    batch
        .payloads
        .iter()
        .find(|(s, _)| *s == seq)
        .map(|(_, bytes)| bytes.as_slice())
        .filter(|bytes| !bytes.is_empty())
}

pub(super) fn signature(batch: &CommitBatch, seq: u64) -> Option<[u8; 64]> {
    let index = usize::try_from(seq.checked_sub(batch.first_seq())?).ok()?;
    batch.signatures.get(index).copied()
}

/// Calls `f` for each leaf of `from..to` in `batch`, with the nodes that
/// leaf finished, level 0 first (leaf `i` finishes levels
/// `0..=trailing_zeros(i + 1)`; the batch lists them leaf by leaf).
pub(super) fn leaf_nodes(batch: &CommitBatch, from: u64, to: u64, f: &mut dyn FnMut(u64, &[Hash])) {
    let mut at = 0;
    for (leaf, _) in &batch.entries {
        let count = (leaf + 1).trailing_zeros() as usize + 1;
        let end = (at + count).min(batch.nodes.len());
        if (from..to).contains(leaf) {
            let hashes: Vec<Hash> = batch.nodes[at..end].iter().map(|(_, _, h)| *h).collect();
            f(*leaf, &hashes);
        }
        at = end;
    }
}
