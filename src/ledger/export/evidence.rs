//! What a contiguous bundle carries besides its entries so a verifier can
//! say what it knows (docs/audit-format.md section 8.1): the batch
//! checkpoints it covers with the consistency proofs between them, the
//! entries outside its range it depends on (key rotations, the
//! `entry_signatures` setting in force at `from`, erasures of its payloads
//! recorded after `to`) each with an inclusion proof, and the log's key
//! chain for the manifest.

use super::ExportError;
use super::out::BundleOut;
use crate::ledger::entry::key_rotation;
use crate::ledger::seq_set::SeqSet;
use crate::ledger::store::{LedgerStore, StoreError, StoreNodes};
use crate::ledger::tree::{consistency_proof, inclusion_proof};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// The `kind` of the entry recording the `entry_signatures` setting.
pub const SIGNATURES_KIND: &str = "entry_signatures_set";

/// A `key_rotated` entry of the log.
pub(crate) struct Rotation {
    pub(crate) seq: u64,
    pub(crate) old_vkey: String,
    pub(crate) new_vkey: String,
}

/// What one scan of the log found for a bundle of `from..to`.
pub(crate) struct Scan {
    /// Every `key_rotated` entry up to the latest checkpoint.
    pub(crate) rotations: Vec<Rotation>,
    /// The last `entry_signatures_set` entry before `from`.
    pub(crate) setting_before: Option<u64>,
    /// `payload_erased` entries at or after `to` naming a seq in `from..to`
    /// (after retention ran over the range, one for nearly every decision
    /// in it: a bit each).
    pub(crate) erasures_after: SeqSet,
}

impl Scan {
    fn empty() -> Self {
        Scan {
            rotations: Vec::new(),
            setting_before: None,
            erasures_after: SeqSet::new(),
        }
    }
}

/// The bytes every `entry_signatures_set` entry holds.
fn setting_mark() -> String {
    format!("\"kind\":\"{SIGNATURES_KIND}\"")
}

pub(super) fn has(entry: &[u8], mark: &[u8]) -> bool {
    // A substring search, not a comparison at every offset: the export
    // looks for two marks in every entry of the log.
    memchr::memmem::find(entry, mark).is_some()
}

/// What a full verification of `0..below` found out on its way: the seqs
/// of its `key_rotated` entries (none when the log never rotated), so an
/// export right after it need not read those entries again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownRotations {
    /// The verification read `0..below`.
    pub below: u64,
    /// Every `key_rotated` entry in `0..below`, ascending.
    pub seqs: Vec<u64>,
}

/// Reads `0..end` once (a byte search spares parsing most entries).
pub(crate) fn scan(
    store: &dyn LedgerStore,
    from: u64,
    to: u64,
    end: u64,
) -> Result<Scan, StoreError> {
    let (mut found, setting_mark) = (Scan::empty(), setting_mark());
    store.entries_in(0, end, &mut |seq, entry| {
        look(&mut found, seq, entry, from, to, setting_mark.as_bytes());
        ControlFlow::Continue(())
    })?;
    Ok(found)
}

/// [`scan`] reading only what `known` leaves open: the rotations below
/// `known.below` from their seqs, the setting before `from` from the
/// store's governance index (`entry_signatures_set` entries are
/// governance entries), and every entry from `known.below` or `to`,
/// whichever is first, on. Finds what [`scan`] finds.
pub(crate) fn scan_known(
    store: &dyn LedgerStore,
    from: u64,
    to: u64,
    end: u64,
    known: &KnownRotations,
) -> Result<Scan, StoreError> {
    let (mut found, setting_mark) = (Scan::empty(), setting_mark());
    let rest = known.below.min(to).min(end);
    for &seq in known.seqs.iter().filter(|seq| **seq < rest) {
        let entry = store
            .entry(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} missing")))?;
        look(&mut found, seq, &entry, from, to, setting_mark.as_bytes());
    }
    for seq in store.governance_seqs()? {
        if seq >= from.min(rest) {
            break;
        }
        if let Some(entry) = store.entry(seq)?
            && has(&entry, setting_mark.as_bytes())
        {
            found.setting_before = Some(seq);
        }
    }
    store.entries_in(rest, end, &mut |seq, entry| {
        look(&mut found, seq, entry, from, to, setting_mark.as_bytes());
        ControlFlow::Continue(())
    })?;
    Ok(found)
}

/// What entry `seq` adds to `found`.
fn look(found: &mut Scan, seq: u64, entry: &[u8], from: u64, to: u64, setting_mark: &[u8]) {
    if has(entry, br#""kind":"key_rotated""#) {
        if let Some((old_vkey, new_vkey)) = key_rotation(entry) {
            found.rotations.push(Rotation {
                seq,
                old_vkey,
                new_vkey,
            });
        }
    } else if seq < from && has(entry, setting_mark) {
        found.setting_before = Some(seq);
    } else if seq >= to && has(entry, br#""kind":"payload_erased""#) {
        let erased = serde_json::from_slice::<Value>(entry)
            .ok()
            .and_then(|value| value["erased_seq"].as_u64());
        if erased.is_some_and(|erased| (from..to).contains(&erased)) {
            found.erasures_after.insert(seq);
        }
    }
}

/// Writes `checkpoints.jsonl` and, when it has lines, `context.jsonl` for
/// a bundle `from..to` (`to` a checkpoint size) into `dir`. `every` thins
/// the covered checkpoints to every K-th (the one of size `to` and each
/// rotation's own are always kept). Context entries are proven into the
/// last checkpoint listed: the latest one when erasures after `to` are
/// carried, else the one of size `to`. The batches are walked one lookup
/// at a time and the lines written as they come, so memory stays small
/// whatever the log's length.
pub(crate) fn write(
    out: &mut dyn BundleOut,
    store: &dyn LedgerStore,
    found: &Scan,
    from: u64,
    to: u64,
    every: u64,
) -> Result<(), ExportError> {
    let target = target(store, found, to)?;
    let outside = |seq: u64| seq < from || seq >= to;
    let mut few: BTreeSet<u64> = found
        .rotations
        .iter()
        .map(|r| r.seq)
        .filter(|seq| outside(*seq) && *seq < target)
        .collect();
    few.extend(found.setting_before);

    let nodes = StoreNodes(store);
    let want_checkpoints = out.wants("checkpoints.jsonl");
    if want_checkpoints {
        let always = always(found, to, target);
        write_checkpoints(out, store, always, from, to, every)?;
    }
    if !out.wants("context.jsonl") {
        return Ok(());
    }
    for seq in in_order(few, &found.erasures_after) {
        let bytes = store
            .entry(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} missing")))?;
        let entry: Value = serde_json::from_slice(&bytes)
            .map_err(|_| StoreError::Corrupt(format!("entry {seq} is not JSON")))?;
        let path = inclusion_proof(&nodes, seq, target)
            .map_err(|err| StoreError::Corrupt(format!("inclusion proof of {seq}: {err}")))?;
        let path: Vec<String> = path.iter().map(|hash| BASE64.encode(hash)).collect();
        let line = serde_json::json!({ "seq": seq, "size": target, "entry": entry, "path": path });
        out.append("context.jsonl", format!("{line}\n").as_bytes())?;
    }
    Ok(())
}

/// The context's seqs in increasing order: the few (rotations, the
/// setting) merged into the erasures, which are walked, never copied.
fn in_order(few: BTreeSet<u64>, erasures: &SeqSet) -> impl Iterator<Item = u64> + '_ {
    let mut few = few.into_iter().peekable();
    let mut erasures = erasures.iter().peekable();
    std::iter::from_fn(move || match (few.peek(), erasures.peek()) {
        (Some(a), Some(b)) if a == b => {
            erasures.next();
            few.next()
        }
        (Some(a), Some(b)) if a < b => few.next(),
        (Some(_), None) => few.next(),
        _ => erasures.next(),
    })
}

/// The size of the last checkpoint listed: the latest one when erasures
/// after `to` are carried, else `to`.
fn target(store: &dyn LedgerStore, found: &Scan, to: u64) -> Result<u64, StoreError> {
    Ok(if found.erasures_after.is_empty() {
        to
    } else {
        store.latest_checkpoint()?.map_or(to, |(size, _)| size)
    })
}

/// The checkpoint sizes carried whatever `every` says: `to`, `target`,
/// and each rotation's own batch up to `target`.
fn always(found: &Scan, to: u64, target: u64) -> BTreeSet<u64> {
    // Each rotation's own batch is signed by the old key: that checkpoint
    // proves the rotation is the old key's doing.
    let mut always: BTreeSet<u64> = found
        .rotations
        .iter()
        .map(|r| r.seq + 1)
        .filter(|size| *size <= target)
        .collect();
    always.extend([to, target]);
    always
}

/// The carried checkpoints of a size in `from + 1..=to`, in order, as
/// `checkpoints.jsonl` lists them: every `every`-th batch checkpoint, and
/// those carried always. Walked one lookup at a time, nothing held.
pub(crate) struct InRange<'s> {
    store: &'s dyn LedgerStore,
    always: BTreeSet<u64>,
    to: u64,
    every: u64,
    at: u64,
    count: u64,
}

impl<'s> InRange<'s> {
    /// The carried checkpoints inside `from..to` of a bundle whose scan
    /// found `found`.
    pub(crate) fn new(
        store: &'s dyn LedgerStore,
        found: &Scan,
        from: u64,
        to: u64,
        every: u64,
    ) -> Result<Self, StoreError> {
        let target = target(store, found, to)?;
        Ok(Self::with(
            store,
            always(found, to, target),
            from,
            to,
            every,
        ))
    }

    fn with(
        store: &'s dyn LedgerStore,
        always: BTreeSet<u64>,
        from: u64,
        to: u64,
        every: u64,
    ) -> Self {
        Self {
            store,
            always,
            to,
            every: every.max(1),
            at: from,
            count: 0,
        }
    }
}

impl Iterator for InRange<'_> {
    /// `(size, note)`.
    type Item = Result<(u64, String), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.at < self.to {
            let (size, note) = match self.store.checkpoint_covering(self.at) {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(err) => {
                    self.at = self.to;
                    return Some(Err(err));
                }
            };
            self.count += 1;
            self.at = size;
            if self.count.is_multiple_of(self.every)
                || self.always.contains(&size)
                || size >= self.to
            {
                return Some(Ok((size, note)));
            }
        }
        self.at = self.to;
        None
    }
}

/// `checkpoints.jsonl`: the batch checkpoints of `from..to`, every
/// `every`-th, those of `always` besides, each with its consistency proof
/// from the one before.
fn write_checkpoints(
    out: &mut dyn BundleOut,
    store: &dyn LedgerStore,
    always: BTreeSet<u64>,
    from: u64,
    to: u64,
    every: u64,
) -> Result<(), ExportError> {
    out.touch("checkpoints.jsonl")?;
    let nodes = StoreNodes(store);
    let mut previous: Option<u64> = None;
    let mut emit = |size: u64, note: &str| -> Result<(), ExportError> {
        let proof = match previous {
            Some(old) => consistency_proof(&nodes, old, size).map_err(|err| {
                StoreError::Corrupt(format!("consistency proof {old} -> {size}: {err}"))
            })?,
            None => Vec::new(),
        };
        let proof: Vec<String> = proof.iter().map(|hash| BASE64.encode(hash)).collect();
        previous = Some(size);
        let line = serde_json::json!({ "size": size, "checkpoint": note, "consistency": proof });
        out.append("checkpoints.jsonl", format!("{line}\n").as_bytes())
    };
    // The checkpoint of exactly `size`, when a batch ends there.
    let exactly = |size: u64| -> Result<Option<String>, StoreError> {
        Ok(store
            .checkpoint_covering(size - 1)?
            .filter(|(found, _)| *found == size)
            .map(|(_, note)| note))
    };
    for size in always.range(..=from) {
        if let Some(note) = exactly(*size)? {
            emit(*size, &note)?;
        }
    }
    let after: Vec<u64> = always.range(to + 1..).copied().collect();
    for carried in InRange::with(store, always, from, to, every) {
        let (size, note) = carried?;
        emit(size, &note)?;
    }
    for size in after {
        if let Some(note) = exactly(size)? {
            emit(size, &note)?;
        }
    }
    Ok(())
}

/// The manifest's `first_vkey` and `rotations`: the log's first key (the
/// `old_vkey` of its first rotation, or `current` when it never rotated)
/// and every rotation, in order.
pub(crate) fn key_chain(found: &Scan, current: &str) -> (String, Value) {
    let first = found
        .rotations
        .first()
        .map_or(current.to_owned(), |r| r.old_vkey.clone());
    let chain = found
        .rotations
        .iter()
        .map(
            |r| serde_json::json!({ "seq": r.seq, "old_vkey": r.old_vkey, "new_vkey": r.new_vkey }),
        )
        .collect();
    (first, Value::Array(chain))
}
