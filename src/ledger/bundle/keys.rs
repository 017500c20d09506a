//! Which key signs what inside a bundle: the `key_rotated` entries followed
//! in order from the key in force at the bundle's `from`
//! (docs/audit-format.md section 11).

use super::lines::BundleEntry;
use super::{BundleError, bad_seq};
use crate::ledger::checkpoint::NoteVerifier;

/// A followed `key_rotated` entry.
#[derive(Clone)]
struct Rotation {
    seq: u64,
    old: NoteVerifier,
    new: NoteVerifier,
}

/// The key in force at the start, and the rotations after it, in seq order.
#[derive(Clone)]
pub(crate) struct KeySchedule {
    first: NoteVerifier,
    rotations: Vec<Rotation>,
}

impl KeySchedule {
    /// Follows the `key_rotated` entries among `entries` (in seq order) from
    /// `first`, as [`KeySchedule::push`] each.
    pub(crate) fn follow<'e>(
        first: NoteVerifier,
        entries: impl IntoIterator<Item = &'e BundleEntry>,
        origin: &str,
    ) -> Result<Self, BundleError> {
        let mut schedule = Self::new(first);
        for entry in entries {
            schedule.push(entry, origin)?;
        }
        Ok(schedule)
    }

    /// No rotation yet: `first` is in force.
    pub(crate) fn new(first: NoteVerifier) -> Self {
        Self {
            first,
            rotations: Vec::new(),
        }
    }

    /// Takes in the next entry (in seq order); a `key_rotated` one must name
    /// two keys in canonical form, named after the log's origin, its
    /// `old_vkey` the key in force.
    pub(crate) fn push(&mut self, entry: &BundleEntry, origin: &str) -> Result<(), BundleError> {
        // A scanned entry (`fields`) is a decision or a stream's end.
        if entry.kind() != Some("key_rotated") {
            return Ok(());
        }
        let seq = entry.seq;
        let key = |member: &str| {
            let text = entry.value[member].as_str().ok_or_else(|| {
                bad_seq(
                    seq,
                    format!("key_rotated: {member} is missing or not a string"),
                )
            })?;
            let key = NoteVerifier::parse(text).map_err(|err| {
                bad_seq(
                    seq,
                    format!("key_rotated: {member} is not a verifier key: {err}"),
                )
            })?;
            if key.vkey() != text {
                return Err(bad_seq(
                    seq,
                    format!(
                        "key_rotated: {member} is not in canonical form ({})",
                        key.vkey()
                    ),
                ));
            }
            if key.name() != origin {
                return Err(bad_seq(
                    seq,
                    format!("key_rotated: {member} is not named after the origin {origin:?}"),
                ));
            }
            Ok(key)
        };
        let (old, new) = (key("old_vkey")?, key("new_vkey")?);
        let in_force = self.key_after(seq);
        if old != *in_force {
            return Err(bad_seq(
                seq,
                format!(
                    "key_rotated: old_vkey {} is not the key in force, {}",
                    old.vkey(),
                    in_force.vkey()
                ),
            ));
        }
        self.rotations.push(Rotation { seq, old, new });
        Ok(())
    }

    /// The key in force after every rotation below seq `below`.
    fn key_after(&self, below: u64) -> &NoteVerifier {
        self.rotations
            .iter()
            .take_while(|r| r.seq < below)
            .last()
            .map_or(&self.first, |r| &r.new)
    }

    /// The key of seq's per-entry signature: the key in force for its batch.
    /// A `key_rotated` entry is alone in its batch, under its old key, so
    /// this is the key after every rotation below `seq`.
    pub(crate) fn entry_key(&self, seq: u64) -> &NoteVerifier {
        self.key_after(seq)
    }

    /// The key that signs the checkpoint of `size`, and why: the `old_vkey`
    /// of entry `size - 1` if it is a rotation (its own batch), otherwise
    /// the key after every rotation below `size`.
    pub(crate) fn checkpoint_key(&self, size: u64) -> (&NoteVerifier, String) {
        if let Some(last) = self.rotations.iter().find(|r| r.seq + 1 == size) {
            return (
                &last.old,
                format!("the old_vkey of the key_rotated at seq {}", last.seq),
            );
        }
        match self.rotations.iter().take_while(|r| r.seq < size).last() {
            Some(by) => (
                &by.new,
                format!("the new_vkey of the key_rotated at seq {}", by.seq),
            ),
            None => (&self.first, "the key in force at from".to_owned()),
        }
    }

    /// The seqs of the rotations followed.
    pub(crate) fn rotation_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.rotations.iter().map(|r| r.seq)
    }

    /// The rotations followed with a seq in `range`: seq, old and new key.
    pub(crate) fn rotations_in(&self, range: std::ops::Range<u64>) -> Vec<(u64, String, String)> {
        self.rotations
            .iter()
            .filter(|r| range.contains(&r.seq))
            .map(|r| (r.seq, r.old.vkey(), r.new.vkey()))
            .collect()
    }

    /// Rotations followed.
    pub(crate) fn count(&self) -> u64 {
        self.rotations.len() as u64
    }

    /// Every key the schedule knows, the first one first.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &NoteVerifier> {
        std::iter::once(&self.first).chain(self.rotations.iter().map(|r| &r.new))
    }
}
