//! The sled store.
//!
//! Three sled trees:
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `entries` | first seq (u64 BE) | a pack of consecutive entries' canonical bytes |
//! | `payloads` | first seq (u64 BE) | a pack of payload records, one per seq (empty: none or erased) |
//! | `ledger` | `N` first seq (u64 BE) | the complete-subtree hashes a commit's leaves finished, 32 bytes each, in append order (for each leaf: levels 0, 1, ...) |
//! | `ledger` | `S` first seq (u64 BE) | a commit's per-entry signatures, 64 bytes each, when that mode is on |
//! | `ledger` | `c` size (u64 BE) | signed checkpoint note (UTF-8) |
//! | `ledger` | `d` id second (4 bytes) first seq (u64 BE) | a commit's decisions whose id begins with that second: (id bytes 4..16, seq u64 BE) pairs sorted by id |
//! | `ledger` | `g` first seq (u64 BE) | seqs of a commit's governance entries (u64 BE each), when it has any |
//! | `ledger` | `u` subject hash (32 bytes) seq (u64 BE) | empty: the decision at seq carries that `subject` |
//! | `ledger` | `format` | [`FORMAT`] |
//!
//! Packs are laid out as `packing` says. Leaf `i` finishes the nodes of
//! levels `0..=trailing_zeros(i + 1)`, so the leaves `0..n` finish
//! `2n - popcount(n)` nodes in all: that locates any node inside its
//! commit without an index.
//!
//! A commit writes the entry and payload packs first, then one atomic
//! `ledger` batch (nodes, signatures, index rows and the checkpoint, which
//! marks the commit), then flushes and fsyncs. Large values live outside
//! the `ledger` tree so its nodes stay small. A crash before the `ledger`
//! batch leaves packs above the latest checkpoint, never acknowledged;
//! opening removes them.
//!
//! The decision index has one row per (id second, commit), not one per
//! decision: a commit usually holds ids of one or two seconds, so it
//! writes one or two rows where it would otherwise rewrite a tree node per
//! decision. A long request can put an older second into a later commit;
//! that second then has rows in both. Looking an id up first asks memory:
//! the last [`index::RECENT`] decisions committed (receipts are mostly
//! asked for right after the answer), forgotten oldest first and empty
//! after opening; then it reads the rows of the id's second, latest first,
//! with a binary search in each.
//!
//! The subject index has one row per decision that carries a `subject`
//! (only models with a subject selector write any); stores written before
//! it have no such rows, and their decisions carry no subject either.
//!
//! Verification reads ranges (`ranges`): each pack or commit row once for
//! all the seqs it holds, and an id second's index rows together.
//!
//! Durability: `sled::Db::flush` writes everything, then the data file is
//! fdatasynced (sled's flush uses sync_file_range on Linux, which does not
//! persist file metadata).
//!
//! Reads see nothing above the latest checkpoint known durable (`visible`):
//! sled shows an insert at once, so without that bound a reader could see
//! a batch before its fsync, or a batch whose fsync failed.
//!
//! After an I/O error sled keeps the error and fails every later
//! operation, and its memory may hold the failed batch: the database is
//! therefore behind a lock and `reopen` replaces it whole (`recovery`).

use super::packing::{pack, packs, record_count, unpack};
use super::{CommitBatch, Hash, LedgerStore, StoreError};
use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// The layout this code writes; other layouts are refused at open.
const FORMAT: &[u8] = b"govgate-ledger-sled/3";
const FORMAT_KEY: &[u8] = b"format";

const NODES: u8 = b'N';
const SIGNATURES: u8 = b'S';
const CHECKPOINT: u8 = b'c';
const GOVERNANCE: u8 = b'g';
const SUBJECT: u8 = b'u';

/// `u` + subject hash + seq.
fn subject_key(subject: &[u8; 32], seq: u64) -> [u8; 41] {
    let mut key = [SUBJECT; 41];
    key[1..33].copy_from_slice(subject);
    key[33..].copy_from_slice(&seq.to_be_bytes());
    key
}

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        StoreError::Engine(err.to_string())
    }
}

/// sled's default page cache is 1 GiB; the ledger reads little (receipts,
/// proofs), so a small cache keeps memory flat.
const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// The sled-backed store.
pub struct SledStore {
    /// The open database; `None` only after a `reopen` that failed.
    engine: RwLock<Option<Arc<Engine>>>,
    dir: PathBuf,
    cache_bytes: u64,
    /// The size of the latest checkpoint known durable: reads stop below it.
    visible: AtomicU64,
    recent: index::Recent,
}

fn tagged_key(tag: u8, number: u64) -> [u8; 9] {
    let mut key = [tag; 9];
    key[1..].copy_from_slice(&number.to_be_bytes());
    key
}

/// Nodes finished by leaves `0..n`.
fn nodes_before(n: u64) -> u64 {
    2 * n - u64::from(n.count_ones())
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

/// The pack of `tree` holding `seq`: `(its first seq, the pack)`.
fn pack_holding(tree: &sled::Tree, seq: u64) -> Result<Option<(u64, sled::IVec)>, StoreError> {
    let Some(next) = seq.checked_add(1) else {
        return Ok(None);
    };
    match tree.get_lt(next.to_be_bytes())? {
        Some((key, value)) => Ok(Some((be_u64(&key)?, value))),
        None => Ok(None),
    }
}

/// Empties the payload record of `seq` in its pack (not yet durable);
/// `false` if it was empty already.
fn erase_in(payloads: &sled::Tree, seq: u64) -> Result<bool, StoreError> {
    let Some((first, pack_bytes)) = pack_holding(payloads, seq)? else {
        return Ok(false);
    };
    let count = record_count(&pack_bytes).unwrap_or(0);
    if seq - first >= count || unpack(&pack_bytes, seq - first).is_none_or(<[u8]>::is_empty) {
        return Ok(false);
    }
    let records: Vec<&[u8]> = (0..count)
        .map(|i| {
            if first + i == seq {
                &[][..]
            } else {
                unpack(&pack_bytes, i).unwrap_or_default()
            }
        })
        .collect();
    payloads.insert(first.to_be_bytes(), pack(records.iter().copied()))?;
    Ok(true)
}

/// Removes every pack of `tree` that starts at or above `size`; returns
/// how many records they held.
fn remove_packs_from(tree: &sled::Tree, size: u64) -> Result<u64, StoreError> {
    let mut records = 0;
    for row in tree.range(size.to_be_bytes()..) {
        let (key, value) = row?;
        records += record_count(&value).unwrap_or(0);
        tree.remove(key)?;
    }
    Ok(records)
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`, with the default
    /// page cache.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Opens (creating if needed) the store in `dir`, with a page cache of
    /// `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Sync {
            path: dir.to_path_buf(),
            source,
        })?;
        let engine = Engine::open(dir, cache_bytes)?;
        let size = engine.stored_size()?;
        // The directory entries of sled's files are durable from here on;
        // commits only write inside the data file.
        sync_path(dir)?;
        Ok(Self {
            engine: RwLock::new(Some(Arc::new(engine))),
            dir: dir.to_path_buf(),
            cache_bytes,
            visible: AtomicU64::new(size),
            recent: index::Recent::new(index::RECENT),
        })
    }

    /// The open database, for one operation.
    fn engine(&self) -> Result<Arc<Engine>, StoreError> {
        self.engine
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| StoreError::Engine("the store is closed for reopening".to_owned()))
    }

    /// Entries `0..visible` are readable.
    fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// The `ledger` row `tag` with the greatest number at most `number`.
    fn row_at_or_before(
        &self,
        tag: u8,
        number: u64,
    ) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        self.engine()?.row_at_or_before(tag, number)
    }

    /// Writes a batch's rows (packs first, then the `ledger` batch whose
    /// checkpoint marks it); durable only after the engine's sync.
    fn write(&self, batch: &CommitBatch) -> Result<Arc<Engine>, StoreError> {
        let Some((first_seq, _)) = batch.entries.first() else {
            return Err(StoreError::Corrupt("an empty commit batch".to_owned()));
        };
        let first_seq = *first_seq;
        let engine = self.engine()?;
        let entries: Vec<&[u8]> = batch.entries.iter().map(|(_, e)| e.as_slice()).collect();
        for (offset, packed) in packs(&entries) {
            engine
                .entries
                .insert((first_seq + offset as u64).to_be_bytes(), packed)?;
        }
        if !batch.payloads.is_empty() {
            // One record per seq of the batch, empty where there is no payload.
            let mut given = batch.payloads.iter().peekable();
            let records: Vec<&[u8]> = batch
                .entries
                .iter()
                .map(|(seq, _)| match given.next_if(|(s, _)| s == seq) {
                    Some((_, payload)) => payload.as_slice(),
                    None => &[][..],
                })
                .collect();
            for (offset, packed) in packs(&records) {
                engine
                    .payloads
                    .insert((first_seq + offset as u64).to_be_bytes(), packed)?;
            }
        }
        let mut main = sled::Batch::default();
        let nodes: Vec<u8> = batch.nodes.iter().flat_map(|(_, _, hash)| *hash).collect();
        main.insert(&tagged_key(NODES, first_seq), nodes);
        if !batch.signatures.is_empty() {
            let signatures: Vec<u8> = batch.signatures.iter().flatten().copied().collect();
            main.insert(&tagged_key(SIGNATURES, first_seq), signatures);
        }
        for (second, row) in index::rows(&batch.decisions) {
            main.insert(&index::row_key(second, first_seq), row);
        }
        if !batch.governance.is_empty() {
            let seqs: Vec<u8> = batch
                .governance
                .iter()
                .flat_map(|s| s.to_be_bytes())
                .collect();
            main.insert(&tagged_key(GOVERNANCE, first_seq), seqs);
        }
        for (subject, seq) in &batch.subjects {
            main.insert(subject_key(subject, *seq).to_vec(), Vec::new());
        }
        let (size, note) = &batch.checkpoint;
        main.insert(&tagged_key(CHECKPOINT, *size), note.as_bytes());
        engine.main.apply_batch(main)?;
        Ok(engine)
    }

    /// Lets readers see a written batch.
    fn show(&self, batch: &CommitBatch) {
        self.visible.store(batch.checkpoint.0, Ordering::Release);
        self.recent.add(&batch.decisions);
    }

    #[cfg(test)]
    fn sync(&self) -> Result<(), StoreError> {
        self.engine()?.sync(&self.dir)
    }
}

fn sync_path(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|source| StoreError::Sync {
            path: path.to_path_buf(),
            source,
        })
}

impl LedgerStore for SledStore {
    fn size(&self) -> Result<u64, StoreError> {
        Ok(self.latest_checkpoint()?.map_or(0, |(size, _)| size))
    }

    fn disk_bytes(&self) -> Option<u64> {
        // Every file of the directory: sled's data file, its snapshots and
        // blobs (a file that vanishes while counting counts as nothing).
        fn bytes_under(dir: &Path) -> u64 {
            let Ok(listing) = std::fs::read_dir(dir) else {
                return 0;
            };
            listing
                .filter_map(Result::ok)
                .map(|item| match item.metadata() {
                    Ok(meta) if meta.is_dir() => bytes_under(&item.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        Some(bytes_under(&self.dir))
    }

    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        let engine = self.write(batch)?;
        engine.sync(&self.dir)?;
        self.show(batch);
        Ok(())
    }

    fn apply(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        // Durable elsewhere (the write-ahead file): readable at once.
        self.write(batch)?;
        self.show(batch);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.engine()?.sync(&self.dir)
    }

    fn reopen(&self) -> Result<u64, StoreError> {
        recovery::reopen(self)
    }

    fn probe(&self) -> Result<(), StoreError> {
        recovery::probe(self)
    }

    fn discard_above(&self, size: u64) -> Result<u64, StoreError> {
        recovery::discard_above(self, size)
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if seq >= self.visible() {
            return Ok(None);
        }
        let Some((first, pack_bytes)) = pack_holding(&self.engine()?.entries, seq)? else {
            return Ok(None);
        };
        Ok(unpack(&pack_bytes, seq - first).map(<[u8]>::to_vec))
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        // The leaf that completes this node, and where its commit's nodes start.
        let Some(last_leaf) = index
            .checked_add(1)
            .and_then(|n| n.checked_shl(u32::from(level)))
            .and_then(|n| n.checked_sub(1))
            .filter(|leaf| *leaf < self.visible())
        else {
            return Ok(None);
        };
        let Some((first, nodes)) = self.row_at_or_before(NODES, last_leaf)? else {
            return Ok(None);
        };
        let position = nodes_before(last_leaf) - nodes_before(first) + u64::from(level);
        let start = position as usize * 32;
        match nodes.get(start..start + 32) {
            Some(hash) => Hash::try_from(hash)
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("tree node ({level}, {index})"))),
            None => Ok(None),
        }
    }

    fn checkpoint_covering(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        let visible = self.visible();
        if seq >= visible {
            return Ok(None);
        }
        match self
            .engine()?
            .main
            .range(tagged_key(CHECKPOINT, seq + 1)..=tagged_key(CHECKPOINT, visible))
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
            .engine()?
            .main
            .range(tagged_key(CHECKPOINT, 0)..=tagged_key(CHECKPOINT, self.visible()))
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
        self.engine()?
            .main
            .range(tagged_key(CHECKPOINT, 0)..=tagged_key(CHECKPOINT, self.visible()))
            .map(|row| {
                let (key, value) = row?;
                checkpoint_row(&key, &value)
            })
            .collect()
    }

    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        let visible = self.visible();
        if let Some(seq) = self.recent.get(id).filter(|seq| *seq < visible) {
            return Ok(Some(seq));
        }
        let (second, suffix) = index::split(id);
        // Latest commit first: where an id has two rows, the later one holds.
        for row in self
            .engine()?
            .main
            .scan_prefix(index::second_prefix(second))
            .rev()
        {
            let (_, value) = row?;
            if let Some(seq) = index::find(&value, &suffix)?.filter(|seq| *seq < visible) {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    fn governance_seqs(&self) -> Result<Vec<u64>, StoreError> {
        let visible = self.visible();
        let mut seqs = Vec::new();
        for row in self.engine()?.main.scan_prefix([GOVERNANCE]) {
            let (key, value) = row?;
            if key.len() != 9 || value.len() % 8 != 0 {
                return Err(StoreError::Corrupt("a governance row".to_owned()));
            }
            for seq in value.chunks_exact(8) {
                seqs.push(be_u64(seq)?);
            }
        }
        seqs.retain(|seq| *seq < visible);
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }

    fn entries_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        ranges::entries_in(&self.engine()?.entries, from, to.min(self.visible()), f)
    }

    fn leaf_nodes_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[Hash]),
    ) -> Result<(), StoreError> {
        let visible = self.visible();
        ranges::leaf_nodes_in(&*self.engine()?, from, to.min(visible), f)?;
        // Leaves past the visible ones have no nodes, as `node` says.
        for leaf in from.max(visible)..to {
            f(leaf, &[]);
        }
        Ok(())
    }

    fn signatures_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8; 64]),
    ) -> Result<(), StoreError> {
        ranges::signatures_in(&*self.engine()?, from, to.min(self.visible()), f)
    }

    fn decisions_of_second(
        &self,
        second: [u8; 4],
        f: &mut dyn FnMut(&[u8; 16], u64),
    ) -> Result<(), StoreError> {
        let visible = self.visible();
        for row in self
            .engine()?
            .main
            .scan_prefix(index::second_prefix(second))
        {
            let (_, value) = row?;
            index::each(second, &value, &mut |id, seq| {
                if seq < visible {
                    f(id, seq);
                }
            })?;
        }
        Ok(())
    }

    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        if seq >= self.visible() {
            return Ok(None);
        }
        let Some((first, signatures)) = self.row_at_or_before(SIGNATURES, seq)? else {
            return Ok(None);
        };
        let start = (seq - first) as usize * 64;
        Ok(signatures
            .get(start..start + 64)
            .and_then(|s| <[u8; 64]>::try_from(s).ok()))
    }

    fn erase_payloads(&self, seqs: &[u64]) -> Result<Vec<bool>, StoreError> {
        let engine = self.engine()?;
        let erased = seqs
            .iter()
            .map(|seq| erase_in(&engine.payloads, *seq))
            .collect::<Result<Vec<bool>, StoreError>>()?;
        if erased.contains(&true) {
            engine.sync(&self.dir)?;
        }
        Ok(erased)
    }

    fn subject_seqs(&self, subject: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
        let visible = self.visible();
        let mut prefix = [SUBJECT; 33];
        prefix[1..].copy_from_slice(subject);
        let mut seqs = Vec::new();
        for row in self.engine()?.main.scan_prefix(prefix) {
            let (key, _) = row?;
            let seq = be_u64(key.get(33..).unwrap_or_default())?;
            if seq < visible {
                seqs.push(seq);
            }
        }
        Ok(seqs)
    }

    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if seq >= self.visible() {
            return Ok(None);
        }
        let Some((first, pack_bytes)) = pack_holding(&self.engine()?.payloads, seq)? else {
            return Ok(None);
        };
        Ok(unpack(&pack_bytes, seq - first)
            .filter(|record| !record.is_empty())
            .map(<[u8]>::to_vec))
    }
}

mod engine;
mod index;
mod ranges;
mod recovery;

use engine::Engine;

#[cfg(test)]
mod tests;
