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
//! Verification reads ranges (`ranges`): each pack or commit row once for
//! all the seqs it holds, and an id second's index rows together.
//!
//! Durability: `sled::Db::flush` writes everything, then the data file is
//! fdatasynced (sled's flush uses sync_file_range on Linux, which does not
//! persist file metadata).

use super::packing::{pack, packs, record_count, unpack};
use super::{CommitBatch, Hash, LedgerStore, StoreError};
use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// The layout this code writes; other layouts are refused at open.
const FORMAT: &[u8] = b"govgate-ledger-sled/3";
const FORMAT_KEY: &[u8] = b"format";

const NODES: u8 = b'N';
const SIGNATURES: u8 = b'S';
const CHECKPOINT: u8 = b'c';
const GOVERNANCE: u8 = b'g';

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
    db: sled::Db,
    main: sled::Tree,
    entries: sled::Tree,
    payloads: sled::Tree,
    dir: PathBuf,
    /// sled's data file, kept open for fdatasync after every flush.
    data_file: File,
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
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .segment_size(8 << 20)
            .cache_capacity(cache_bytes)
            .open()?;
        let main = db.open_tree("ledger")?;
        let entries = db.open_tree("entries")?;
        let payloads = db.open_tree("payloads")?;
        let data_path = dir.join("db");
        let data_file = File::open(&data_path).map_err(|source| StoreError::Sync {
            path: data_path,
            source,
        })?;
        match main.get(FORMAT_KEY)? {
            Some(format) if format == FORMAT => {}
            Some(format) => {
                return Err(StoreError::Corrupt(format!(
                    "store format {:?}; this gateway reads {:?}",
                    String::from_utf8_lossy(&format),
                    String::from_utf8_lossy(FORMAT)
                )));
            }
            None if main.is_empty() && entries.is_empty() => {
                main.insert(FORMAT_KEY, FORMAT)?;
            }
            None => {
                return Err(StoreError::Corrupt(
                    "a store without a format mark (written by an older gateway)".to_owned(),
                ));
            }
        }
        let store = Self {
            db,
            main,
            entries,
            payloads,
            dir: dir.to_path_buf(),
            data_file,
            recent: index::Recent::new(index::RECENT),
        };
        store.remove_uncommitted()?;
        store.sync()?;
        // The directory entries of sled's files are durable from here on;
        // commits only write inside the data file.
        sync_path(dir)?;
        Ok(store)
    }

    /// Drops the packs an interrupted commit left above the latest
    /// checkpoint: their answers were never released.
    fn remove_uncommitted(&self) -> Result<(), StoreError> {
        let size = self.size()?;
        let entries = remove_packs_from(&self.entries, size)?;
        remove_packs_from(&self.payloads, size)?;
        if entries > 0 {
            tracing::warn!(
                committed = size,
                discarded = entries,
                "ledger store: discarded entries of an interrupted commit (never acknowledged)"
            );
        }
        Ok(())
    }

    /// The `ledger` row `tag` with the greatest number at most `number`.
    fn row_at_or_before(
        &self,
        tag: u8,
        number: u64,
    ) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        match self
            .main
            .get_lt(tagged_key(tag, number.saturating_add(1)))?
        {
            Some((key, value)) if key.first() == Some(&tag) && key.len() == 9 => {
                Ok(Some((be_u64(&key[1..])?, value)))
            }
            _ => Ok(None),
        }
    }

    /// Removes a payload (erasure); durable on return. `false` if there was none.
    pub fn erase_payload(&self, seq: u64) -> Result<bool, StoreError> {
        let Some((first, pack_bytes)) = pack_holding(&self.payloads, seq)? else {
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
        self.payloads
            .insert(first.to_be_bytes(), pack(records.iter().copied()))?;
        self.sync()?;
        Ok(true)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        // sled's flush is sync_file_range on Linux, which does not persist
        // the file's metadata (its size, when it grew); fdatasync does.
        self.data_file
            .sync_data()
            .map_err(|source| StoreError::Sync {
                path: self.dir.join("db"),
                source,
            })?;
        // Values too large for a segment go to files of their own in blobs/.
        let blobs = self.dir.join("blobs");
        if blobs.exists() {
            sync_path(&blobs)?;
        }
        Ok(())
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
        let Some((first_seq, _)) = batch.entries.first() else {
            return Err(StoreError::Corrupt("an empty commit batch".to_owned()));
        };
        let first_seq = *first_seq;
        let entries: Vec<&[u8]> = batch.entries.iter().map(|(_, e)| e.as_slice()).collect();
        for (offset, packed) in packs(&entries) {
            self.entries
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
                self.payloads
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
        let (size, note) = &batch.checkpoint;
        main.insert(&tagged_key(CHECKPOINT, *size), note.as_bytes());
        self.main.apply_batch(main)?;
        self.sync()?;
        self.recent.add(&batch.decisions);
        Ok(())
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((first, pack_bytes)) = pack_holding(&self.entries, seq)? else {
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
        match self
            .main
            .range(tagged_key(CHECKPOINT, seq + 1)..=tagged_key(CHECKPOINT, u64::MAX))
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
            .range(tagged_key(CHECKPOINT, 0)..=tagged_key(CHECKPOINT, u64::MAX))
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
            .range(tagged_key(CHECKPOINT, 0)..=tagged_key(CHECKPOINT, u64::MAX))
            .map(|row| {
                let (key, value) = row?;
                checkpoint_row(&key, &value)
            })
            .collect()
    }

    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        if let Some(seq) = self.recent.get(id) {
            return Ok(Some(seq));
        }
        let (second, suffix) = index::split(id);
        // Latest commit first: where an id has two rows, the later one holds.
        for row in self.main.scan_prefix(index::second_prefix(second)).rev() {
            let (_, value) = row?;
            if let Some(seq) = index::find(&value, &suffix)? {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    fn governance_seqs(&self) -> Result<Vec<u64>, StoreError> {
        let mut seqs = Vec::new();
        for row in self.main.scan_prefix([GOVERNANCE]) {
            let (key, value) = row?;
            if key.len() != 9 || value.len() % 8 != 0 {
                return Err(StoreError::Corrupt("a governance row".to_owned()));
            }
            for seq in value.chunks_exact(8) {
                seqs.push(be_u64(seq)?);
            }
        }
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
        ranges::entries_in(&self.entries, from, to, f)
    }

    fn leaf_nodes_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[Hash]),
    ) -> Result<(), StoreError> {
        ranges::leaf_nodes_in(self, from, to, f)
    }

    fn signatures_in(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8; 64]),
    ) -> Result<(), StoreError> {
        ranges::signatures_in(self, from, to, f)
    }

    fn decisions_of_second(
        &self,
        second: [u8; 4],
        f: &mut dyn FnMut(&[u8; 16], u64),
    ) -> Result<(), StoreError> {
        for row in self.main.scan_prefix(index::second_prefix(second)) {
            let (_, value) = row?;
            index::each(second, &value, f)?;
        }
        Ok(())
    }

    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        let Some((first, signatures)) = self.row_at_or_before(SIGNATURES, seq)? else {
            return Ok(None);
        };
        let start = (seq - first) as usize * 64;
        Ok(signatures
            .get(start..start + 64)
            .and_then(|s| <[u8; 64]>::try_from(s).ok()))
    }

    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((first, pack_bytes)) = pack_holding(&self.payloads, seq)? else {
            return Ok(None);
        };
        Ok(unpack(&pack_bytes, seq - first)
            .filter(|record| !record.is_empty())
            .map(<[u8]>::to_vec))
    }
}

mod index;
mod ranges;

#[cfg(test)]
mod tests;
