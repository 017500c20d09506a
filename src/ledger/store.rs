//! Storage of the ledger behind [`LedgerStore`], and its sled
//! implementation ([`SledStore`], the only code that names sled);
//! [`Pinned`] shows a running store as it stood at one checkpoint.

mod packing;
mod pinned;
mod sled_store;

pub use pinned::Pinned;
pub use sled_store::SledStore;

use super::tree::{Hash, NodeSource};
use std::ops::ControlFlow;
use std::path::PathBuf;

/// Storage failures; the ledger fails closed on any of them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine reported an error.
    #[error("store: {0}")]
    Engine(String),
    /// Syncing to disk failed.
    #[error("fsync of {path}: {source}")]
    Sync {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Stored data is not what this code writes.
    #[error("corrupt store at {0}")]
    Corrupt(String),
    /// Another process (a running gateway) holds the store's lock.
    #[error(
        "the ledger at {} is in use by a running gateway (locked); stop it first, \
         or use the running gateway's admin API",
        path.display()
    )]
    Locked {
        /// The store's directory.
        path: PathBuf,
    },
}

/// Everything one group commit writes.
#[derive(Debug, Default, Clone)]
pub struct CommitBatch {
    /// `(seq, canonical bytes)`, consecutive.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Complete-subtree nodes finished by these entries.
    pub nodes: Vec<(u8, u64, Hash)>,
    /// The checkpoint that covers them: `(tree size, signed note)`.
    pub checkpoint: (u64, String),
    /// `(decision id, seq)` index rows.
    pub decisions: Vec<([u8; 16], u64)>,
    /// `(seq, payload bytes)`: salts and captures, erasable.
    pub payloads: Vec<(u64, Vec<u8>)>,
    /// One per-entry signature per entry, in order, or none.
    pub signatures: Vec<[u8; 64]>,
    /// Seqs of the entries that are governance events, ascending, so the
    /// registry can replay them at start without reading the whole log.
    pub governance: Vec<u64>,
    /// `(subject hash, seq)` index rows: the decisions that carry a
    /// `subject` member, so a data subject's decisions are found without
    /// reading the log.
    pub subjects: Vec<([u8; 32], u64)>,
}

impl CommitBatch {
    /// The seq of its first entry; for a batch without entries, where the
    /// log stands after it (its checkpoint's size).
    pub fn first_seq(&self) -> u64 {
        self.entries
            .first()
            .map_or(self.checkpoint.0, |(seq, _)| *seq)
    }
}

/// What the ledger needs from a storage engine.
///
/// Contract: `commit` MUST NOT return `Ok` before every part of the batch
/// is on stable storage. After a crash, a batch is either wholly there
/// (its checkpoint is the commit mark) or its parts are not visible: the
/// store discards what an interrupted commit left above the latest
/// checkpoint when it opens.
///
/// After a failed `commit`, the writer calls `reopen`, `probe` and, where
/// the failed batch reached the disk after all, `discard_above`, until
/// the store works again; every other holder of the store keeps using the
/// same handle throughout (its reads may fail meanwhile).
pub trait LedgerStore: Send + Sync + 'static {
    /// Number of committed entries: the size of the latest checkpoint.
    fn size(&self) -> Result<u64, StoreError>;
    /// Bytes the store takes on disk, for a store that has a disk.
    fn disk_bytes(&self) -> Option<u64> {
        None
    }
    /// Writes a batch durably.
    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError>;
    /// Why the store cannot take the next commit, when work in the
    /// background found out before any commit did (the write-ahead
    /// file's store behind failing); `None` otherwise. The idle committer
    /// asks once a second.
    fn failure(&self) -> Option<String> {
        None
    }
    /// [`LedgerStore::commit`] of a batch the caller shares: a store that
    /// keeps batches in memory (the write-ahead file) keeps this one
    /// instead of a copy.
    fn commit_shared(&self, batch: &std::sync::Arc<CommitBatch>) -> Result<(), StoreError> {
        self.commit(batch)
    }
    /// Writes a batch that is already durable elsewhere (the write-ahead
    /// file): readable at once, durable here after the next `flush`.
    fn apply(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.commit(batch)
    }
    /// Makes every batch applied so far durable.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Bytes of a torn final write-ahead record cut when the store opened.
    fn torn_tail_bytes(&self) -> u64 {
        0
    }
    /// Starts the engine afresh after a failure (an engine may keep a
    /// failed batch in memory, or refuse everything after one I/O error)
    /// and returns the size of the latest checkpoint it finds on stable
    /// storage. Reads MUST NOT show more than before: what lies above is
    /// for the writer to keep or discard.
    fn reopen(&self) -> Result<u64, StoreError> {
        self.size()
    }
    /// Writes and syncs something that changes no ledger content, to see
    /// whether the store can commit again.
    fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Removes, durably, every entry above `size` with all it brought
    /// (payloads, tree nodes, signatures, index rows, checkpoints), so the
    /// seqs can be written again; returns how many entries it removed.
    /// `size` MUST be the size of a stored checkpoint (or 0). Only for
    /// entries a commit that reported failure left on disk: they were
    /// never acknowledged.
    fn discard_above(&self, size: u64) -> Result<u64, StoreError>;
    /// The canonical bytes of entry `seq`.
    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// A complete-subtree hash.
    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError>;
    /// The first checkpoint whose tree contains `seq`: `(size, note)`.
    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError>;
    /// The latest checkpoint.
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError>;
    /// Every checkpoint, by size.
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError>;
    /// The seq of a decision.
    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError>;
    /// The payload of entry `seq`, unless erased.
    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// The per-entry signature of entry `seq`, if entries were signed then.
    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError>;
    /// Seqs of every governance entry committed, ascending.
    fn governance_seqs(&self) -> Result<Vec<u64>, StoreError>;
    /// Seqs of the decisions whose `subject` member is `subject` (64 hex
    /// digits), ascending. The default reads the whole log; stores with a
    /// subject index answer from it.
    fn subject_seqs(&self, subject: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
        scan_subject_seqs(self, subject)
    }
    /// Removes the payloads of entries `seqs` (an erasure) while the
    /// store is in use; durable on return, and no later write brings them
    /// back. For each seq, whether there was a payload to remove.
    fn erase_payloads(&self, seqs: &[u64]) -> Result<Vec<bool>, StoreError> {
        let _ = seqs;
        Err(StoreError::Engine(
            "this store cannot erase payloads".to_owned(),
        ))
    }

    // Range reads, for verification: a whole log read one lookup per
    // entry costs about as much as hashing it. Only `entries_in` lets its
    // `f` call back into the store.

    /// Calls `f` with each stored entry of `from..to`, ascending, lending
    /// its bytes (seqs not stored are skipped). `f` may read the store;
    /// `Break` stops early.
    fn entries_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;
    /// Calls `f` once for each leaf of `from..to`, ascending, with the
    /// stored nodes that leaf finished, level 0 first (as `node(level,
    /// leaf >> level)` finds them), cut at the first one not stored.
    fn leaf_nodes_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[Hash]),
    ) -> Result<(), StoreError>;
    /// Calls `f` with each stored per-entry signature of `from..to`, ascending.
    fn signatures_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8; 64]),
    ) -> Result<(), StoreError>;
    /// Calls `f` with every decision index row for ids that begin with
    /// `second` (their first 4 bytes): `(id, seq)`. Where an id has more
    /// than one row, the one `decision_seq` answers comes last.
    fn decisions_of_second(
        &self,
        second: [u8; 4],
        f: &mut dyn FnMut(&[u8; 16], u64),
    ) -> Result<(), StoreError>;
}

/// The seqs of the decisions whose `subject` member is `subject`, read
/// from every entry of the log (the default of
/// [`LedgerStore::subject_seqs`]).
pub fn scan_subject_seqs<S: LedgerStore + ?Sized>(
    store: &S,
    subject: &[u8; 32],
) -> Result<Vec<u64>, StoreError> {
    let wanted = format!(r#""subject":"{}""#, crate::decision::hex(subject));
    let mut seqs = Vec::new();
    store.entries_in(0, store.size()?, &mut |seq, bytes| {
        // Canonical bytes: a member's quotes are never escaped, a string's
        // inner quotes always are.
        if bytes.windows(wanted.len()).any(|w| w == wanted.as_bytes()) {
            seqs.push(seq);
        }
        ControlFlow::Continue(())
    })?;
    Ok(seqs)
}

/// Reads nodes through a store for the tree math.
pub struct StoreNodes<'a, S: ?Sized>(pub &'a S);

impl<S: LedgerStore + ?Sized> NodeSource for StoreNodes<'_, S> {
    type Error = StoreError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        self.0
            .node(level, index)?
            .ok_or_else(|| StoreError::Corrupt(format!("missing tree node ({level}, {index})")))
    }
}

#[cfg(test)]
mod conformance_tests;
