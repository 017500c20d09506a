//! An in-memory [`LedgerStore`] for tests and tools: same contract as the
//! sled store, nothing durable. It can be told to fail commits, to show
//! that the gateway fails closed.

use super::store::{CommitBatch, LedgerStore, StoreError};
use super::tree::Hash;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Default)]
struct Tables {
    entries: BTreeMap<u64, Vec<u8>>,
    nodes: BTreeMap<(u8, u64), Hash>,
    checkpoints: BTreeMap<u64, String>,
    decisions: BTreeMap<[u8; 16], u64>,
    payloads: BTreeMap<u64, Vec<u8>>,
    signatures: BTreeMap<u64, [u8; 64]>,
}

/// The in-memory store.
#[derive(Default)]
pub struct MemStore {
    tables: Mutex<Tables>,
    failing: AtomicBool,
    /// Milliseconds every commit takes, as a slow disk would.
    commit_delay_ms: AtomicU64,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `true`, every commit fails as a broken disk would.
    pub fn fail_commits(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Makes every commit take `delay` before it succeeds or fails.
    pub fn slow_commits(&self, delay: std::time::Duration) {
        self.commit_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Edits the raw tables (for tamper tests).
    pub fn tamper(
        &self,
        edit: impl FnOnce(&mut BTreeMap<u64, Vec<u8>>, &mut BTreeMap<u64, String>),
    ) {
        let mut tables = self.lock();
        let Tables {
            entries,
            checkpoints,
            ..
        } = &mut *tables;
        edit(entries, checkpoints);
    }

    /// Replaces the per-entry signature of `seq` (for tamper tests).
    pub fn tamper_entry_signature(&self, seq: u64, signature: [u8; 64]) {
        self.lock().signatures.insert(seq, signature);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl LedgerStore for MemStore {
    fn size(&self) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .entries
            .keys()
            .next_back()
            .map_or(0, |seq| seq + 1))
    }

    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        let delay = self.commit_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Engine("injected write failure".to_owned()));
        }
        let mut tables = self.lock();
        for (seq, bytes) in &batch.entries {
            tables.entries.insert(*seq, bytes.clone());
        }
        for (level, index, hash) in &batch.nodes {
            tables.nodes.insert((*level, *index), *hash);
        }
        tables
            .checkpoints
            .insert(batch.checkpoint.0, batch.checkpoint.1.clone());
        for (id, seq) in &batch.decisions {
            tables.decisions.insert(*id, *seq);
        }
        for (seq, payload) in &batch.payloads {
            tables.payloads.insert(*seq, payload.clone());
        }
        for ((seq, _), signature) in batch.entries.iter().zip(&batch.signatures) {
            tables.signatures.insert(*seq, *signature);
        }
        Ok(())
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().entries.get(&seq).cloned())
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        Ok(self.lock().nodes.get(&(level, index)).copied())
    }

    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self
            .lock()
            .checkpoints
            .range(seq + 1..)
            .next()
            .map(|(s, n)| (*s, n.clone())))
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self
            .lock()
            .checkpoints
            .iter()
            .next_back()
            .map(|(s, n)| (*s, n.clone())))
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(self
            .lock()
            .checkpoints
            .iter()
            .map(|(s, n)| (*s, n.clone()))
            .collect())
    }

    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        Ok(self.lock().decisions.get(id).copied())
    }

    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().payloads.get(&seq).cloned())
    }

    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        Ok(self.lock().signatures.get(&seq).copied())
    }
}
