//! The checks of a contiguous bundle that go in seq order, fed one entry
//! at a time: seqs, the chain, the key schedule, the carried checkpoints
//! (read from `checkpoints.jsonl` as the tree reaches their size), the
//! tree's root at each, the stream links, and which signatures and
//! payloads must be there. What it keeps is bounded by the bundle's key
//! rotations and its streams in flight, not its size: the tree's right
//! edge, the previous entry's hash, one checkpoint line, and the seqs of
//! erased or absent payloads as bits (`SeqSet`).

use super::context::Context;
use super::digest::Lines;
use super::evidence::{self, CheckpointLine};
use super::fields::Member;
use super::first::{Check, First, Found};
use super::keys::KeySchedule;
use super::lines::BundleEntry;
use super::{BundleError, bad, bad_seq, open_unhinted};
use crate::ledger::checkpoint::Checkpoint;
use crate::ledger::entry::GENESIS_PREV_HASH;
use crate::ledger::seq_set::SeqSet;
use crate::ledger::tree::{Frontier, Hash};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// An entry as the ordered checks take it: parsed, and its leaf hash.
pub(super) struct Parsed {
    pub(super) entry: BundleEntry,
    pub(super) leaf: Hash,
}

/// A link into seq `s` found broken, waiting for seq `s + 1` to say which
/// side changed.
struct Broken {
    line: u64,
    p: u64,
    p_hash: String,
    prev_hash: String,
    s: u64,
    s_hash: String,
}

/// `checkpoints.jsonl` as the pass reaches each line's size.
struct CarriedLines {
    lines: Lines,
    /// The next line, read and not yet reached, with its number.
    next: Option<(usize, CheckpointLine)>,
    /// The size of the last line read, for "sizes do not increase".
    last_read: Option<u64>,
    /// Whether a line of size `to` was read, and its note.
    of_to: Option<String>,
    /// The last line opened: its size and root.
    previous: Option<(u64, Hash)>,
    /// Sizes of the lines that are a rotation's own checkpoint.
    of_rotations: BTreeSet<u64>,
    /// No more lines are read (the end, or a line that is not one).
    done: bool,
}

/// The state of the ordered checks.
pub(super) struct Ordered<'a> {
    pub(super) first: First,
    from: u64,
    to: u64,
    origin: &'a str,
    /// `govgate-bundle/2`: carried checkpoints, context, presence rules.
    evidence: bool,
    payloads: bool,
    lines: u64,
    last: Option<(u64, String)>,
    broken: Option<Broken>,
    pub(super) schedule: KeySchedule,
    following: bool,
    frontier: Frontier,
    last_match: u64,
    carried: Option<CarriedLines>,
    /// The checkpoint of size `to`, once opened.
    of_to: Option<Checkpoint>,
    context: Context,
    /// Streamed decisions not yet ended: their kind, outcome and names.
    open: BTreeMap<u64, Value>,
    /// Decisions before `from` whose stream ended, and where.
    ended_before: BTreeMap<u64, u64>,
    /// The `entry_signatures` setting in force: where recorded, and on.
    setting: Option<(u64, bool)>,
    /// Seqs named by a `payload_erased` entry not yet reached (the
    /// context's, and for a chunk alone those before it).
    erased: SeqSet,
    /// Entries whose payload must be there and is not (unless erased later).
    unpaid: SeqSet,
    /// Chunks not yet reached: their `from`, `prefix` and setting.
    marks: std::collections::VecDeque<(u64, Frontier, bool)>,
    /// One chunk checked alone (`chunk_pass`): the links that lead before
    /// it are handed back rather than judged.
    alone: Option<Alone>,
}

/// What a chunk checked alone keeps for the step that joins the chunks.
#[derive(Default)]
struct Alone {
    /// Roots the carried checkpoints in the chunk's range claim (their
    /// signatures are checked once for the whole bundle): size and root.
    roots: std::collections::VecDeque<(u64, Hash)>,
    /// The first entry's `prev_hash`.
    first_prev: Option<String>,
    /// `stream_ended` entries naming a decision before the chunk: the
    /// decision's seq, their own seq, their names.
    ends: Vec<(u64, u64, Value)>,
}

/// What one chunk checked alone hands to the step that joins the chunks:
/// bounded by its rotations, erasures, streams in flight and problems,
/// never by its entries.
pub(super) struct ChunkEnd {
    pub(super) first: First,
    pub(super) entries: u64,
    /// The first entry's `prev_hash`, the last entry's hash.
    pub(super) first_prev: Option<String>,
    pub(super) last_hash: Option<String>,
    /// The tree's right edge after the chunk.
    pub(super) frontier: Frontier,
    /// The `entry_signatures` setting the chunk leaves (`on`).
    pub(super) signing: bool,
    /// The key schedule followed through the chunk.
    pub(super) schedule: KeySchedule,
    /// Streamed decisions of the chunk not ended in it: seq and names.
    pub(super) open: BTreeMap<u64, Value>,
    /// `stream_ended` entries naming a decision before the chunk.
    pub(super) ends: Vec<(u64, u64, Value)>,
    /// Seqs named by `payload_erased` entries of the chunk, not in it.
    pub(super) erased: SeqSet,
    /// Kept payloads without their line, no erasure in the chunk naming them.
    pub(super) unpaid: SeqSet,
}

/// What the ordered checks start from.
pub(super) struct Start<'a> {
    pub(super) from: u64,
    pub(super) to: u64,
    pub(super) origin: &'a str,
    pub(super) evidence: bool,
    pub(super) payloads: bool,
    pub(super) schedule: KeySchedule,
    pub(super) frontier: Frontier,
    pub(super) checkpoints: Option<Lines>,
    pub(super) context: Context,
    /// A chunked bundle's chunks: each one's `from`, the tree's right edge
    /// its manifest member gives there, and its `entry_signatures` is on.
    pub(super) marks: Vec<(u64, Frontier, bool)>,
    /// One chunk checked alone: the roots its carried checkpoints claim
    /// (size, root) and the `entry_signatures` setting at its `from`.
    pub(super) alone: Option<(Vec<(u64, Hash)>, bool)>,
}

impl<'a> Ordered<'a> {
    /// Before the first entry: the context's rotations and settings, and
    /// the carried checkpoints at or below `from`.
    pub(super) fn new(start: Start<'a>, first: First) -> Result<Self, BundleError> {
        let mut ordered = Self {
            first,
            from: start.from,
            to: start.to,
            origin: start.origin,
            evidence: start.evidence,
            payloads: start.payloads,
            lines: 0,
            last: None,
            broken: None,
            schedule: start.schedule,
            following: true,
            last_match: start.frontier.size(),
            frontier: start.frontier,
            carried: start.checkpoints.map(|lines| CarriedLines {
                lines,
                next: None,
                last_read: None,
                of_to: None,
                previous: None,
                of_rotations: BTreeSet::new(),
                done: false,
            }),
            of_to: None,
            context: start.context,
            open: BTreeMap::new(),
            ended_before: BTreeMap::new(),
            setting: None,
            erased: SeqSet::new(),
            unpaid: SeqSet::new(),
            marks: start.marks.into(),
            alone: None,
        };
        let mut context = std::mem::take(&mut ordered.context);
        for entry in context.before(ordered.from) {
            ordered.follow(entry);
        }
        ordered.setting = context.setting_before(ordered.from);
        ordered.erased = std::mem::take(&mut context.erased);
        ordered.context = context;
        if let Some((roots, signing)) = start.alone {
            ordered.setting = Some((ordered.from, signing));
            ordered.alone = Some(Alone {
                roots: roots.into(),
                ..Alone::default()
            });
        }
        ordered.reach_checkpoints(ordered.from)?;
        Ok(ordered)
    }

    /// The next entry; `signed` and `paid`: whether `signatures.jsonl` and
    /// `payloads.jsonl` have a line for it.
    pub(super) fn take(
        &mut self,
        parsed: &Parsed,
        signed: bool,
        paid: bool,
    ) -> Result<(), BundleError> {
        let (entry, line) = (&parsed.entry, self.lines);
        self.lines += 1;
        let expected = self.from + line;
        if self.first.wants(Check::Seqs) {
            if expected >= self.to {
                self.first.error(
                    Check::Seqs,
                    line,
                    bad_seq(
                        expected,
                        format!(
                            "line {}: beyond the bundle's range (to is {})",
                            line + 1,
                            self.to
                        ),
                    ),
                );
            } else if entry.seq != expected {
                self.first.error(
                    Check::Seqs,
                    line,
                    bad_seq(
                        expected,
                        format!(
                            "line {} holds seq {} instead (entries missing, duplicated or out of order)",
                            line + 1,
                            entry.seq
                        ),
                    ),
                );
            }
        }
        if !self.first.wants(Check::Chain) {
            return Ok(());
        }
        self.join(expected);
        if line == 0
            && let Some(alone) = self.alone.as_mut()
        {
            alone.first_prev = Some(entry.prev_hash().to_owned());
        }
        self.chain(entry, line);
        self.follow(entry);
        self.frontier.push(parsed.leaf);
        self.reach_checkpoints(self.frontier.size())?;
        self.claimed_roots();
        self.stream(entry);
        if self.evidence {
            self.presence(entry, signed, paid);
        }
        Ok(())
    }

    /// At a chunk's first entry: its manifest member's `prefix` and
    /// `entry_signatures` against the tree and the setting the entries
    /// before it leave.
    fn join(&mut self, seq: u64) {
        let Some((from, prefix, signing)) = self.marks.front() else {
            return;
        };
        if *from != seq {
            return;
        }
        if *prefix != self.frontier {
            let reason =
                format!("the chunk from {from}: its prefix is not the tree's right edge at {from}");
            self.first
                .error(Check::Chain, seq - self.from, bad_seq(seq, reason));
        }
        let on = self.setting.is_some_and(|(_, on)| on);
        if *signing != on {
            let reason = format!(
                "the chunk from {from}: its entry_signatures is {}, the setting in force there {}",
                if *signing { "on" } else { "off" },
                if on { "on" } else { "off" }
            );
            self.first
                .error(Check::Chain, seq - self.from, bad_seq(seq, reason));
        }
        self.marks.pop_front();
    }

    /// The BLAKE3 chain, as `lines::check_chain` over the lines so far.
    fn chain(&mut self, entry: &BundleEntry, line: u64) {
        let prev_hash = entry.prev_hash();
        if let Some(broken) = self.broken.take() {
            let records = (entry.seq == broken.s + 1).then(|| prev_hash == broken.s_hash);
            self.report_broken(broken, records);
        }
        if entry.seq == 0 {
            if prev_hash != GENESIS_PREV_HASH {
                self.first.error(
                    Check::Chain,
                    line,
                    bad_seq(0, "prev_hash must be 64 zeros at seq 0"),
                );
            }
        } else if let Some((p, p_hash)) = &self.last
            && p + 1 == entry.seq
            && prev_hash != p_hash
        {
            self.broken = Some(Broken {
                line,
                p: *p,
                p_hash: p_hash.clone(),
                prev_hash: prev_hash.to_owned(),
                s: entry.seq,
                s_hash: entry.hash.clone(),
            });
        }
        // The last hash is kept in the same string (no allocation per entry).
        match &mut self.last {
            Some((seq, hash)) => {
                *seq = entry.seq;
                hash.clone_from(&entry.hash);
            }
            None => self.last = Some((entry.seq, entry.hash.clone())),
        }
    }

    fn report_broken(&mut self, broken: Broken, records: Option<bool>) {
        let error = super::lines::broken_link(
            broken.p,
            &broken.p_hash,
            &broken.prev_hash,
            broken.s,
            records,
        );
        self.first.error(Check::Chain, broken.line, error);
    }

    /// The key schedule (a rotation's `old_vkey` must be the key in force).
    fn follow(&mut self, entry: &BundleEntry) {
        if !self.following || !self.first.wants(Check::Follow) {
            return;
        }
        if let Err(err) = self.schedule.push(entry, self.origin) {
            self.following = false;
            self.first.error(Check::Follow, entry.seq, err);
        }
    }

    /// Reads, opens and links the carried checkpoints up to size `size`
    /// (all of them with `u64::MAX`), comparing the tree's root at each.
    fn reach_checkpoints(&mut self, size: u64) -> Result<(), BundleError> {
        loop {
            let Some(carried) = self.carried.as_mut() else {
                return Ok(());
            };
            if carried.next.is_none() && !carried.done {
                match carried.lines.next_line()? {
                    None => carried.done = true,
                    Some((number, raw)) => {
                        match evidence::checkpoint_line(number, &raw, carried.last_read) {
                            Ok(line) => {
                                if line.size == self.to {
                                    carried.of_to = Some(line.note.clone());
                                }
                                carried.last_read = Some(line.size);
                                carried.next = Some((number, line));
                            }
                            Err(err) => {
                                carried.done = true;
                                self.first.error(Check::CheckpointLines, number as u64, err);
                            }
                        }
                    }
                }
            }
            let carried = self.carried.as_mut().expect("INVARIANT: checked above");
            let Some((number, line)) = carried.next.take_if(|(_, line)| line.size <= size) else {
                return Ok(());
            };
            self.open_carried(number, &line);
        }
    }

    /// Opens one carried checkpoint with the key in force for its size and
    /// links it to the one before; at sizes inside the range, the tree's
    /// root must be its root.
    fn open_carried(&mut self, number: usize, line: &CheckpointLine) {
        if !self.first.wants(Check::Checkpoints) {
            return;
        }
        let at = number as u64;
        let checkpoint = match open_unhinted(&self.schedule, &line.note, line.size) {
            Ok(checkpoint) => checkpoint,
            Err(unopened) => {
                self.first
                    .found(Check::Checkpoints, at, Found::Unopened(unopened));
                return;
            }
        };
        let Some(carried) = self.carried.as_mut() else {
            return;
        };
        if let Err(err) = evidence::link_checkpoint(line, &checkpoint, carried.previous) {
            self.first.error(Check::Checkpoints, at, err);
            return;
        }
        carried.previous = Some((checkpoint.size, checkpoint.root));
        if line.size > 0
            && self
                .schedule
                .rotation_seqs()
                .any(|seq| seq + 1 == line.size)
        {
            carried.of_rotations.insert(line.size);
        }
        self.compare_root(line.size, &checkpoint);
        if line.size == self.to {
            self.of_to = Some(checkpoint);
        }
    }

    /// At a signed size inside the range the tree has reached, its root
    /// must be the signed one (`evidence::locate_change`).
    fn compare_root(&mut self, size: u64, checkpoint: &Checkpoint) {
        if size <= self.from || size != self.frontier.size() || !self.first.wants(Check::Locate) {
            return;
        }
        if self.frontier.root() == checkpoint.root {
            self.last_match = size;
        } else {
            let error = evidence::changed(self.from, self.last_match, size);
            self.first.error(Check::Locate, 0, error);
        }
    }

    /// The links between streamed decisions and their ends
    /// (`streams::check_streams`), holding only the streams not yet ended.
    fn stream(&mut self, entry: &BundleEntry) {
        if !self.first.wants(Check::Streams) {
            return;
        }
        let seq = entry.seq;
        if entry.is_streaming() {
            self.open.insert(seq, entry.stream_names());
        }
        if entry.kind() != Some("stream_ended") {
            return;
        }
        let problem = |reason: String| bad_seq(seq, format!("stream_ended: {reason}"));
        let Some(decision_seq) = entry.decision_seq() else {
            let reason = format!(
                "decision_seq {} is not a seq (a non-negative integer)",
                entry.json(Member::DecisionSeq)
            );
            return self.first.error(Check::Streams, seq, problem(reason));
        };
        if decision_seq >= seq {
            let reason = format!("decision_seq {decision_seq} is not below its own seq");
            return self.first.error(Check::Streams, seq, problem(reason));
        }
        if decision_seq < self.from
            && let Some(alone) = self.alone.as_mut()
        {
            // Before the chunk: for the step that joins the chunks.
            alone.ends.push((decision_seq, seq, entry.stream_names()));
            return;
        }
        if decision_seq < self.from {
            // Outside the bundle: taken as given, but ended only once.
            if let Some(first) = self.ended_before.insert(decision_seq, seq) {
                let reason = format!(
                    "the stream of the decision at seq {decision_seq} already ended at seq \
                     {first} (a second stream_ended)"
                );
                self.first.error(Check::Streams, seq, problem(reason));
            }
            return;
        }
        match self.open.remove(&decision_seq) {
            Some(decision) => {
                let end = entry.stream_names();
                if let Some(reason) = super::streams::link_problem(&end, &decision, decision_seq) {
                    self.first.error(Check::Streams, seq, problem(reason));
                }
            }
            None => self
                .first
                .found(Check::Streams, seq, Found::NotOpen { seq, decision_seq }),
        }
    }

    /// Which signatures and payloads the log says must be there
    /// (`evidence::check_signatures_present`, `check_payloads_present`).
    fn presence(&mut self, entry: &BundleEntry, signed: bool, paid: bool) {
        // A scanned entry (`fields`) is a decision or a stream's end; the
        // other kinds are parsed whole, so `value` holds their members.
        let (seq, value, kind) = (entry.seq, &entry.value, entry.kind());
        if kind == Some(crate::ledger::export::SIGNATURES_KIND) {
            self.setting = Some((seq, value["entry_signatures"] == "on"));
        }
        if let Some((at, true)) = self.setting
            && !signed
            && self.first.wants(Check::SignaturesPresent)
        {
            self.first.error(
                Check::SignaturesPresent,
                seq,
                bad_seq(
                    seq,
                    format!(
                        "per-entry signature missing: entry_signatures is on here \
                             (recorded at seq {at})"
                    ),
                ),
            );
        }
        if !self.payloads || !self.first.wants(Check::PayloadsPresent) {
            return;
        }
        if kind == Some("payload_erased")
            && let Some(erased) = value["erased_seq"].as_u64()
            && !self.unpaid.remove(erased)
            && (erased > seq || self.alone.is_some())
        {
            // Not yet reached (or, for a chunk alone, before it): what a
            // whole pass has passed needs no note.
            self.erased.insert(erased);
        }
        let kept = matches!(kind, Some("decision" | "stream_ended")) && entry.keeps_payload();
        if kept && !paid && !self.erased.remove(seq) {
            self.unpaid.insert(seq);
        }
    }

    /// After the last entry: what only the whole range decides. Returns
    /// the checkpoint of size `to` and the streams left open.
    pub(super) fn finish(mut self, note: &str) -> Result<Finished, BundleError> {
        let entries = self.lines;
        let (from, to) = (self.from, self.to);
        if entries < to - from {
            self.first.error(
                Check::Seqs,
                u64::MAX,
                bad_seq(
                    from + entries,
                    format!(
                        "missing: the bundle covers seq {from}..{} but entries.jsonl ends after \
                         {entries} lines",
                        to - 1
                    ),
                ),
            );
        }
        if let Some(broken) = self.broken.take() {
            self.report_broken(broken, None);
        }
        let context = std::mem::take(&mut self.context);
        for entry in context.after(to) {
            self.follow(entry);
        }
        let mut checkpoint_lines = None;
        if self.evidence {
            self.reach_checkpoints(u64::MAX)?;
            if let Some(carried) = self.carried.take() {
                self.finish_carried(&carried, &context, note);
                checkpoint_lines = Some(carried.lines);
            }
        } else if self.first.wants(Check::Checkpoints) {
            match open_unhinted(&self.schedule, note, to) {
                Ok(checkpoint) => {
                    self.compare_root(to, &checkpoint);
                    self.of_to = Some(checkpoint);
                }
                Err(unopened) => self
                    .first
                    .found(Check::Checkpoints, 0, Found::Unopened(unopened)),
            }
        }
        if self.of_to.is_none() && self.first.kept().is_none() {
            let error = bad("checkpoint", format!("no checkpoint of size {to}"));
            self.first.error(Check::Locate, u64::MAX, error);
        }
        if let Some(seq) = self.unpaid.first() {
            self.first.error(
                Check::PayloadsPresent,
                seq,
                bad_seq(
                    seq,
                    "payload missing: the entry's payload is kept (payload_mode full) and no \
                     payload_erased entry in the bundle names it",
                ),
            );
        }
        Ok(Finished {
            open_streams: self.open.keys().copied().collect(),
            first: self.first,
            schedule: self.schedule,
            of_to: self.of_to,
            checkpoint_lines,
        })
    }

    /// `checkpoints.jsonl` as a whole: the line of size `to` is
    /// `checkpoint.txt`, each rotation has its own, the context is proven.
    fn finish_carried(&mut self, carried: &CarriedLines, context: &Context, note: &str) {
        if let Err(err) = evidence::checkpoint_of_to(carried.of_to.as_deref(), self.to, note) {
            self.first.error(Check::CheckpointLines, u64::MAX, err);
        }
        if !self.first.wants(Check::Checkpoints) {
            return;
        }
        let (last, root) = match carried.previous {
            Some((size, root)) => (size, Some(root)),
            None => (0, None),
        };
        for (i, seq) in self.schedule.rotation_seqs().enumerate() {
            let own = carried.of_rotations.contains(&(seq + 1));
            if let Err(err) = evidence::rotation_checkpoint(seq, last, own) {
                self.first
                    .error(Check::Checkpoints, (1 << 62) + i as u64, err);
                return;
            }
        }
        if let Err((line, err)) = context.proven(last, root.as_ref()) {
            self.first.error(Check::Checkpoints, (1 << 63) + line, err);
        }
    }

    /// The first seq.
    pub(super) fn from(&self) -> u64 {
        self.from
    }

    /// Entries taken.
    pub(super) fn entries(&self) -> u64 {
        self.lines
    }

    /// A chunk checked alone: the tree's root at each carried checkpoint
    /// size it reaches must be the root that checkpoint claims.
    fn claimed_roots(&mut self) {
        let size = self.frontier.size();
        let Some(alone) = self.alone.as_mut() else {
            return;
        };
        while let Some(&(at, root)) = alone.roots.front() {
            if at > size {
                return;
            }
            alone.roots.pop_front();
            if at < size || !self.first.wants(Check::Locate) {
                continue;
            }
            if self.frontier.root() == root {
                self.last_match = at;
            } else {
                let error = evidence::changed(self.from, self.last_match, at);
                self.first.error(Check::Locate, 0, error);
            }
        }
    }

    /// The whole bundle's carried checkpoints without its entries (checked
    /// chunk by chunk elsewhere): the `key_rotated` entries of the range
    /// followed, and `entries` taken as read.
    pub(super) fn entries_elsewhere(&mut self, rotations: &[BundleEntry], entries: u64) {
        for entry in rotations {
            self.follow(entry);
        }
        self.lines = entries;
    }

    /// After a chunk checked alone: what the step that joins the chunks
    /// needs.
    pub(super) fn finish_chunk(mut self) -> ChunkEnd {
        let entries = self.lines;
        let (from, to) = (self.from, self.to);
        if entries < to - from {
            self.first.error(
                Check::Seqs,
                u64::MAX,
                bad_seq(
                    from + entries,
                    format!(
                        "missing: the chunk covers seq {from}..{} but its entries end after \
                         {entries} lines",
                        to - 1
                    ),
                ),
            );
        }
        if let Some(broken) = self.broken.take() {
            self.report_broken(broken, None);
        }
        let alone = self.alone.take().unwrap_or_default();
        if let Some(&(size, _)) = alone.roots.front()
            && size <= to
        {
            let reason = format!("the tree did not reach the carried checkpoint of size {size}");
            self.first
                .error(Check::Locate, u64::MAX, bad("root", reason));
        }
        ChunkEnd {
            first: self.first,
            entries,
            first_prev: alone.first_prev,
            last_hash: self.last.map(|(_, hash)| hash),
            frontier: self.frontier,
            signing: self.setting.is_some_and(|(_, on)| on),
            schedule: self.schedule,
            open: self.open,
            ends: alone.ends,
            erased: self.erased,
            unpaid: self.unpaid,
        }
    }
}

/// What the ordered checks conclude.
pub(super) struct Finished {
    /// The first problem.
    pub(super) first: First,
    /// Every rotation followed.
    pub(super) schedule: KeySchedule,
    /// The checkpoint of size `to`.
    pub(super) of_to: Option<Checkpoint>,
    /// Streamed decisions whose end is not in the bundle.
    pub(super) open_streams: Vec<u64>,
    /// `checkpoints.jsonl`, to be read to its end for the file list.
    pub(super) checkpoint_lines: Option<Lines>,
}
