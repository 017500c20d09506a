//! Storage of the ledger behind [`LedgerStore`], and its sled
//! implementation, the only code that names sled.
//!
//! Layout in one sled tree (`ledger`), so a commit batch is applied
//! atomically with one `apply_batch`:
//!
//! | key | value |
//! | --- | --- |
//! | `e` seq (u64 BE) | canonical entry bytes |
//! | `n` level (u8) index (u64 BE) | complete-subtree hash (32 bytes) |
//! | `c` size (u64 BE) | signed checkpoint note (UTF-8) |
//! | `d` decision id (16 bytes) | seq (u64 BE) |
//!
//! Payloads (salts and captured bodies) live in a second tree, `payloads`
//! (key: seq), so they can be erased without touching what is signed. They
//! are written before the batch that commits their entries; a crash in
//! between leaves orphans above the head, which opening removes.
//!
//! Durability: after applying a batch, `sled::Db::flush` writes it, then the
//! store's files are fsynced explicitly (sled's flush uses sync_file_range
//! on Linux, which does not persist file metadata).

use super::tree::{Hash, NodeSource};
use std::fs::File;
use std::path::{Path, PathBuf};

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

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        StoreError::Engine(err.to_string())
    }
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
}

/// What the ledger needs from a storage engine.
///
/// Contract: `commit` MUST NOT return `Ok` before every part of the batch
/// is on stable storage, and MUST apply the entries, nodes, checkpoint and
/// index rows atomically (all or none visible after a crash).
pub trait LedgerStore: Send + Sync + 'static {
    /// Number of committed entries.
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

/// The sled-backed store.
pub struct SledStore {
    db: sled::Db,
    main: sled::Tree,
    payloads: sled::Tree,
    dir: PathBuf,
}

fn entry_key(seq: u64) -> [u8; 9] {
    let mut key = [b'e'; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn node_key(level: u8, index: u64) -> [u8; 10] {
    let mut key = [b'n'; 10];
    key[1] = level;
    key[2..].copy_from_slice(&index.to_be_bytes());
    key
}

fn checkpoint_key(size: u64) -> [u8; 9] {
    let mut key = [b'c'; 9];
    key[1..].copy_from_slice(&size.to_be_bytes());
    key
}

fn decision_key(id: &[u8; 16]) -> [u8; 17] {
    let mut key = [b'd'; 17];
    key[1..].copy_from_slice(id);
    key
}

fn be_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("an 8-byte number".to_owned()))
}

fn checkpoint_row(key: &[u8], value: &[u8]) -> Result<(u64, String), StoreError> {
    let size = be_u64(&key[1..])?;
    let note = String::from_utf8(value.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("checkpoint {size}")))?;
    Ok((size, note))
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Sync {
            path: dir.to_path_buf(),
            source,
        })?;
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let main = db.open_tree("ledger")?;
        let payloads = db.open_tree("payloads")?;
        let store = Self {
            db,
            main,
            payloads,
            dir: dir.to_path_buf(),
        };
        store.remove_orphan_payloads()?;
        Ok(store)
    }

    fn remove_orphan_payloads(&self) -> Result<(), StoreError> {
        let size = self.size()?;
        for row in self.payloads.range(size.to_be_bytes()..) {
            let (key, _) = row?;
            self.payloads.remove(key)?;
        }
        Ok(())
    }

    /// Removes a payload (erasure); durable on return.
    pub fn erase_payload(&self, seq: u64) -> Result<bool, StoreError> {
        let existed = self.payloads.remove(seq.to_be_bytes())?.is_some();
        self.sync()?;
        Ok(existed)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        // SPEC (durability): sled's flush is sync_file_range on Linux; a
        // full fsync of the data file and the directory makes it durable.
        for path in [self.dir.join("db"), self.dir.clone()] {
            File::open(&path)
                .and_then(|file| file.sync_all())
                .map_err(|source| StoreError::Sync { path, source })?;
        }
        Ok(())
    }
}

impl LedgerStore for SledStore {
    fn size(&self) -> Result<u64, StoreError> {
        match self.main.get_lt(entry_key(u64::MAX))? {
            Some((key, _)) if key.first() == Some(&b'e') => Ok(be_u64(&key[1..])? + 1),
            _ => Ok(0),
        }
    }

    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        if !batch.payloads.is_empty() {
            let mut payloads = sled::Batch::default();
            for (seq, payload) in &batch.payloads {
                payloads.insert(&seq.to_be_bytes(), payload.as_slice());
            }
            self.payloads.apply_batch(payloads)?;
        }
        let mut main = sled::Batch::default();
        for (seq, bytes) in &batch.entries {
            main.insert(&entry_key(*seq), bytes.as_slice());
        }
        for (level, index, hash) in &batch.nodes {
            main.insert(&node_key(*level, *index), hash.as_slice());
        }
        let (size, note) = &batch.checkpoint;
        main.insert(&checkpoint_key(*size), note.as_bytes());
        for (id, seq) in &batch.decisions {
            main.insert(&decision_key(id), &seq.to_be_bytes());
        }
        self.main.apply_batch(main)?;
        self.sync()
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.main.get(entry_key(seq))?.map(|v| v.to_vec()))
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        match self.main.get(node_key(level, index))? {
            Some(value) => Hash::try_from(value.as_ref())
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("tree node ({level}, {index})"))),
            None => Ok(None),
        }
    }

    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        match self
            .main
            .range(checkpoint_key(seq + 1)..checkpoint_key(u64::MAX))
            .next()
        {
            Some(row) => {
                let (key, value) = row?;
                checkpoint_row(&key, &value).map(Some)
            }
            None => Ok(None),
        }
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        match self
            .main
            .range(checkpoint_key(0)..=checkpoint_key(u64::MAX))
            .next_back()
        {
            Some(row) => {
                let (key, value) = row?;
                checkpoint_row(&key, &value).map(Some)
            }
            None => Ok(None),
        }
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.main
            .range(checkpoint_key(0)..=checkpoint_key(u64::MAX))
            .map(|row| {
                let (key, value) = row?;
                checkpoint_row(&key, &value)
            })
            .collect()
    }

    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        match self.main.get(decision_key(id))? {
            Some(value) => be_u64(&value).map(Some),
            None => Ok(None),
        }
    }

    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.payloads.get(seq.to_be_bytes())?.map(|v| v.to_vec()))
    }
}
