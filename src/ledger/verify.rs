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

/// The keys a log was signed with, oldest first, from its `key_rotated`
/// entries; the last must be `current`.
fn key_history(
    store: &dyn LedgerStore,
    size: u64,
    current: &NoteVerifier,
) -> Result<Vec<NoteVerifier>, VerifyError> {
    let mut rotations = Vec::new();
    for seq in 0..size {
        if let Some(rotation) = store.entry(seq)?.as_deref().and_then(key_rotation) {
            rotations.push((seq, rotation));
        }
    }
    let Some((first_seq, (first_old, _))) = rotations.first() else {
        return Ok(vec![current.clone()]);
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
    Ok(keys)
}

/// Verifies the whole store against `verifier`: the log's current key and
/// origin. Key rotations are followed: each batch is checked with the key
/// in force when it began (a `key_rotated` entry changes the key for the
/// batches after its own).
pub fn verify_store(
    store: &dyn LedgerStore,
    verifier: &NoteVerifier,
) -> Result<Verified, VerifyError> {
    let size = store.size()?;
    let checkpoints = store.checkpoints()?;
    let mut next_checkpoint = checkpoints.iter().peekable();
    let mut keys = key_history(store, size, verifier)?.into_iter();
    let mut batch_key = keys.next().ok_or_else(|| bad(0, "no key"))?;
    let mut rotated_in_batch = false;
    let mut frontier = Frontier::new();
    let mut prev_hash = GENESIS_PREV_HASH.to_owned();
    for seq in 0..size {
        let bytes = store.entry(seq)?.ok_or_else(|| bad(seq, "entry missing"))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad(seq, "entry is not UTF-8"))?;
        let entry =
            parse_strict(text).map_err(|err| bad(seq, format!("entry is not JSON: {err}")))?;
        if to_canonical(&entry).map_err(|err| bad(seq, err.to_string()))? != bytes {
            return Err(bad(seq, "entry bytes are not canonical (RFC 8785)"));
        }
        if entry["seq"].as_u64() != Some(seq) {
            return Err(bad(seq, format!("entry says seq {}", entry["seq"])));
        }
        if entry["origin"].as_str() != Some(verifier.name()) {
            return Err(bad(
                seq,
                format!("origin {} is not {}", entry["origin"], verifier.name()),
            ));
        }
        if entry["prev_hash"].as_str() != Some(prev_hash.as_str()) {
            return Err(bad(
                seq,
                "prev_hash does not match the previous entry's hash (chain broken)",
            ));
        }
        if entry["kind"] == "key_rotated" {
            rotated_in_batch = true;
        }
        if let Some(signature) = store.entry_signature(seq)? {
            if !batch_key.verify_entry(&bytes, &signature) {
                return Err(bad(seq, "per-entry signature does not verify"));
            }
        }
        prev_hash = hex(blake3::hash(&bytes).as_bytes());
        let leaf = leaf_hash(&bytes);
        for (level, index, hash) in frontier.push(leaf) {
            if store.node(level, index)? != Some(hash) {
                return Err(bad(
                    seq,
                    format!("stored tree node ({level}, {index}) does not match the entries"),
                ));
            }
        }
        if let (Some("decision"), Some(id)) =
            (entry["kind"].as_str(), entry["decision_id"].as_str())
        {
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
        while let Some((checkpoint_size, note)) = next_checkpoint.next_if(|(s, _)| *s == seq + 1) {
            check_checkpoint(&batch_key, *checkpoint_size, note, &frontier)?;
            if rotated_in_batch {
                rotated_in_batch = false;
                if let Some(next) = keys.next() {
                    batch_key = next;
                }
            }
        }
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
