//! `context.jsonl` (docs/audit-format.md section 8.1): the entries outside
//! a bundle's range that it depends on, each with its inclusion path into
//! the last carried checkpoint, read a line at a time. The key rotations
//! and the `entry_signatures` setting are kept (a log has few); the
//! erasures recorded after `to`, one for nearly every decision once
//! payload retention has run over the range, only as the seqs they name
//! and the roots their paths lead to, so the verifier's memory does not
//! grow with them.

use super::digest::{Digest, Lines};
use super::evidence::hashes;
use super::lines::{BundleEntry, read_entries};
use super::{BundleError, bad, bad_seq};
use crate::ledger::canonical::{parse_strict, to_canonical};
use crate::ledger::seq_set::SeqSet;
use crate::ledger::tree::{Hash, inclusion_root, leaf_hash};
use std::path::Path;

/// What `context.jsonl` gives a verifier.
#[derive(Clone, Default)]
pub(super) struct Context {
    /// Every line's entry but the erasures', in seq order: what the key
    /// schedule and the signature setting follow.
    pub(super) entries: Vec<BundleEntry>,
    /// The seqs the `payload_erased` lines name.
    pub(super) erased: SeqSet,
    /// Where the lines' paths lead: the first line of each distinct size
    /// and root, at most [`KEPT_PROOFS`] of them.
    proofs: Vec<Proof>,
    /// The file's lines and SHA-256, taken as it was read (`None`: absent).
    pub(super) digest: Option<Digest>,
}

/// The first line whose path leads to `root` in a tree of `size`.
#[derive(Clone, PartialEq, Eq)]
struct Proof {
    size: u64,
    /// `None`: the path cannot be one of `seq` in a tree of `size`.
    root: Option<Hash>,
    /// The line, from 0.
    line: u64,
    seq: u64,
}

/// Every line must lead to the one root of the last carried checkpoint,
/// so of all the (size, root) pairs the lines give at most one is sound.
/// The first bad line is the first of its pair; had two other pairs come
/// first, one of them would be bad and earlier. So the first two pairs,
/// each with its first line, decide as all of the lines would.
const KEPT_PROOFS: usize = 2;

/// `context.jsonl`, when present: entries outside `from..to` in increasing
/// seq order, each with its inclusion path into the checkpoint of its
/// `size` (checked against the last carried one by [`Context::proven`]).
pub(super) fn read_context(
    dir: &Path,
    origin: &str,
    from: u64,
    to: u64,
) -> Result<Context, BundleError> {
    const FILE: &str = "context.jsonl";
    let mut context = Context::default();
    let Some(mut lines) = Lines::open(dir, FILE)? else {
        return Ok(context);
    };
    let mut last_seq: Option<u64> = None;
    while let Some((number, raw)) = lines.next_line()? {
        let item = format!("{FILE} line {number}");
        let value = std::str::from_utf8(&raw)
            .ok()
            .and_then(|text| parse_strict(text).ok())
            .ok_or_else(|| bad(&item, "not JSON"))?;
        let (Some(size), Some(path)) = (value["size"].as_u64(), hashes(&value["path"])) else {
            return Err(bad(&item, "needs size, entry and path (base64 hashes)"));
        };
        let canonical = to_canonical(&value["entry"]).map_err(|err| bad(&item, err.to_string()))?;
        let mut entries = read_entries(&canonical, origin)?;
        let entry = entries
            .pop()
            .filter(|_| entries.is_empty())
            .ok_or_else(|| bad(&item, "entry is not one entry"))?;
        if value["seq"].as_u64() != Some(entry.seq) {
            return Err(bad(&item, "seq is not the entry's"));
        }
        if (from..to).contains(&entry.seq) {
            return Err(bad_seq(
                entry.seq,
                format!("{item}: a context entry inside the bundle's range"),
            ));
        }
        if last_seq.is_some_and(|last| last >= entry.seq) {
            return Err(bad(&item, "seqs do not increase"));
        }
        last_seq = Some(entry.seq);
        context.note_proof(Proof {
            size,
            root: inclusion_root(&leaf_hash(&entry.bytes), entry.seq, size, &path),
            line: number as u64 - 1,
            seq: entry.seq,
        });
        let erased = (entry.value["kind"] == "payload_erased")
            .then(|| entry.value["erased_seq"].as_u64())
            .flatten();
        match erased {
            Some(seq) => {
                context.erased.insert(seq);
            }
            None => context.entries.push(entry),
        }
    }
    context.digest = Some(lines.finish()?);
    Ok(context)
}

impl Context {
    fn note_proof(&mut self, proof: Proof) {
        let known = self
            .proofs
            .iter()
            .any(|kept| kept.size == proof.size && kept.root == proof.root);
        if !known && self.proofs.len() < KEPT_PROOFS {
            self.proofs.push(proof);
        }
    }

    /// Every line's path leads to the root of the last carried checkpoint
    /// (`last`, its size; `root`, its root). The error comes with the
    /// line it is about (from 0), for the order of problems.
    pub(super) fn proven(&self, last: u64, root: Option<&Hash>) -> Result<(), (u64, BundleError)> {
        for proof in &self.proofs {
            let Some(root) = root.filter(|_| proof.size == last) else {
                let reason = format!(
                    "context entry: proven into size {}, not the last carried checkpoint ({last})",
                    proof.size
                );
                return Err((proof.line, bad_seq(proof.seq, reason)));
            };
            if proof.root.as_ref() != Some(root) {
                let reason = format!(
                    "context entry: its inclusion proof into the checkpoint of size {} does not \
                     verify",
                    proof.size
                );
                return Err((proof.line, bad_seq(proof.seq, reason)));
            }
        }
        Ok(())
    }

    /// The lines' entries before `from` (what the key and the setting at
    /// `from` follow from).
    pub(super) fn before(&self, from: u64) -> impl Iterator<Item = &BundleEntry> {
        self.entries.iter().filter(move |entry| entry.seq < from)
    }

    /// The lines' entries at or after `to`.
    pub(super) fn after(&self, to: u64) -> impl Iterator<Item = &BundleEntry> {
        self.entries.iter().filter(move |entry| entry.seq >= to)
    }

    /// The `entry_signatures` setting the lines before `from` leave: where
    /// recorded, and whether on.
    pub(super) fn setting_before(&self, from: u64) -> Option<(u64, bool)> {
        self.before(from)
            .filter(|entry| entry.value["kind"] == crate::ledger::export::SIGNATURES_KIND)
            .map(|entry| (entry.seq, entry.value["entry_signatures"] == "on"))
            .last()
    }
}
