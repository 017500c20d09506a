//! Storage of the ledger behind [`LedgerStore`], and its sled
//! implementation ([`SledStore`], the only code that names sled).

mod packing;
mod sled_store;

pub use sled_store::SledStore;

use super::tree::{Hash, NodeSource};
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
}

/// Everything one group commit writes.
#[derive(Debug, Default)]
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
}

/// What the ledger needs from a storage engine.
///
/// Contract: `commit` MUST NOT return `Ok` before every part of the batch
/// is on stable storage. After a crash, a batch is either wholly there
/// (its checkpoint is the commit mark) or its parts are not visible: the
/// store discards what an interrupted commit left above the latest
/// checkpoint when it opens.
pub trait LedgerStore: Send + Sync + 'static {
    /// Number of committed entries: the size of the latest checkpoint.
    fn size(&self) -> Result<u64, StoreError>;
    /// Writes a batch durably.
    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError>;
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
