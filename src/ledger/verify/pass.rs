//! One pass over a log, a round of entries at a time: the per-entry facts
//! on every core, and the checks that need order (chain, tree nodes,
//! checkpoints) on the calling thread, over the previous round's facts
//! while the other threads already read this round's entries.
//!
//! The store is read in ranges, not a lookup per seq: each thread reads a
//! block's entries (lent, not copied) and signatures at once, the calling
//! thread a round's stored nodes at once, and the decision index is read
//! a whole id second at a time (`index`).

use super::facts::{EntryFacts, entry_facts};
use super::index::{BlockLookups, DecisionIndex, Local};
use super::streams::StreamLinks;
use super::{KeyTimeline, Verified, VerifyError, bad};
use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::entry::GENESIS_PREV_HASH;
use crate::ledger::store::{LedgerStore, StoreError};
use crate::ledger::tree::{Hash, empty_root, node_hash};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries per round: bounds memory whatever the log's size (the facts of
/// two rounds are alive at once).
const CHUNK: u64 = 4096;

/// One entry's facts, or the reason it is bad.
type Facts = Result<EntryFacts, VerifyError>;

/// What one pass is allowed to assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keys {
    /// `timeline` is the log's real key history.
    Known,
    /// `timeline` assumes the log never rotated its key: stop (returning
    /// `None`) at the first entry that may be a rotation.
    AssumedUnrotated,
}

/// How much of the machine one pass may take.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits<'a> {
    /// Threads reading and checking entries; `None`: one per core.
    pub threads: Option<usize>,
    /// Once set, the pass stops at the next round ([`VerifyError::Stopped`]).
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
}

/// Checks entries `0..size` and `checkpoints` (sorted by size). The first
/// bad seq is named; with [`Keys::AssumedUnrotated`], `Ok(None)` means the
/// assumption did not hold and nothing was concluded. `progress` hears
/// (entries checked, `size`) after each chunk.
#[allow(
    clippy::too_many_arguments,
    reason = "two private call sites; the log, its keys and how to run are each one argument"
)]
pub(super) fn check_log(
    store: &dyn LedgerStore,
    origin: &str,
    timeline: &KeyTimeline,
    checkpoints: &[(u64, String)],
    size: u64,
    keys: Keys,
    limits: &Limits<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<Verified>, VerifyError> {
    let threads = limits.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut ordered = Ordered {
        store,
        timeline,
        checkpoints: checkpoints.iter().peekable(),
        peaks: Peaks::default(),
        // INVARIANT: the genesis value is 64 zeros, valid hex.
        prev_hash: super::facts::hex32(GENESIS_PREV_HASH).unwrap_or_default(),
        keys,
        stored_nodes: Vec::new(),
        node_ends: Vec::new(),
        streams: StreamLinks::default(),
    };
    let reader = Reader {
        store,
        origin,
        timeline,
        index: DecisionIndex::new(store),
    };
    let mut pending: Option<(u64, u64, Vec<Block>)> = None;
    let mut start = 0;
    while start < size || pending.is_some() {
        if limits.stop.is_some_and(|stop| stop.load(Ordering::Acquire)) {
            return Err(VerifyError::Stopped);
        }
        let end = start.saturating_add(CHUNK).min(size);
        let next = AtomicU64::new(start);
        let checking = pending.as_ref().map(|(_, end, _)| *end);
        let (mut blocks, carry_on, helpers_ok) = std::thread::scope(|scope| {
            // One thread fewer than there are cores: this thread first does
            // the previous chunk's ordered checks, then joins in, so every
            // core stays busy and none is shared.
            let helpers: Vec<_> = (1..threads)
                .map(|_| scope.spawn(|| reader.blocks(&next, end)))
                .collect();
            let carry_on = match pending.take() {
                Some((first, end, blocks)) => {
                    ordered.check_chunk(first, end, blocks.into_iter().flat_map(|(_, facts)| facts))
                }
                None => Ok(true),
            };
            let mut blocks = if matches!(carry_on, Ok(true)) {
                reader.blocks(&next, end)
            } else {
                // Stop handing out work that will not be looked at.
                next.store(end, Ordering::Relaxed);
                Vec::new()
            };
            let mut helpers_ok = true;
            for helper in helpers {
                match helper.join() {
                    Ok(more) => blocks.extend(more),
                    Err(_) => helpers_ok = false,
                }
            }
            (blocks, carry_on, helpers_ok)
        });
        if !carry_on? {
            return Ok(None);
        }
        if let Some(checked) = checking {
            progress(checked, size);
        }
        if !helpers_ok {
            return Err(bad(start, "a verification thread failed"));
        }
        blocks.sort_unstable_by_key(|(from, _)| *from);
        pending = (start < end).then_some((start, end, blocks));
        start = end;
        reader.index.next_round();
    }
    if let Some((checkpoint_size, _)) = ordered.checkpoints.next() {
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
    Ok(Some(Verified {
        entries: size,
        checkpoints: checkpoints.len() as u64,
        latest_checkpoint_size: latest,
        open_streams: ordered.streams.open(),
        continues: None,
        // The caller, which knows the key history, says.
        rotation_seqs: Vec::new(),
    }))
}

/// Entries per unit of work handed to a thread: small enough that the
/// threads finish a chunk together, large enough to cost nothing to hand out.
pub(super) const BLOCK: u64 = 64;

/// Consecutive facts from the seq that starts them.
type Block = (u64, Vec<Facts>);

/// What the threads need to read and check entries on their own.
struct Reader<'a> {
    store: &'a dyn LedgerStore,
    origin: &'a str,
    timeline: &'a KeyTimeline,
    index: DecisionIndex<'a>,
}

impl Reader<'_> {
    /// Takes blocks of seqs from `next` until `end`, and checks them.
    fn blocks(&self, next: &AtomicU64, end: u64) -> Vec<Block> {
        let index = Local::new(&self.index);
        let mut done = Vec::new();
        loop {
            let from = next.fetch_add(BLOCK, Ordering::Relaxed);
            if from >= end {
                return done;
            }
            let to = from.saturating_add(BLOCK).min(end);
            done.push((from, self.block(from, to, &index)));
        }
    }

    /// The facts of seqs `from..to` (at most [`BLOCK`]), one per seq.
    fn block(&self, from: u64, to: u64, index: &Local<'_>) -> Vec<Facts> {
        let count = (to - from) as usize;
        let mut facts: Vec<Facts> = Vec::with_capacity(count);
        let mut signatures = [None; BLOCK as usize];
        let read = self.store.signatures_in(from, to, &mut |seq, signature| {
            if let Some(slot) = signatures.get_mut((seq - from) as usize) {
                *slot = Some(*signature);
            }
        });
        let lookups = BlockLookups {
            from,
            signatures: &signatures,
            index,
        };
        let read = read.and_then(|()| {
            self.store.entries_in(from, to, &mut |seq, bytes| {
                let expected = from + facts.len() as u64;
                if seq < expected || seq >= to {
                    return ControlFlow::Continue(());
                }
                facts.extend((expected..seq).map(|missing| Err(bad(missing, "entry missing"))));
                facts.push(entry_facts(
                    &lookups,
                    seq,
                    self.origin,
                    self.timeline,
                    bytes,
                ));
                ControlFlow::Continue(())
            })
        });
        if let Err(err) = read {
            facts.push(Err(VerifyError::Store(err)));
        }
        // Seqs after a store error are never looked at: the error comes first.
        while facts.len() < count {
            facts.push(Err(bad(from + facts.len() as u64, "entry missing")));
        }
        facts
    }
}

/// The state of the checks that go in seq order.
struct Ordered<'a> {
    store: &'a dyn LedgerStore,
    timeline: &'a KeyTimeline,
    checkpoints: std::iter::Peekable<std::slice::Iter<'a, (u64, String)>>,
    peaks: Peaks,
    prev_hash: [u8; 32],
    keys: Keys,
    /// The stored nodes of the chunk's leaves, in append order...
    stored_nodes: Vec<Hash>,
    /// ...where each leaf's end.
    node_ends: Vec<usize>,
    /// Streamed decisions whose `stream_ended` has not come yet.
    streams: StreamLinks,
}

impl Ordered<'_> {
    /// Reads the stored nodes the leaves `first..end` finished.
    fn read_nodes(&mut self, first: u64, end: u64) -> Result<(), StoreError> {
        let (nodes, ends) = (&mut self.stored_nodes, &mut self.node_ends);
        nodes.clear();
        ends.clear();
        self.store.leaf_nodes_in(first, end, &mut |_, stored| {
            nodes.extend_from_slice(stored);
            ends.push(nodes.len());
        })
    }

    /// Checks the facts of seqs `first..end`; `Ok(false)` if the pass must stop.
    fn check_chunk(
        &mut self,
        first: u64,
        end: u64,
        facts: impl Iterator<Item = Facts>,
    ) -> Result<bool, VerifyError> {
        self.read_nodes(first, end)?;
        let mut node_start = 0;
        for (i, (seq, facts)) in (first..).zip(facts).enumerate() {
            let facts = facts?;
            if facts.rotation && self.keys == Keys::AssumedUnrotated {
                return Ok(false);
            }
            if facts.prev_hash != Some(self.prev_hash) {
                return Err(bad(
                    seq,
                    "prev_hash does not match the previous entry's hash (chain broken)",
                ));
            }
            self.prev_hash = facts.entry_hash;
            self.streams.see(self.store, seq, facts.stream)?;
            // A leaf the store did not report has no stored nodes.
            let node_end = self.node_ends.get(i).copied().unwrap_or(node_start);
            let stored = self
                .stored_nodes
                .get(node_start..node_end)
                .unwrap_or_default();
            node_start = node_end;
            self.peaks.push(facts.leaf, |level, index, hash| {
                if stored.get(usize::from(level)) != Some(hash) {
                    return Err(bad(
                        seq,
                        format!("stored tree node ({level}, {index}) does not match the entries"),
                    ));
                }
                Ok(())
            })?;
            while let Some((checkpoint_size, note)) =
                self.checkpoints.next_if(|(s, _)| *s == seq + 1)
            {
                check_checkpoint(
                    self.timeline.key_at(seq),
                    *checkpoint_size,
                    note,
                    &self.peaks.root(),
                )?;
            }
        }
        Ok(true)
    }
}

fn check_checkpoint(
    verifier: &NoteVerifier,
    size: u64,
    note: &str,
    root: &Hash,
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
    if checkpoint.root != *root {
        return Err(bad(
            seq,
            format!("checkpoint at size {size}: root does not match the entries"),
        ));
    }
    Ok(())
}

/// The right edge of the tree being rebuilt, as `tree::Frontier`, but
/// handing each finished node to a callback instead of returning a fresh
/// `Vec` per leaf: this runs once per entry on the ordered path.
#[derive(Debug, Default)]
pub(super) struct Peaks {
    size: u64,
    /// `(level, hash)` of each complete subtree on the right edge, largest first.
    peaks: Vec<(u8, Hash)>,
}

impl Peaks {
    /// Appends a leaf; `finished` sees every complete-subtree node it
    /// finishes as `(level, index, hash)`, the leaf itself first.
    pub(super) fn push<E>(
        &mut self,
        leaf: Hash,
        mut finished: impl FnMut(u8, u64, &Hash) -> Result<(), E>,
    ) -> Result<(), E> {
        let index = self.size;
        finished(0, index, &leaf)?;
        let (mut level, mut hash) = (0u8, leaf);
        // INVARIANT: peaks are strictly decreasing in level, so merging
        // equal levels from the end keeps that order.
        while let Some(&(peak_level, peak_hash)) = self.peaks.last() {
            if peak_level != level {
                break;
            }
            self.peaks.pop();
            hash = node_hash(&peak_hash, &hash);
            level += 1;
            finished(level, index >> level, &hash)?;
        }
        self.peaks.push((level, hash));
        self.size += 1;
        Ok(())
    }

    /// The current root (folding the peaks right to left).
    pub(super) fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(&(_, mut acc)) = peaks.next() else {
            return empty_root();
        };
        for (_, peak) in peaks {
            acc = node_hash(peak, &acc);
        }
        acc
    }
}
