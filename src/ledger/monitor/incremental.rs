//! Incremental verification: the entries appended since the last verified
//! checkpoint, checked against the state that checkpoint left (the chain's
//! last hash and the tree's frontier, both verified then), so each round
//! costs what was appended, not the whole log.
//!
//! Checked for each new entry: its `seq` and `origin`, its `prev_hash`
//! (the chain), its leaf and every tree node it completes against the
//! stored ones; for each new checkpoint: its signature (by the key in
//! force, following `key_rotated` entries), origin, size and the root
//! recomputed from the entries. Per-entry signatures, the decision index
//! and stream links are left to the full verification.

use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::entry::{hex, key_rotation};
use crate::ledger::store::{LedgerStore, StoreNodes};
use crate::ledger::tree::{Frontier, NodeSource, leaf_hash};
use crate::ledger::verify::VerifyError;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a verified checkpoint leaves for the next round.
#[derive(Clone)]
pub(super) struct Anchor {
    /// The verified checkpoint's size.
    pub(super) size: u64,
    /// BLAKE3 of entry `size - 1` (zeros for an empty log).
    prev_hash: [u8; 32],
    frontier: Frontier,
    /// The key that signs the batches after `size`.
    key: NoteVerifier,
}

/// What one incremental round covered.
pub(super) struct Covered {
    /// Entries of other kinds than `ledger_verified` among those checked.
    pub(super) others: u64,
}

fn bad(seq: u64, reason: impl Into<String>) -> VerifyError {
    VerifyError::Bad {
        seq,
        reason: reason.into(),
    }
}

impl Anchor {
    /// The anchor at `size`, a checkpoint size a full verification just
    /// vouched for (its nodes and last entry are read back from the store).
    pub(super) fn after_full(
        store: &dyn LedgerStore,
        size: u64,
        key: NoteVerifier,
    ) -> Result<Anchor, VerifyError> {
        let frontier = Frontier::load(&StoreNodes(store), size)?;
        let prev_hash = match size.checked_sub(1) {
            Some(last) => {
                let bytes = store
                    .entry(last)?
                    .ok_or_else(|| bad(last, "entry missing"))?;
                *blake3::hash(&bytes).as_bytes()
            }
            None => [0; 32],
        };
        Ok(Anchor {
            size,
            prev_hash,
            frontier,
            key,
        })
    }

    /// Checks entries from the anchor up to the latest checkpoint,
    /// checkpoint by checkpoint; moves the anchor along as each one
    /// verifies. `rest` is called after every `chunk` entries (it paces
    /// the round); `stop` ends it early ([`VerifyError::Stopped`]).
    pub(super) fn advance(
        &mut self,
        store: &dyn LedgerStore,
        chunk: u64,
        stop: &AtomicBool,
        rest: &mut dyn FnMut(u64, u64),
    ) -> Result<Covered, VerifyError> {
        let target = store.latest_checkpoint()?.map_or(0, |(size, _)| size);
        if target < self.size {
            return Err(bad(
                target,
                format!(
                    "the latest checkpoint covers {target} entries, but {} were verified before",
                    self.size
                ),
            ));
        }
        let start = self.size;
        let mut covered = Covered { others: 0 };
        while self.size < target {
            if stop.load(Ordering::Acquire) {
                return Err(VerifyError::Stopped);
            }
            let (size, note) = store
                .checkpoint_covering(self.size)?
                .ok_or_else(|| bad(self.size, "no checkpoint covers this entry"))?;
            let mut next = self.clone();
            let mut rotated_to: Option<NoteVerifier> = None;
            let mut seq = self.size;
            while seq < size {
                let end = seq.saturating_add(chunk).min(size);
                next.entries(store, seq, end, &mut rotated_to, &mut covered)?;
                seq = end;
                rest(seq - start, target - start);
                if stop.load(Ordering::Acquire) {
                    return Err(VerifyError::Stopped);
                }
            }
            next.checkpoint(size, &note)?;
            if let Some(key) = rotated_to {
                next.key = key;
            }
            *self = next;
        }
        Ok(covered)
    }

    /// Checks entries `from..to` onto this state.
    fn entries(
        &mut self,
        store: &dyn LedgerStore,
        from: u64,
        to: u64,
        rotated_to: &mut Option<NoteVerifier>,
        covered: &mut Covered,
    ) -> Result<(), VerifyError> {
        let mut expected = from;
        let mut problem: Option<VerifyError> = None;
        store.entries_in(from, to, &mut |seq, bytes| match self
            .entry(store, expected, seq, bytes, rotated_to, covered)
        {
            Ok(()) => {
                expected += 1;
                ControlFlow::Continue(())
            }
            Err(err) => {
                problem = Some(err);
                ControlFlow::Break(())
            }
        })?;
        if let Some(problem) = problem {
            return Err(problem);
        }
        if expected != to {
            return Err(bad(expected, "entry missing"));
        }
        Ok(())
    }

    fn entry(
        &mut self,
        store: &dyn LedgerStore,
        expected: u64,
        seq: u64,
        bytes: &[u8],
        rotated_to: &mut Option<NoteVerifier>,
        covered: &mut Covered,
    ) -> Result<(), VerifyError> {
        if seq != expected {
            return Err(bad(expected, "entry missing"));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|err| bad(seq, format!("not JSON: {err}")))?;
        if value["seq"].as_u64() != Some(seq) {
            return Err(bad(seq, "its `seq` member is not its position"));
        }
        if value["origin"].as_str() != Some(self.key.name()) {
            return Err(bad(seq, "its `origin` is not the log's"));
        }
        if value["prev_hash"].as_str() != Some(hex(&self.prev_hash).as_str()) {
            return Err(bad(
                seq,
                "prev_hash does not match the previous entry (chain broken)",
            ));
        }
        if value["kind"] != "ledger_verified" {
            covered.others += 1;
        }
        if let Some((old_vkey, new_vkey)) = key_rotation(bytes) {
            let in_force = rotated_to.as_ref().unwrap_or(&self.key);
            if old_vkey != in_force.vkey() {
                return Err(bad(seq, "key_rotated: old_vkey is not the key in force"));
            }
            let new = NoteVerifier::parse(&new_vkey)
                .map_err(|err| bad(seq, format!("key_rotated names an invalid key: {err}")))?;
            *rotated_to = Some(new);
        }
        for (level, index, hash) in self.frontier.push(leaf_hash(bytes)) {
            if StoreNodes(store).node(level, index)? != hash {
                return Err(bad(
                    seq,
                    format!("stored tree node ({level}, {index}) does not match the entries"),
                ));
            }
        }
        self.prev_hash = *blake3::hash(bytes).as_bytes();
        Ok(())
    }

    /// Checks the checkpoint at `size` against the recomputed tree.
    fn checkpoint(&mut self, size: u64, note: &str) -> Result<(), VerifyError> {
        let last = size.saturating_sub(1);
        let body = self
            .key
            .open(note)
            .map_err(|err| bad(last, format!("checkpoint at size {size}: {err}")))?;
        let checkpoint = Checkpoint::parse(body)
            .map_err(|err| bad(last, format!("checkpoint at size {size}: {err}")))?;
        if checkpoint.origin != self.key.name() || checkpoint.size != size {
            return Err(bad(
                last,
                format!("checkpoint at size {size} names another log or size"),
            ));
        }
        if checkpoint.root != self.frontier.root() {
            return Err(bad(
                last,
                format!("checkpoint at size {size}: its root is not the entries' tree root"),
            ));
        }
        self.size = size;
        Ok(())
    }
}
