//! An in-memory [`LedgerStore`] for tests and tools: same contract as the
//! sled store, nothing durable. It can be told to fail commits, to show
//! that the gateway fails closed.

use super::store::{CommitBatch, LedgerStore, StoreError};
use super::tree::Hash;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Dense by seq where the ledger's numbers are dense, so a read is an
/// index, not a tree walk: verification reads every entry and node.
#[derive(Default)]
struct Tables {
    /// Entry `seq` at `seq`; ends at the last one stored. Shared, so range
    /// reads hand out entries without copying them or holding the lock.
    entries: Vec<Option<Arc<[u8]>>>,
    /// Node `(level, index)` at `nodes[level][index]`.
    nodes: Vec<Vec<Option<Hash>>>,
    checkpoints: BTreeMap<u64, String>,
    /// By id second, then the rest of the id, as the sled index groups
    /// them; every seq an id was given, the one that holds last.
    decisions: HashMap<[u8; 4], HashMap<[u8; 12], Vec<u64>>>,
    payloads: HashMap<u64, Vec<u8>>,
    signatures: Vec<Option<[u8; 64]>>,
    governance: BTreeSet<u64>,
    /// Subject index rows.
    subjects: BTreeSet<([u8; 32], u64)>,
}

/// Puts `value` at `index`, growing `slots` as needed.
fn put<T: Clone>(slots: &mut Vec<Option<T>>, index: usize, value: T) {
    if slots.len() <= index {
        slots.resize(index + 1, None);
    }
    slots[index] = Some(value);
}

fn split(id: &[u8; 16]) -> ([u8; 4], [u8; 12]) {
    let (mut second, mut rest) = ([0; 4], [0; 12]);
    second.copy_from_slice(&id[..4]);
    rest.copy_from_slice(&id[4..]);
    (second, rest)
}

/// The in-memory store.
#[derive(Default)]
pub struct MemStore {
    tables: RwLock<Tables>,
    failing: AtomicBool,
    /// Commits to fail after writing them, as when only the fsync fails.
    fail_after_write: AtomicU64,
    /// Milliseconds every commit takes, as a slow disk would.
    commit_delay_ms: AtomicU64,
    /// Milliseconds every decision lookup takes, as a cold disk would.
    lookup_delay_ms: AtomicU64,
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

    /// Makes the next `commits` commits write their batch and then fail,
    /// as when the data reaches the disk but the fsync reports an error.
    pub fn fail_after_write(&self, commits: u64) {
        self.fail_after_write.store(commits, Ordering::SeqCst);
    }

    /// Makes every commit take `delay` before it succeeds or fails.
    pub fn slow_commits(&self, delay: std::time::Duration) {
        self.commit_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Makes every decision lookup (`decision_seq`) take `delay`.
    pub fn slow_lookups(&self, delay: std::time::Duration) {
        self.lookup_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Edits the entries (by seq) and checkpoints (by size), for tamper tests.
    pub fn tamper(
        &self,
        edit: impl FnOnce(&mut BTreeMap<u64, Vec<u8>>, &mut BTreeMap<u64, String>),
    ) {
        let mut tables = self.write();
        let mut entries: BTreeMap<u64, Vec<u8>> = (0u64..)
            .zip(&tables.entries)
            .filter_map(|(seq, entry)| Some((seq, entry.as_deref()?.to_vec())))
            .collect();
        edit(&mut entries, &mut tables.checkpoints);
        tables.entries.clear();
        for (seq, entry) in entries {
            put(&mut tables.entries, seq as usize, Arc::from(entry));
        }
    }

    /// Replaces the per-entry signature of `seq` (for tamper tests).
    pub fn tamper_entry_signature(&self, seq: u64, signature: [u8; 64]) {
        put(&mut self.write().signatures, seq as usize, signature);
    }

    /// Removes entry `seq`'s per-entry signature (tests of verification).
    pub fn drop_entry_signature(&self, seq: u64) {
        if let Some(slot) = self.write().signatures.get_mut(seq as usize) {
            *slot = None;
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl LedgerStore for MemStore {
    fn size(&self) -> Result<u64, StoreError> {
        Ok(self.read().entries.len() as u64)
    }

    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        let delay = self.commit_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Engine("injected write failure".to_owned()));
        }
        let mut tables = self.write();
        for (seq, bytes) in &batch.entries {
            put(
                &mut tables.entries,
                *seq as usize,
                Arc::from(bytes.as_slice()),
            );
        }
        for (level, index, hash) in &batch.nodes {
            let level = usize::from(*level);
            if tables.nodes.len() <= level {
                tables.nodes.resize_with(level + 1, Vec::new);
            }
            put(&mut tables.nodes[level], *index as usize, *hash);
        }
        tables
            .checkpoints
            .insert(batch.checkpoint.0, batch.checkpoint.1.clone());
        for (id, seq) in &batch.decisions {
            let (second, rest) = split(id);
            let seqs = tables
                .decisions
                .entry(second)
                .or_default()
                .entry(rest)
                .or_default();
            // Writing a batch again (a write-ahead reopen) adds no row.
            if seqs.last() != Some(seq) {
                seqs.push(*seq);
            }
        }
        for (seq, payload) in &batch.payloads {
            tables.payloads.insert(*seq, payload.clone());
        }
        for ((seq, _), signature) in batch.entries.iter().zip(&batch.signatures) {
            put(&mut tables.signatures, *seq as usize, *signature);
        }
        tables.governance.extend(&batch.governance);
        tables.subjects.extend(batch.subjects.iter().copied());
        let after_write =
            self.fail_after_write
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                });
        if after_write.is_ok() {
            return Err(StoreError::Engine("injected sync failure".to_owned()));
        }
        Ok(())
    }

    fn probe(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Engine("injected write failure".to_owned()));
        }
        Ok(())
    }

    fn discard_above(&self, size: u64) -> Result<u64, StoreError> {
        let mut tables = self.write();
        let stored = tables.entries.len() as u64;
        if stored <= size {
            return Ok(0);
        }
        if size > 0 && !tables.checkpoints.contains_key(&size) {
            return Err(StoreError::Corrupt(format!(
                "no checkpoint of size {size} to go back to"
            )));
        }
        let keep = size as usize;
        tables.entries.truncate(keep);
        tables.signatures.truncate(keep);
        for (level, nodes) in tables.nodes.iter_mut().enumerate() {
            // Node (level, i) is finished by leaf (i + 1) << level - 1.
            nodes.truncate(keep >> level);
        }
        tables
            .checkpoints
            .retain(|checkpoint, _| *checkpoint <= size);
        tables.payloads.retain(|seq, _| *seq < size);
        tables.governance.retain(|seq| *seq < size);
        tables.subjects.retain(|(_, seq)| *seq < size);
        for ids in tables.decisions.values_mut() {
            for seqs in ids.values_mut() {
                seqs.retain(|seq| *seq < size);
            }
            ids.retain(|_, seqs| !seqs.is_empty());
        }
        Ok(stored - size)
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let tables = self.read();
        let entry = usize::try_from(seq)
            .ok()
            .and_then(|i| tables.entries.get(i));
        Ok(entry.and_then(Option::as_deref).map(<[u8]>::to_vec))
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        let tables = self.read();
        let nodes = tables.nodes.get(usize::from(level));
        let node = usize::try_from(index)
            .ok()
            .and_then(|i| nodes?.get(i).copied().flatten());
        Ok(node)
    }

    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self
            .read()
            .checkpoints
            .range(seq + 1..)
            .next()
            .map(|(s, n)| (*s, n.clone())))
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self
            .read()
            .checkpoints
            .iter()
            .next_back()
            .map(|(s, n)| (*s, n.clone())))
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(self
            .read()
            .checkpoints
            .iter()
            .map(|(s, n)| (*s, n.clone()))
            .collect())
    }

    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        let delay = self.lookup_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let (second, rest) = split(id);
        let tables = self.read();
        Ok(tables
            .decisions
            .get(&second)
            .and_then(|ids| ids.get(&rest)?.last().copied()))
    }

    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().payloads.get(&seq).cloned())
    }

    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        let tables = self.read();
        let signature = usize::try_from(seq)
            .ok()
            .and_then(|i| tables.signatures.get(i));
        Ok(signature.copied().flatten())
    }

    fn governance_seqs(&self) -> Result<Vec<u64>, StoreError> {
        Ok(self.read().governance.iter().copied().collect())
    }

    fn subject_seqs(&self, subject: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .read()
            .subjects
            .range((*subject, 0)..=(*subject, u64::MAX))
            .map(|(_, seq)| *seq)
            .collect())
    }

    fn erase_payloads(&self, seqs: &[u64]) -> Result<Vec<bool>, StoreError> {
        let mut tables = self.write();
        Ok(seqs
            .iter()
            .map(|seq| {
                tables
                    .payloads
                    .remove(seq)
                    .is_some_and(|payload| !payload.is_empty())
            })
            .collect())
    }

    fn entries_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        // Shared handles, so `f` runs without the lock and may read the store.
        let entries: Vec<(u64, Arc<[u8]>)> = {
            let tables = self.read();
            let end = to.min(tables.entries.len() as u64);
            (from..end)
                .filter_map(|seq| Some((seq, tables.entries[seq as usize].clone()?)))
                .collect()
        };
        for (seq, bytes) in entries {
            if f(seq, &bytes).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn leaf_nodes_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[Hash]),
    ) -> Result<(), StoreError> {
        let tables = self.read();
        let mut found = [[0u8; 32]; 64];
        for leaf in from..to {
            let mut count = 0;
            for level in 0..=(leaf + 1).trailing_zeros().min(63) {
                let stored = tables
                    .nodes
                    .get(level as usize)
                    .and_then(|nodes| nodes.get((leaf >> level) as usize).copied().flatten());
                let Some(hash) = stored else {
                    break;
                };
                found[count] = hash;
                count += 1;
            }
            f(leaf, &found[..count]);
        }
        Ok(())
    }

    fn signatures_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8; 64]),
    ) -> Result<(), StoreError> {
        let tables = self.read();
        let end = to.min(tables.signatures.len() as u64);
        for seq in from..end {
            if let Some(signature) = &tables.signatures[seq as usize] {
                f(seq, signature);
            }
        }
        Ok(())
    }

    fn decisions_of_second(
        &self,
        second: [u8; 4],
        f: &mut dyn FnMut(&[u8; 16], u64),
    ) -> Result<(), StoreError> {
        let tables = self.read();
        let mut id = [0; 16];
        id[..4].copy_from_slice(&second);
        for (rest, seqs) in tables.decisions.get(&second).into_iter().flatten() {
            id[4..].copy_from_slice(rest);
            for seq in seqs {
                f(&id, *seq);
            }
        }
        Ok(())
    }
}
