//! A sparse bundle (`govgate-bundle-sparse/1`, docs/audit-format.md 8.2)
//! verified in one pass over `entries.jsonl`, in memory bounded whatever
//! the bundle's size: with each entry line, the lines of `proofs.jsonl`,
//! `signatures.jsonl` and `payloads.jsonl` up to its seq (all three are
//! written in seq order), so no file is ever held whole.
//!
//! What the pass carries: the previous entry's seq and hash (the chain),
//! the key schedule, the model-version entries (approvals point at them:
//! a few per model), the streamed decisions not yet ended, and the links
//! it cannot settle from those (an `approval_seq` or `decision_seq` that
//! names an entry of another kind: only a bundle that fails has them, and
//! a second pass over `entries.jsonl` looks up just those seqs).
//!
//! The problem reported is the one `sparse::check` and the in-memory
//! checks after it report, made one after the other: each problem found
//! is ranked by its check, then by where in that check's own order it
//! lies, and the first by rank is kept. A proof, signature or payload file
//! whose seqs decrease (never written so by `govgate export`) cannot be
//! paired in one pass: then the caller verifies the bundle in memory.

use super::digest::Lines;
use super::fields::LineObject;
use super::keys::KeySchedule;
use super::lines::{self, BundleEntry};
use super::sparse::{self, Selection};
use super::streams::{is_streaming, link_problem};
use super::{
    BundleError, BundleForm, BundleReport, Manifest, bad_seq, key_at_from, open_checkpoint,
};
use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::tree::Hash;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The checks in the order they decide, with where in each a problem lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// The key in force at `from`.
    StartKey,
    /// The manifest's `size` and `filter`, the checkpoint's size.
    Header,
    /// The seqs the bundle may hold, by line of `entries.jsonl`.
    Selection(u64),
    /// `proofs.jsonl` read (its form), by its line.
    ProofLines(u64),
    /// Inclusion proofs paired with entries, by seq.
    ProofSeqs(u64),
    /// The BLAKE3 chain, by line of `entries.jsonl`.
    Chain(u64),
    /// Decisions' `approval_seq`, by line of `entries.jsonl`.
    Approvals(u64),
    /// The `key_rotated` entries followed, by line.
    Follow(u64),
    /// The checkpoint opened.
    Checkpoint,
    /// Streamed decisions and their ends, by line of `entries.jsonl`.
    Streams(u64),
    /// `signatures.jsonl`, by its line.
    Signatures(u64),
    /// `payloads.jsonl`, by its line (0: whether it should be there).
    Payloads(u64),
}

/// The first problem by rank.
#[derive(Default)]
struct Kept(Option<(Rank, BundleError)>);

impl Kept {
    fn wants(&self, at: Rank) -> bool {
        self.0.as_ref().is_none_or(|(kept, _)| at < *kept)
    }

    fn found(&mut self, at: Rank, error: BundleError) {
        if self.wants(at) {
            self.0 = Some((at, error));
        }
    }

    fn check<T>(&mut self, at: Rank, result: Result<T, BundleError>) -> Option<T> {
        result.map_err(|error| self.found(at, error)).ok()
    }
}

/// Why the pass cannot conclude.
enum Stop {
    /// A file could not be read.
    Bundle(BundleError),
    /// A side file's seqs decrease: verify in memory.
    Reordered,
}

impl From<BundleError> for Stop {
    fn from(error: BundleError) -> Self {
        Stop::Bundle(error)
    }
}

/// Verifies the sparse bundle in `dir` in one pass. `Ok(None)`: a proof,
/// signature or payload file is not in seq order; verify it in memory.
pub(super) fn verify(
    dir: &Path,
    manifest: &Manifest,
    claimed: &Checkpoint,
    first: &NoteVerifier,
    current: Option<&NoteVerifier>,
    note: &str,
) -> Result<Option<(BundleReport, KeySchedule)>, BundleError> {
    match pass(dir, manifest, claimed, first, current, note) {
        Ok(verified) => verified.map(Some),
        Err(Stop::Bundle(error)) => Err(error),
        Err(Stop::Reordered) => Ok(None),
    }
}

/// Only the members of `value` named in `names` (those it has).
fn names(value: &Value, names: &[&str]) -> Value {
    let kept: Map<String, Value> = names
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), value.get(*name)?.clone())))
        .collect();
    Value::Object(kept)
}

/// What an `approval_seq` or `decision_seq` check reads of an entry.
const SUMMARY: &[&str] = &[
    "kind",
    "outcome",
    "decision_id",
    "model",
    "version",
    "state",
];

/// A decision whose `approval_seq` names no model-version entry seen so far.
struct Approval {
    line: u64,
    seq: u64,
    approval_seq: u64,
    /// The decision's `model` and `version`.
    decision: Value,
}

/// A `stream_ended` whose decision is not a stream still open.
struct End {
    line: u64,
    seq: u64,
    decision_seq: u64,
    /// Its `decision_id`, `model` and `version`.
    end: Value,
}

/// How a side file's line is read: its seq and what it holds.
type Parse<T> = fn(usize, &[u8]) -> Result<(u64, T), BundleError>;

/// A side file (`proofs.jsonl`, `signatures.jsonl`, `payloads.jsonl`)
/// read a line ahead, each line parsed on its own.
struct Side<T> {
    lines: Lines,
    /// The next line: its number, seq and what it holds.
    peeked: Option<(usize, u64, T)>,
    /// The seq and number of the last line read.
    last: Option<(u64, usize)>,
    /// A line did not parse or repeated a seq: nothing after it counts.
    broken: bool,
    /// Lines read and accepted.
    read: u64,
    parse: Parse<T>,
    /// The error of line `number` (seq `seq`) repeating line `first`.
    repeated: fn(u64, usize, usize) -> BundleError,
    rank: fn(u64) -> Rank,
}

impl<T> Side<T> {
    fn new(
        lines: Lines,
        parse: Parse<T>,
        repeated: fn(u64, usize, usize) -> BundleError,
        rank: fn(u64) -> Rank,
    ) -> Self {
        Self {
            lines,
            peeked: None,
            last: None,
            broken: false,
            read: 0,
            parse,
            repeated,
            rank,
        }
    }

    /// The next line if its seq is at most `seq`.
    fn next_upto(&mut self, seq: u64, kept: &mut Kept) -> Result<Option<(usize, u64, T)>, Stop> {
        if self.peeked.is_none() && !self.broken {
            self.peeked = self.read_line(kept)?;
        }
        if self.peeked.as_ref().is_some_and(|(_, at, _)| *at <= seq) {
            return Ok(self.peeked.take());
        }
        Ok(None)
    }

    fn read_line(&mut self, kept: &mut Kept) -> Result<Option<(usize, u64, T)>, Stop> {
        let Some((number, raw)) = self.lines.next_line()? else {
            return Ok(None);
        };
        let rank = (self.rank)(number as u64);
        let (seq, item) = match (self.parse)(number, &raw) {
            Ok(parsed) => parsed,
            Err(error) => {
                kept.found(rank, error);
                self.broken = true;
                return Ok(None);
            }
        };
        match self.last {
            Some((last, _)) if seq < last => return Err(Stop::Reordered),
            Some((last, first)) if seq == last => {
                kept.found(rank, (self.repeated)(seq, number, first));
                self.broken = true;
                return Ok(None);
            }
            _ => {}
        }
        self.last = Some((seq, number));
        self.read += 1;
        Ok(Some((number, seq, item)))
    }
}

fn parse_proof(number: usize, raw: &[u8]) -> Result<(u64, Vec<Hash>), BundleError> {
    sparse::proof_line(raw).ok_or_else(|| sparse::proof_malformed(number))
}

fn parse_signature(number: usize, raw: &[u8]) -> Result<(u64, [u8; 64]), BundleError> {
    let (seq, object) = lines::signature_line(number, raw)?;
    Ok((seq, lines::signature_of(seq, number, &object)?))
}

fn parse_payload(number: usize, raw: &[u8]) -> Result<(u64, Map<String, Value>), BundleError> {
    lines::payload_line_parsed(number, raw)
}

fn proof_repeated(seq: u64, number: usize, _first: usize) -> BundleError {
    sparse::proof_repeated(seq, number)
}

fn signature_repeated(seq: u64, number: usize, first: usize) -> BundleError {
    bad_seq(
        seq,
        format!("signatures.jsonl line {number} repeats the signature of line {first}"),
    )
}

fn payload_repeated(seq: u64, number: usize, first: usize) -> BundleError {
    bad_seq(
        seq,
        format!("payload (payloads.jsonl line {number}): repeats the payload of line {first}"),
    )
}

/// A broken link into seq `s`, waiting for the next entry to say which
/// side changed (`lines::check_chain`).
struct Broken {
    line: u64,
    p: u64,
    p_hash: String,
    prev_hash: String,
    s: u64,
    s_hash: String,
}

/// `lines::check_chain` one entry at a time.
#[derive(Default)]
struct Chain {
    /// The previous line's seq and hash.
    prev: Option<(u64, String)>,
    broken: Option<Broken>,
}

impl Chain {
    fn next(&mut self, at: u64, entry: &BundleEntry, kept: &mut Kept) {
        let prev_hash = entry.value["prev_hash"].as_str().unwrap_or_default();
        if let Some(b) = self.broken.take() {
            let records = (entry.seq == b.s + 1).then(|| prev_hash == b.s_hash);
            let error = lines::broken_link(b.p, &b.p_hash, &b.prev_hash, b.s, records);
            kept.found(Rank::Chain(b.line), error);
        }
        if entry.seq == 0 {
            // The genesis rule, as the whole-bundle check words it.
            let genesis = lines::check_chain(std::slice::from_ref(entry));
            kept.check(Rank::Chain(at), genesis);
        } else if let Some((p, p_hash)) = &self.prev
            && p + 1 == entry.seq
            && prev_hash != p_hash
        {
            self.broken = Some(Broken {
                line: at,
                p: *p,
                p_hash: p_hash.clone(),
                prev_hash: prev_hash.to_owned(),
                s: entry.seq,
                s_hash: entry.hash.clone(),
            });
        }
        self.prev = Some((entry.seq, entry.hash.clone()));
    }

    fn end(&mut self, kept: &mut Kept) {
        if let Some(b) = self.broken.take() {
            let error = lines::broken_link(b.p, &b.p_hash, &b.prev_hash, b.s, None);
            kept.found(Rank::Chain(b.line), error);
        }
    }
}

/// `streams::check_streams` one entry at a time, holding the streams not
/// yet ended.
#[derive(Default)]
struct Streams {
    /// Streamed decisions not yet ended: what a link checks of them.
    open: BTreeMap<u64, Value>,
    /// Decisions before `from` whose stream ended, and where.
    ended_before: BTreeMap<u64, u64>,
    /// Ends naming an entry that begins no stream still open.
    unsettled: Vec<End>,
}

impl Streams {
    fn next(
        &mut self,
        at: u64,
        entry: &BundleEntry,
        from: u64,
        versions: &BTreeMap<u64, Value>,
        kept: &mut Kept,
    ) {
        let (seq, value) = (entry.seq, &entry.value);
        if is_streaming(value) {
            self.open.insert(seq, names(value, SUMMARY));
        }
        if value["kind"] != "stream_ended" {
            return;
        }
        let mut problem = |reason: String| {
            kept.found(
                Rank::Streams(at),
                bad_seq(seq, format!("stream_ended: {reason}")),
            )
        };
        let Some(decision_seq) = value["decision_seq"].as_u64() else {
            return problem(format!(
                "decision_seq {} is not a seq (a non-negative integer)",
                value["decision_seq"]
            ));
        };
        if decision_seq >= seq {
            return problem(format!(
                "decision_seq {decision_seq} is not below its own seq"
            ));
        }
        let repeated = |first: u64| {
            format!(
                "the stream of the decision at seq {decision_seq} already ended at seq {first} \
                 (a second stream_ended)"
            )
        };
        if decision_seq < from {
            // Below `from` a bundle holds model-version entries only.
            if let Some(first) = self.ended_before.insert(decision_seq, seq) {
                return problem(repeated(first));
            }
            if let Some(reason) = versions
                .get(&decision_seq)
                .and_then(|decision| link_problem(value, decision, decision_seq))
            {
                problem(reason);
            }
            return;
        }
        let decision = self
            .open
            .remove(&decision_seq)
            .or_else(|| versions.get(&decision_seq).cloned());
        match decision {
            Some(decision) => {
                if let Some(reason) = link_problem(value, &decision, decision_seq) {
                    problem(reason);
                }
            }
            None => self.unsettled.push(End {
                line: at,
                seq,
                decision_seq,
                end: names(value, &["decision_id", "model", "version"]),
            }),
        }
    }
}

/// The checks that need the manifest's header to hold.
struct Ready<'a> {
    size: u64,
    model: Option<String>,
    describe: String,
    root: Hash,
    start_key: &'a NoteVerifier,
}

/// What the second pass found of the seqs the first could not settle.
#[derive(Default)]
struct Looked {
    /// The entries at the seqs looked up.
    entries: BTreeMap<u64, Value>,
    /// For each decision seq looked up, the first `stream_ended` naming it.
    first_end: BTreeMap<u64, u64>,
}

/// Reads `entries.jsonl` again for the entries at `seqs` and the first
/// `stream_ended` naming each of `decisions` (lines already checked).
fn look_up(dir: &Path, seqs: &BTreeSet<u64>, decisions: &BTreeSet<u64>) -> Result<Looked, Stop> {
    let mut looked = Looked::default();
    let Some(mut lines) = Lines::open(dir, "entries.jsonl")? else {
        return Ok(looked);
    };
    while let Some((_, line)) = lines.next_line()? {
        let Ok(value) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        let Some(seq) = value["seq"].as_u64() else {
            continue;
        };
        if seqs.contains(&seq) {
            looked
                .entries
                .entry(seq)
                .or_insert_with(|| names(&value, SUMMARY));
        }
        if value["kind"] == "stream_ended"
            && let Some(decision_seq) = value["decision_seq"].as_u64()
            && decisions.contains(&decision_seq)
        {
            looked.first_end.entry(decision_seq).or_insert(seq);
        }
    }
    Ok(looked)
}

#[allow(
    clippy::too_many_lines,
    reason = "one pass: each check a few lines beside the others, the state each carries in its own type"
)]
fn pass(
    dir: &Path,
    manifest: &Manifest,
    claimed: &Checkpoint,
    first: &NoteVerifier,
    current: Option<&NoteVerifier>,
    note: &str,
) -> Result<Result<(BundleReport, KeySchedule), BundleError>, Stop> {
    if let Some(files) = manifest.raw.get("files") {
        // Hashed file by file, a buffer at a time.
        super::digest::check_listed(files, &mut |name| super::digest::digest_file(dir, name))?;
    }
    let mut entries = Lines::open(dir, "entries.jsonl")?
        .ok_or_else(|| super::bad("entries", "entries.jsonl is missing"))?;
    let (from, to) = (manifest.from, manifest.to);
    let origin = claimed.origin.as_str();
    let mut kept = Kept::default();
    let start_key = kept.check(Rank::StartKey, key_at_from(from, first, current));
    let header = kept.check(Rank::Header, sparse::header(manifest, claimed));
    let ready = match (start_key, header) {
        (Some(start_key), Some((size, filter))) => Some(Ready {
            size,
            describe: filter.describe(),
            model: filter.model,
            root: claimed.root,
            start_key,
        }),
        _ => None,
    };
    let size = ready.as_ref().map_or(0, |ready| ready.size);
    let model = ready.as_ref().and_then(|ready| ready.model.as_deref());
    let mut selection = Selection::new(from, to, size, model);
    let (mut proofs, mut signatures, mut payloads) = (None, None, None);
    if ready.is_some() {
        match Lines::open(dir, sparse::PROOFS)? {
            Some(lines) => {
                proofs = Some(Side::new(
                    lines,
                    parse_proof,
                    proof_repeated,
                    Rank::ProofLines,
                ));
            }
            None => kept.found(Rank::ProofLines(0), sparse::proofs_missing()),
        }
        signatures = Lines::open(dir, "signatures.jsonl")?
            .map(|lines| Side::new(lines, parse_signature, signature_repeated, Rank::Signatures));
        let lines = Lines::open(dir, "payloads.jsonl")?;
        let declared = lines::payloads_declared(lines.is_some(), manifest.payloads);
        if kept.check(Rank::Payloads(0), declared) == Some(true) {
            payloads = lines
                .map(|lines| Side::new(lines, parse_payload, payload_repeated, Rank::Payloads));
        }
    }
    let mut schedule = KeySchedule::new(ready.as_ref().map_or(first, |r| r.start_key).clone());
    let mut followed = true;
    let mut chain = Chain::default();
    let mut streams = Streams::default();
    // Model-version entries (what approvals name), by seq.
    let mut versions: BTreeMap<u64, Value> = BTreeMap::new();
    let mut approvals: Vec<Approval> = Vec::new();
    let mut count = 0u64;
    while let Some((number, line)) = entries.next_line()? {
        // Each line is read on its own before any other check.
        let entry = match lines::read_entry_line(line, number - 1, origin) {
            Ok(entry) => entry,
            Err(error) => return Ok(Err(error)),
        };
        count += 1;
        let Some(ready) = ready.as_ref() else {
            continue;
        };
        let at = number as u64;
        let (seq, value) = (entry.seq, &entry.value);
        if kept.wants(Rank::Selection(at)) {
            kept.check(Rank::Selection(at), selection.next(number, seq, value));
        }
        if let Some(side) = proofs.as_mut() {
            let mut proven = false;
            while let Some((number, proof_seq, path)) = side.next_upto(seq, &mut kept)? {
                if proof_seq == seq && !proven {
                    proven = true;
                    let checked = sparse::check_inclusion(
                        &entry.bytes,
                        seq,
                        number,
                        &path,
                        size,
                        &ready.root,
                    );
                    kept.check(Rank::ProofSeqs(seq), checked);
                } else {
                    let orphan = sparse::proof_orphan(proof_seq, number);
                    kept.found(Rank::ProofSeqs(proof_seq), orphan);
                }
            }
            if !proven {
                kept.found(Rank::ProofSeqs(seq), sparse::proof_absent(seq));
            }
        }
        if kept.wants(Rank::Chain(at)) {
            chain.next(at, &entry, &mut kept);
        }
        let kind = value["kind"].as_str().unwrap_or_default();
        if kind.starts_with("version_") {
            versions.insert(seq, names(value, SUMMARY));
        }
        if let Some(model) = model
            && kind == "decision"
            && kept.wants(Rank::Approvals(at))
        {
            match sparse::approval_seq_of(seq, value) {
                Err(error) => kept.found(Rank::Approvals(at), error),
                Ok(None) => {}
                Ok(Some(approval_seq)) => match versions.get(&approval_seq) {
                    Some(approval) => {
                        let problem = sparse::approval_problem(
                            seq,
                            value,
                            approval_seq,
                            Some(approval),
                            model,
                        );
                        if let Some(problem) = problem {
                            kept.found(Rank::Approvals(at), problem);
                        }
                    }
                    None => approvals.push(Approval {
                        line: at,
                        seq,
                        approval_seq,
                        decision: names(value, &["model", "version"]),
                    }),
                },
            }
        }
        if followed && kept.wants(Rank::Follow(at)) {
            followed = kept
                .check(Rank::Follow(at), schedule.push(&entry, origin))
                .is_some();
        }
        if kept.wants(Rank::Streams(at)) {
            streams.next(at, &entry, from, &versions, &mut kept);
        }
        if let Some(side) = signatures.as_mut() {
            while let Some((number, line_seq, signature)) = side.next_upto(seq, &mut kept)? {
                let entry = (line_seq == seq).then_some(&entry);
                let checked =
                    lines::check_signature(line_seq, number, &signature, entry, &schedule, from);
                kept.check(Rank::Signatures(number as u64), checked);
            }
        }
        if let Some(side) = payloads.as_mut() {
            while let Some((number, line_seq, object)) = side.next_upto(seq, &mut kept)? {
                let entry = (line_seq == seq).then_some(&entry);
                let checked =
                    lines::check_payload(line_seq, number, &LineObject::Parsed(object), entry);
                kept.check(Rank::Payloads(number as u64), checked);
            }
        }
    }
    let Some(ready) = ready.as_ref() else {
        return Ok(Err(kept.0.map_or_else(
            || super::bad("manifest", "not verified"),
            |(_, error)| error,
        )));
    };
    kept.check(Rank::Selection(u64::MAX), selection.end());
    if let Some(side) = proofs.as_mut() {
        while let Some((number, seq, _)) = side.next_upto(u64::MAX, &mut kept)? {
            kept.found(Rank::ProofSeqs(seq), sparse::proof_orphan(seq, number));
        }
    }
    chain.end(&mut kept);
    // The links the pass could not settle: model-version entries it had
    // not seen yet, or entries of other kinds, looked up again.
    let mut seqs = BTreeSet::new();
    for approval in &approvals {
        if approval.approval_seq >= from && !versions.contains_key(&approval.approval_seq) {
            seqs.insert(approval.approval_seq);
        }
    }
    let decisions: BTreeSet<u64> = streams
        .unsettled
        .iter()
        .map(|end| end.decision_seq)
        .collect();
    seqs.extend(&decisions);
    let looked = if seqs.is_empty() {
        Looked::default()
    } else {
        look_up(dir, &seqs, &decisions)?
    };
    if let Some(model) = model {
        for approval in &approvals {
            let found = versions
                .get(&approval.approval_seq)
                .or_else(|| looked.entries.get(&approval.approval_seq));
            let problem = sparse::approval_problem(
                approval.seq,
                &approval.decision,
                approval.approval_seq,
                found,
                model,
            );
            if let Some(problem) = problem {
                kept.found(Rank::Approvals(approval.line), problem);
            }
        }
    }
    let checkpoint = if followed && kept.wants(Rank::Checkpoint) {
        kept.check(Rank::Checkpoint, open_checkpoint(&schedule, note, size))
    } else {
        None
    };
    for end in &streams.unsettled {
        let ds = end.decision_seq;
        let reason = match looked.first_end.get(&ds) {
            Some(first) if *first < end.seq => Some(format!(
                "the stream of the decision at seq {ds} already ended at seq {first} \
                 (a second stream_ended)"
            )),
            // Not in the bundle: taken as given.
            _ => looked
                .entries
                .get(&ds)
                .and_then(|decision| link_problem(&end.end, decision, ds)),
        };
        if let Some(reason) = reason {
            let error = bad_seq(end.seq, format!("stream_ended: {reason}"));
            kept.found(Rank::Streams(end.line), error);
        }
    }
    if let Some(side) = signatures.as_mut() {
        while let Some((number, seq, signature)) = side.next_upto(u64::MAX, &mut kept)? {
            let checked = lines::check_signature(seq, number, &signature, None, &schedule, from);
            kept.check(Rank::Signatures(number as u64), checked);
        }
    }
    if let Some(side) = payloads.as_mut() {
        while let Some((number, seq, object)) = side.next_upto(u64::MAX, &mut kept)? {
            let checked = lines::check_payload(seq, number, &LineObject::Parsed(object), None);
            kept.check(Rank::Payloads(number as u64), checked);
        }
    }
    if let Some((_, error)) = kept.0 {
        return Ok(Err(error));
    }
    let Some(checkpoint) = checkpoint else {
        return Ok(Err(super::bad("checkpoint", "not opened")));
    };
    let report = BundleReport {
        form: BundleForm::Sparse,
        origin: checkpoint.origin,
        from,
        to,
        size,
        entries: count,
        payloads: payloads.map_or(0, |side| side.read),
        signatures: signatures.map_or(0, |side| side.read),
        rotations: schedule.count(),
        keys: schedule.keys().cloned().collect(),
        filter: Some(ready.describe.clone()),
        warnings: Vec::new(),
        open_streams: streams.open.into_keys().collect(),
    };
    Ok(Ok((report, schedule)))
}
