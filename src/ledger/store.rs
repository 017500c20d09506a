//! Storage of the ledger behind [`LedgerStore`], and its sled
//! implementation, the only code that names sled.
//!
//! Layout in one sled tree (`ledger`), so a commit batch is applied
//! atomically with one `apply_batch`. Entries and tree nodes are packed
//! per commit batch: sled rewrites a node per insert, so fewer, larger
//! values cost far less CPU than one value per entry and per node.
//!
//! | key | value |
//! | --- | --- |
//! | `E` first seq (u64 BE) | the batch's entries: count (u32 BE), count end offsets (u32 BE each), the canonical bytes back to back |
//! | `N` first seq (u64 BE) | the complete-subtree hashes the batch's leaves finished, 32 bytes each, in append order (for each leaf: levels 0, 1, ...) |
//! | `c` size (u64 BE) | signed checkpoint note (UTF-8) |
//! | `d` decision id (16 bytes) | seq (u64 BE) |
//! | `S` first seq (u64 BE) | per-entry signatures, 64 bytes each, when that mode is on |
//!
//! Leaf `i` finishes the nodes of levels `0..=trailing_zeros(i + 1)`, so the
//! leaves `0..n` finish `2n - popcount(n)` nodes in all: that locates any
//! node inside its batch without an index.
//!
//! Payloads (salts and captured bodies) live in a second tree, `payloads`,
//! packed per commit batch like the entries (key: first seq; one record per
//! seq of the batch, empty for entries without one or once erased), so
//! they can be erased without touching what is signed. They are written
//! before the batch that commits their entries; a crash in between leaves
//! orphans above the head, which opening removes.
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
    /// One per-entry signature per entry, in order, or none.
    pub signatures: Vec<[u8; 64]>,
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

/// The sled-backed store.
pub struct SledStore {
    db: sled::Db,
    main: sled::Tree,
    payloads: sled::Tree,
    dir: PathBuf,
    /// sled's data file, kept open for fdatasync after every flush.
    data_file: File,
}

fn batch_key(table: u8, first_seq: u64) -> [u8; 9] {
    let mut key = [table; 9];
    key[1..].copy_from_slice(&first_seq.to_be_bytes());
    key
}

const ENTRIES: u8 = b'E';
const NODES: u8 = b'N';
const SIGNATURES: u8 = b'S';

/// Nodes finished by leaves `0..n`.
fn nodes_before(n: u64) -> u64 {
    2 * n - u64::from(n.count_ones())
}

/// Packs a batch's entries: count, end offsets, bytes.
fn pack_entries(entries: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let total: usize = entries.iter().map(|(_, bytes)| bytes.len()).sum();
    let mut out = Vec::with_capacity(4 + 4 * entries.len() + total);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    let mut end = 0u32;
    for (_, bytes) in entries {
        end += bytes.len() as u32;
        out.extend_from_slice(&end.to_be_bytes());
    }
    for (_, bytes) in entries {
        out.extend_from_slice(bytes);
    }
    out
}

fn be_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(raw) as usize)
}

/// Entry `index` of a packed batch.
fn unpack_entry(blob: &[u8], index: u64) -> Option<&[u8]> {
    let count = be_u32(blob, 0)? as u64;
    if index >= count {
        return None;
    }
    let data = 4 + 4 * count as usize;
    let start = if index == 0 {
        0
    } else {
        be_u32(blob, 4 + 4 * (index as usize - 1))?
    };
    let end = be_u32(blob, 4 + 4 * index as usize)?;
    blob.get(data + start..data + end)
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
            .segment_size(8 << 20)
            // sled's default page cache is 1 GiB; the ledger reads little
            // (receipts, proofs), so a small cache keeps memory flat.
            .cache_capacity(64 << 20)
            .open()?;
        let main = db.open_tree("ledger")?;
        let payloads = db.open_tree("payloads")?;
        let data_path = dir.join("db");
        let data_file = File::open(&data_path).map_err(|source| StoreError::Sync {
            path: data_path,
            source,
        })?;
        let store = Self {
            db,
            main,
            payloads,
            dir: dir.to_path_buf(),
            data_file,
        };
        store.remove_orphan_payloads()?;
        store.sync()?;
        // The directory entries of sled's files are durable from here on;
        // commits only write inside the data file.
        sync_path(dir)?;
        Ok(store)
    }

    /// The packed batch of `table` holding `seq`: `(first seq, value)`.
    fn batch_holding(&self, table: u8, seq: u64) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        let Some(next) = seq.checked_add(1) else {
            return Ok(None);
        };
        match self.main.get_lt(batch_key(table, next))? {
            Some((key, value)) if key.first() == Some(&table) => {
                Ok(Some((be_u64(&key[1..])?, value)))
            }
            _ => Ok(None),
        }
    }

    fn remove_orphan_payloads(&self) -> Result<(), StoreError> {
        let size = self.size()?;
        for row in self.payloads.range(size.to_be_bytes()..) {
            let (key, _) = row?;
            self.payloads.remove(key)?;
        }
        Ok(())
    }

    /// The packed payload batch holding `seq`: `(first seq, value)`.
    fn payload_batch(&self, seq: u64) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        match self.payloads.get_lt((seq + 1).to_be_bytes())? {
            Some((key, value)) => Ok(Some((be_u64(&key)?, value))),
            None => Ok(None),
        }
    }

    /// Removes a payload (erasure); durable on return. `false` if there was none.
    pub fn erase_payload(&self, seq: u64) -> Result<bool, StoreError> {
        let Some((first, blob)) = self.payload_batch(seq)? else {
            return Ok(false);
        };
        let count = be_u32(&blob, 0).unwrap_or(0) as u64;
        let mut records: Vec<(u64, Vec<u8>)> = (0..count)
            .map(|i| {
                (
                    first + i,
                    unpack_entry(&blob, i)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default(),
                )
            })
            .collect();
        let Some((_, record)) = records.iter_mut().find(|(s, _)| *s == seq) else {
            return Ok(false);
        };
        if record.is_empty() {
            return Ok(false);
        }
        record.clear();
        self.payloads
            .insert(first.to_be_bytes(), pack_entries(&records))?;
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
        match self.batch_holding(ENTRIES, u64::MAX - 1)? {
            Some((first, blob)) => {
                let count = be_u32(&blob, 0)
                    .ok_or_else(|| StoreError::Corrupt(format!("entry batch {first}")))?;
                Ok(first + count as u64)
            }
            None => Ok(0),
        }
    }

    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        if !batch.payloads.is_empty() {
            // One record per seq of the batch, empty where there is no payload.
            let mut given = batch.payloads.iter().peekable();
            let records: Vec<(u64, Vec<u8>)> = batch
                .entries
                .iter()
                .map(|(seq, _)| match given.next_if(|(s, _)| s == seq) {
                    Some((_, payload)) => (*seq, payload.clone()),
                    None => (*seq, Vec::new()),
                })
                .collect();
            if let Some((first, _)) = records.first() {
                self.payloads
                    .insert(first.to_be_bytes(), pack_entries(&records))?;
            }
        }
        let mut main = sled::Batch::default();
        let Some((first_seq, _)) = batch.entries.first() else {
            return Err(StoreError::Corrupt("an empty commit batch".to_owned()));
        };
        main.insert(
            &batch_key(ENTRIES, *first_seq),
            pack_entries(&batch.entries),
        );
        let nodes: Vec<u8> = batch
            .nodes
            .iter()
            .flat_map(|(_, _, hash)| hash.iter().copied())
            .collect();
        main.insert(&batch_key(NODES, *first_seq), nodes);
        if !batch.signatures.is_empty() {
            let signatures: Vec<u8> = batch
                .signatures
                .iter()
                .flat_map(|s| s.iter().copied())
                .collect();
            main.insert(&batch_key(SIGNATURES, *first_seq), signatures);
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
        let Some((first, blob)) = self.batch_holding(ENTRIES, seq)? else {
            return Ok(None);
        };
        Ok(unpack_entry(&blob, seq - first).map(<[u8]>::to_vec))
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        // The leaf that completes this node, and where its nodes start.
        let Some(last_leaf) = index
            .checked_add(1)
            .and_then(|n| n.checked_shl(u32::from(level)))
            .and_then(|n| n.checked_sub(1))
        else {
            return Ok(None);
        };
        let Some((first, blob)) = self.batch_holding(NODES, last_leaf)? else {
            return Ok(None);
        };
        let position = nodes_before(last_leaf) - nodes_before(first) + u64::from(level);
        let start = position as usize * 32;
        match blob.get(start..start + 32) {
            Some(hash) => Hash::try_from(hash)
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

    fn entry_signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        let Some((first, blob)) = self.batch_holding(SIGNATURES, seq)? else {
            return Ok(None);
        };
        let start = (seq - first) as usize * 64;
        Ok(blob
            .get(start..start + 64)
            .and_then(|s| <[u8; 64]>::try_from(s).ok()))
    }

    fn payload(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((first, blob)) = self.payload_batch(seq)? else {
            return Ok(None);
        };
        Ok(unpack_entry(&blob, seq - first)
            .filter(|record| !record.is_empty())
            .map(<[u8]>::to_vec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::checkpoint::{NoteSigner, NoteVerifier};
    use crate::ledger::entry::EntryBody;
    use crate::ledger::sequencer::{Ledger, SequencerConfig};
    use crate::ledger::tree::{inclusion_proof, leaf_hash, root, verify_inclusion};
    use crate::ledger::verify::verify_store;
    use ed25519_dalek::SigningKey;
    use std::sync::Arc;

    #[test]
    fn packed_offsets_find_every_node() {
        // Leaves 0..n finish 2n - popcount(n) nodes.
        let mut count = 0u64;
        for leaf in 0..1000u64 {
            assert_eq!(nodes_before(leaf), count);
            count += 1 + u64::from((leaf + 1).trailing_zeros());
        }
        let packed = pack_entries(&[(7, b"ab".to_vec()), (8, b"".to_vec()), (9, b"cde".to_vec())]);
        assert_eq!(unpack_entry(&packed, 0), Some(&b"ab"[..]));
        assert_eq!(unpack_entry(&packed, 1), Some(&b""[..]));
        assert_eq!(unpack_entry(&packed, 2), Some(&b"cde"[..]));
        assert_eq!(unpack_entry(&packed, 3), None);
    }

    /// Batches of uneven sizes on the real sled store: everything verifies,
    /// every proof checks out, and it all survives reopening.
    #[tokio::test]
    async fn uneven_batches_verify_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let origin = "test.example/sled";
        let key = SigningKey::from_bytes(&[9; 32]);
        let verifier = NoteVerifier::new(origin, key.verifying_key()).unwrap();
        let config = |max_batch| SequencerConfig {
            origin: origin.into(),
            signer: NoteSigner::new(origin, key.clone()).unwrap(),
            payload_mode: crate::decision::PayloadMode::Full,
            entry_signatures: crate::decision::EntrySignatures::Off,
            queue_len: 256,
            max_batch,
            metrics: crate::ledger::metrics::LedgerMetrics::new().unwrap(),
        };
        {
            let store = Arc::new(SledStore::open(dir.path()).unwrap());
            let (ledger, writer) = Ledger::open(store.clone(), config(7)).unwrap();
            for burst in [1usize, 3, 7, 2, 13, 1, 30] {
                let appends: Vec<_> = (0..burst)
                    .map(|_| ledger.append(EntryBody::GatewayStopped))
                    .collect();
                for append in appends {
                    append.await.unwrap();
                }
            }
            drop(ledger);
            tokio::task::spawn_blocking(move || writer.close())
                .await
                .unwrap();
        }
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        assert_eq!(store.size().unwrap(), 57);
        verify_store(store.as_ref(), &verifier).unwrap();
        let nodes = StoreNodes(store.as_ref());
        for size in [1u64, 2, 7, 8, 30, 57] {
            let root_n = root(&nodes, size).unwrap();
            for seq in 0..size {
                let proof = inclusion_proof(&nodes, seq, size).unwrap();
                let leaf = leaf_hash(&store.entry(seq).unwrap().unwrap());
                assert!(
                    verify_inclusion(&leaf, seq, size, &proof, &root_n),
                    "({seq}, {size})"
                );
            }
        }
        // Payloads are kept per decision only, and erasure leaves the log verifiable.
        assert!(
            store.payload(0).unwrap().is_none(),
            "no payload for non-decision entries"
        );
        // Reopened, the writer continues the same chain.
        let (ledger, writer) = Ledger::open(store.clone(), config(7)).unwrap();
        assert_eq!(
            ledger.append(EntryBody::GatewayStopped).await.unwrap().seq,
            Some(57)
        );
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();
        verify_store(store.as_ref(), &verifier).unwrap();
    }
}

#[cfg(test)]
mod payload_tests {
    use super::*;
    use crate::decision::{Capture, Decision, DecisionId, Outcome, PayloadMode, Route, Timings};
    use crate::ledger::checkpoint::{NoteSigner, NoteVerifier};
    use crate::ledger::entry::{EntryBody, commitment, hex};
    use crate::ledger::sequencer::{Ledger, SequencerConfig};
    use crate::ledger::verify::verify_store;
    use ed25519_dalek::SigningKey;
    use std::sync::Arc;

    fn decision(request: &'static [u8], response: &'static [u8]) -> Decision {
        Decision {
            id: DecisionId::random(),
            caller: "c".into(),
            route: Route::Http,
            protocol: None,
            model: None,
            version: None,
            outcome: Outcome::Served,
            status: 200,
            error_code: None,
            timings: Timings::default(),
            request: Capture::of_complete(&bytes::Bytes::from_static(request), 64),
            response: Capture::of_complete(&bytes::Bytes::from_static(response), 64),
        }
    }

    /// The payload record opens the entry's commitments; erasing it keeps
    /// everything signed verifiable.
    #[tokio::test]
    async fn payloads_open_their_commitments_and_erasure_keeps_the_log_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let origin = "test.example/payloads";
        let key = SigningKey::from_bytes(&[3; 32]);
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let (ledger, writer) = Ledger::open(
            store.clone(),
            SequencerConfig {
                origin: origin.into(),
                signer: NoteSigner::new(origin, key.clone()).unwrap(),
                payload_mode: PayloadMode::Full,
                entry_signatures: crate::decision::EntrySignatures::Off,
                queue_len: 16,
                max_batch: 16,
                metrics: crate::ledger::metrics::LedgerMetrics::new().unwrap(),
            },
        )
        .unwrap();
        let acks = [
            ledger.append(EntryBody::GatewayStopped),
            ledger.append(EntryBody::Decision(Box::new(decision(
                b"question one",
                b"answer one",
            )))),
            ledger.append(EntryBody::Decision(Box::new(decision(
                b"question two",
                b"answer two",
            )))),
        ];
        for ack in acks {
            ack.await.unwrap();
        }
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();

        for (seq, request, response) in [
            (1u64, &b"question one"[..], &b"answer one"[..]),
            (2, b"question two", b"answer two"),
        ] {
            let record = store.payload(seq).unwrap().expect("payload kept");
            let (request_salt, response_salt) = (&record[..32], &record[32..64]);
            let request_len = u32::from_be_bytes(record[64..68].try_into().unwrap()) as usize;
            assert_eq!(&record[68..68 + request_len], request);
            assert_eq!(&record[68 + request_len..], response);
            let entry: serde_json::Value =
                serde_json::from_slice(&store.entry(seq).unwrap().unwrap()).unwrap();
            let salt = |s: &[u8]| <[u8; 32]>::try_from(s).unwrap();
            assert_eq!(
                entry["request"]["commitment"],
                hex(&commitment(&salt(request_salt), request))
            );
            assert_eq!(
                entry["response"]["commitment"],
                hex(&commitment(&salt(response_salt), response))
            );
        }
        assert!(store.payload(0).unwrap().is_none());

        assert!(store.erase_payload(1).unwrap());
        assert!(!store.erase_payload(1).unwrap(), "already erased");
        assert!(store.payload(1).unwrap().is_none());
        assert!(
            store.payload(2).unwrap().is_some(),
            "only that payload is gone"
        );
        let verifier = NoteVerifier::new(origin, key.verifying_key()).unwrap();
        verify_store(store.as_ref(), &verifier).unwrap();
    }
}
