//! Full verification of a stored ledger: every entry canonical, seqs gap
//! free, the BLAKE3 chain unbroken, every stored tree node and every signed
//! checkpoint matching the tree recomputed from the entries, the decision
//! index pointing at the right entries. The first problem found is named
//! by its seq.

use super::canonical::{parse_strict, to_canonical};
use super::checkpoint::{Checkpoint, NoteVerifier};
use super::entry::{GENESIS_PREV_HASH, hex, key_rotation};
use super::store::{LedgerStore, StoreError};
use super::tree::{Frontier, leaf_hash};

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// The latest checkpoint's tree size.
    pub latest_checkpoint_size: u64,
}

/// The first problem found.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Entry `seq` (or the checkpoint at size `seq + 1`) is wrong.
    #[error("seq {seq}: {reason}")]
    Bad {
        /// The first bad seq.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn bad(seq: u64, reason: impl Into<String>) -> VerifyError {
    VerifyError::Bad {
        seq,
        reason: reason.into(),
    }
}

/// The keys a log was signed with, oldest first, and the seqs of the
/// `key_rotated` entries between them; the last key must be `current`.
fn key_history(
    store: &dyn LedgerStore,
    size: u64,
    current: &NoteVerifier,
) -> Result<(Vec<NoteVerifier>, Vec<u64>), VerifyError> {
    const MARK: &[u8] = br#""kind":"key_rotated""#;
    let mut rotations = Vec::new();
    for seq in 0..size {
        let Some(bytes) = store.entry(seq)? else {
            continue;
        };
        // A cheap pre-filter: parse only entries that can be rotations.
        if bytes.windows(MARK.len()).any(|w| w == MARK) {
            if let Some(rotation) = key_rotation(&bytes) {
                rotations.push((seq, rotation));
            }
        }
    }
    let Some((first_seq, (first_old, _))) = rotations.first() else {
        return Ok((vec![current.clone()], Vec::new()));
    };
    let parse = |seq: u64, vkey: &str| {
        NoteVerifier::parse(vkey)
            .map_err(|err| bad(seq, format!("key_rotated names an invalid key: {err}")))
    };
    let mut keys = vec![parse(*first_seq, first_old)?];
    for (seq, (old_vkey, new_vkey)) in &rotations {
        if keys.last().map(NoteVerifier::vkey).as_deref() != Some(old_vkey.as_str()) {
            return Err(bad(*seq, "key_rotated: old_vkey is not the key in force"));
        }
        keys.push(parse(*seq, new_vkey)?);
    }
    if keys.last().map(NoteVerifier::vkey) != Some(current.vkey()) {
        return Err(bad(
            size.saturating_sub(1),
            "the log's last key rotation does not end at the configured key",
        ));
    }
    Ok((keys, rotations.into_iter().map(|(seq, _)| seq).collect()))
}

/// Which key signed the batch holding each seq.
struct KeyTimeline {
    keys: Vec<NoteVerifier>,
    rotation_seqs: Vec<u64>,
    checkpoint_sizes: Vec<u64>,
}

impl KeyTimeline {
    /// The key of the batch holding `seq`: the key in force when the batch
    /// began (a rotation switches keys for the batches after its own).
    fn key_at(&self, seq: u64) -> &NoteVerifier {
        let batch_start = match self.checkpoint_sizes.partition_point(|size| *size <= seq) {
            0 => 0,
            i => self.checkpoint_sizes[i - 1],
        };
        let rotations_before = self
            .rotation_seqs
            .partition_point(|rotation| *rotation < batch_start);
        &self.keys[rotations_before.min(self.keys.len() - 1)]
    }
}

/// What the sequential pass needs from one entry, checked in parallel.
struct EntryFacts {
    prev_hash: String,
    entry_hash: String,
    leaf: super::tree::Hash,
}

/// Entries checked per round: bounds memory whatever the log's size.
const CHUNK: u64 = 4096;

/// Verifies the whole store against `verifier`: the log's current key and
/// origin. Key rotations are followed: each batch is checked with the key
/// in force when it began. The per-entry work (parsing, canonical form,
/// hashes, signatures, index) runs on every core; the chain, the tree and
/// the checkpoints are then checked in order, so the first bad seq is named.
pub fn verify_store(
    store: &dyn LedgerStore,
    verifier: &NoteVerifier,
) -> Result<Verified, VerifyError> {
    let size = store.size()?;
    let checkpoints = store.checkpoints()?;
    let (keys, rotation_seqs) = key_history(store, size, verifier)?;
    let timeline = KeyTimeline {
        keys,
        rotation_seqs,
        checkpoint_sizes: checkpoints.iter().map(|(size, _)| *size).collect(),
    };
    let workers =
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) as u64;
    let mut next_checkpoint = checkpoints.iter().peekable();
    let mut frontier = Frontier::new();
    let mut prev_hash = GENESIS_PREV_HASH.to_owned();
    let mut start = 0;
    while start < size {
        let end = (start + CHUNK).min(size);
        let per_worker = (end - start).div_ceil(workers);
        let facts: Vec<Result<EntryFacts, VerifyError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (from, to) = (
                        (start + w * per_worker).min(end),
                        (start + (w + 1) * per_worker).min(end),
                    );
                    let timeline = &timeline;
                    scope.spawn(move || {
                        (from..to)
                            .map(|seq| entry_facts(store, seq, verifier.name(), timeline))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| vec![Err(bad(start, "a verification thread failed"))])
                })
                .collect()
        });
        for (seq, facts) in (start..end).zip(facts) {
            let facts = facts?;
            if facts.prev_hash != prev_hash {
                return Err(bad(
                    seq,
                    "prev_hash does not match the previous entry's hash (chain broken)",
                ));
            }
            prev_hash = facts.entry_hash;
            for (level, index, hash) in frontier.push(facts.leaf) {
                if store.node(level, index)? != Some(hash) {
                    return Err(bad(
                        seq,
                        format!("stored tree node ({level}, {index}) does not match the entries"),
                    ));
                }
            }
            while let Some((checkpoint_size, note)) =
                next_checkpoint.next_if(|(s, _)| *s == seq + 1)
            {
                check_checkpoint(timeline.key_at(seq), *checkpoint_size, note, &frontier)?;
            }
        }
        start = end;
    }
    if let Some((checkpoint_size, _)) = next_checkpoint.next() {
        return Err(bad(
            size,
            format!(
                "a checkpoint covers {checkpoint_size} entries but only {size} are stored (log truncated)"
            ),
        ));
    }
    let latest = checkpoints.last().map_or(0, |(s, _)| *s);
    if latest != size {
        return Err(bad(
            latest,
            format!("{size} entries stored but the latest checkpoint covers {latest}"),
        ));
    }
    Ok(Verified {
        entries: size,
        checkpoints: checkpoints.len() as u64,
        latest_checkpoint_size: latest,
    })
}

/// Everything about entry `seq` that needs no other entry.
fn entry_facts(
    store: &dyn LedgerStore,
    seq: u64,
    origin: &str,
    timeline: &KeyTimeline,
) -> Result<EntryFacts, VerifyError> {
    let bytes = store.entry(seq)?.ok_or_else(|| bad(seq, "entry missing"))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad(seq, "entry is not UTF-8"))?;
    let entry = parse_strict(text).map_err(|err| bad(seq, format!("entry is not JSON: {err}")))?;
    if to_canonical(&entry).map_err(|err| bad(seq, err.to_string()))? != bytes {
        return Err(bad(seq, "entry bytes are not canonical (RFC 8785)"));
    }
    if entry["seq"].as_u64() != Some(seq) {
        return Err(bad(seq, format!("entry says seq {}", entry["seq"])));
    }
    if entry["origin"].as_str() != Some(origin) {
        return Err(bad(
            seq,
            format!("origin {} is not {origin}", entry["origin"]),
        ));
    }
    if let Some(signature) = store.entry_signature(seq)? {
        if !timeline.key_at(seq).verify_entry(&bytes, &signature) {
            return Err(bad(seq, "per-entry signature does not verify"));
        }
    }
    if let (Some("decision"), Some(id)) = (entry["kind"].as_str(), entry["decision_id"].as_str()) {
        let indexed = crate::decision::DecisionId::parse(id)
            .map(|id| store.decision_seq(id.as_bytes()))
            .transpose()?
            .flatten();
        if indexed != Some(seq) {
            return Err(bad(
                seq,
                format!("decision index does not point at this entry for {id}"),
            ));
        }
    }
    Ok(EntryFacts {
        prev_hash: entry["prev_hash"].as_str().unwrap_or("").to_owned(),
        entry_hash: hex(blake3::hash(&bytes).as_bytes()),
        leaf: leaf_hash(&bytes),
    })
}

fn check_checkpoint(
    verifier: &NoteVerifier,
    size: u64,
    note: &str,
    frontier: &Frontier,
) -> Result<(), VerifyError> {
    let seq = size - 1;
    let body = verifier
        .open(note)
        .map_err(|err| bad(seq, format!("checkpoint at size {size}: {err}")))?;
    let checkpoint = Checkpoint::parse(body)
        .map_err(|err| bad(seq, format!("checkpoint at size {size}: {err}")))?;
    if checkpoint.size != size || checkpoint.origin != verifier.name() {
        return Err(bad(
            seq,
            format!(
                "checkpoint stored at size {size} says size {}",
                checkpoint.size
            ),
        ));
    }
    if checkpoint.root != frontier.root() {
        return Err(bad(
            seq,
            format!("checkpoint at size {size}: root does not match the entries"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
