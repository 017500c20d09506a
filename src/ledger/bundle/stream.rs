//! A contiguous bundle verified in one pass, a round of lines at a time,
//! in memory bounded whatever the bundle's size: `entries.jsonl` is read
//! line by line, and with each entry line the lines of `signatures.jsonl`
//! and `payloads.jsonl` up to its seq (both files are written in seq
//! order). Each round's entries are parsed, and the previous round's
//! signatures and payloads checked, on every core while the calling
//! thread reads the next round; then the checks that go in seq order
//! (`ordered`) take the round's entries on the calling thread, as the
//! store's verification does (`ledger::verify::pass`).
//!
//! The problem reported is the one the checks made one after the other
//! would report (`first`). A signature or payload file whose seqs do not
//! increase (never written so by `govgate export`) cannot be paired this
//! way: the pass then says so, and the bundle is verified in memory.

use super::chunks::Chunked;
use super::digest::{self, Digest, Lines, peek_seq};
use super::fields;
use super::first::{Check, First, Found};
use super::keys::KeySchedule;
use super::lines::{self, BundleEntry};
use super::ordered::{Ordered, Parsed, Start};
use super::{BundleError, BundleForm, BundleReport, Manifest, bad, bad_seq};
use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::tree::{Frontier, leaf_hash};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Entry lines per round at most.
const CHUNK: usize = 4096;
/// Bytes of lines per round at most (beyond the lines of its last entry):
/// with two rounds alive, and the parsed form of one, this bounds memory.
const ROUND_BYTES: usize = 4 << 20;
/// Entry lines per unit of work handed to a thread.
const BLOCK: usize = 64;
/// Signature or payload lines per unit of work handed to a thread.
const LINES: usize = 8;

/// How the pass ended.
pub(super) enum Outcome {
    /// Verified: the report (no warnings yet) and the key schedule.
    Verified(Box<(BundleReport, KeySchedule)>),
    /// Not verified: a signature or payload file is not in increasing
    /// seq order, so the bundle is to be verified in memory.
    InMemory,
}

/// Why the pass stopped early.
enum Stop {
    Bundle(BundleError),
    Reordered,
}

impl From<BundleError> for Stop {
    fn from(err: BundleError) -> Self {
        Stop::Bundle(err)
    }
}

/// One line of a bundle file.
struct Line {
    /// Its number in its file, from 1 (in a chunked bundle, in the stream
    /// of every chunk's file of its kind).
    number: usize,
    /// Its `seq` as [`peek_seq`] finds it (signatures and payloads).
    seq: Option<u64>,
    bytes: bytes::Bytes,
    /// In a chunked bundle: the chunk file it is in, its number there, and
    /// the chunk's range.
    place: Option<LinePlace>,
}

/// Where a signature or payload line of a chunked bundle is.
struct LinePlace {
    file: Arc<str>,
    number: usize,
    from: u64,
    to: u64,
}

impl Line {
    fn new(number: usize, seq: Option<u64>, bytes: bytes::Bytes) -> Self {
        Self {
            number,
            seq,
            bytes,
            place: None,
        }
    }

    /// A line of a chunk's file whose seq lies outside that chunk: read
    /// as one stream with its neighbours it would pass, so it is named here.
    fn misplaced(&self) -> Option<BundleError> {
        let (place, seq) = (self.place.as_ref()?, self.seq?);
        (!(place.from..place.to).contains(&seq)).then(|| {
            bad_seq(
                seq,
                format!(
                    "{} line {}: seq {seq} lies outside its chunk's range {}..{}",
                    place.file, place.number, place.from, place.to
                ),
            )
        })
    }

    /// `err` about this line, which names it as line `number` of `kind`'s
    /// one file, named by its chunk file and its number there instead.
    fn named(&self, kind: &str, err: BundleError) -> BundleError {
        let (Some(place), BundleError::Bad { seq, item, reason }) = (&self.place, &err) else {
            return err;
        };
        let one = format!("{kind}.jsonl line {}", self.number);
        let chunk = format!("{} line {}", place.file, place.number);
        BundleError::Bad {
            seq: *seq,
            item: item.replace(&one, &chunk),
            reason: reason.replace(&one, &chunk),
        }
    }
}

/// The lines one round reads.
#[derive(Default)]
struct Round {
    entries: Vec<Line>,
    signatures: Vec<Line>,
    payloads: Vec<Line>,
    bytes: usize,
}

impl Round {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.signatures.is_empty() && self.payloads.is_empty()
    }
}

/// A file whose lines go with the entries of their seq.
struct Paired {
    lines: Option<Lines>,
    /// A chunked bundle's: which chunk file each line is in.
    places: Option<super::chunks::Places>,
    /// A line read whose seq is beyond the entries read so far.
    held: Option<Line>,
    last: Option<u64>,
    /// No more lines are taken: the end, or a line without a seq (which
    /// fails, so nothing after it decides).
    stopped: bool,
    taken: u64,
}

impl Paired {
    fn new(lines: Option<Lines>, places: Option<super::chunks::Places>) -> Self {
        Self {
            stopped: lines.is_none(),
            lines,
            places,
            held: None,
            last: None,
            taken: 0,
        }
    }

    /// Takes the lines whose seq is at most `bound` into `out`: at least
    /// one, then while fewer than `limit` bytes were taken. Returns the
    /// bytes taken.
    fn pull(&mut self, bound: u64, out: &mut Vec<Line>, limit: usize) -> Result<usize, Stop> {
        let mut taken = 0;
        while !self.stopped && (taken == 0 || taken < limit) {
            let line = match self.held.take() {
                Some(line) => line,
                None => match self
                    .lines
                    .as_mut()
                    .map(Lines::next_line)
                    .transpose()?
                    .flatten()
                {
                    Some((number, bytes)) => {
                        let mut line = Line::new(number, peek_seq(&bytes), bytes);
                        line.place = self.places.as_mut().and_then(|places| {
                            let (place, local) = places.of(number)?;
                            Some(LinePlace {
                                file: Arc::clone(&place.file),
                                number: local,
                                from: place.from,
                                to: place.to,
                            })
                        });
                        line
                    }
                    None => {
                        self.stopped = true;
                        break;
                    }
                },
            };
            match line.seq {
                Some(seq) if seq > bound => {
                    self.held = Some(line);
                    break;
                }
                Some(seq) => {
                    if self.last.is_some_and(|last| seq <= last) {
                        return Err(Stop::Reordered);
                    }
                    self.last = Some(seq);
                }
                None => self.stopped = true,
            }
            taken += line.bytes.len();
            self.taken += 1;
            out.push(line);
        }
        Ok(taken)
    }

    /// What the whole file is, for the manifest's file list.
    fn finish(self) -> Result<Option<Digest>, BundleError> {
        self.lines.map(Lines::finish).transpose()
    }
}

/// Reads the bundle's lines in rounds.
struct Reader {
    entries: Lines,
    entries_done: bool,
    /// Entry lines read.
    taken: u64,
    from: u64,
    signatures: Paired,
    payloads: Paired,
}

impl Reader {
    fn round(&mut self) -> Result<Round, Stop> {
        let mut round = Round::default();
        while round.entries.len() < CHUNK && round.bytes < ROUND_BYTES {
            let left = ROUND_BYTES.saturating_sub(round.bytes);
            if self.entries_done {
                // Lines beyond the last entry: each is refused.
                let taken = self
                    .signatures
                    .pull(u64::MAX, &mut round.signatures, left)?
                    + self.payloads.pull(u64::MAX, &mut round.payloads, left)?;
                if taken == 0 {
                    break;
                }
                round.bytes += taken;
                continue;
            }
            let Some((number, bytes)) = self.entries.next_line()? else {
                self.entries_done = true;
                continue;
            };
            // The seq this line holds when the bundle is right: its lines
            // are taken with it. When it is not, the seqs check fails
            // before anything the pairing decides.
            let bound = self.from + self.taken;
            self.taken += 1;
            round.bytes += bytes.len();
            round.entries.push(Line::new(number, None, bytes));
            round.bytes += self.signatures.pull(bound, &mut round.signatures, left)?;
            round.bytes += self.payloads.pull(bound, &mut round.payloads, left)?;
        }
        Ok(round)
    }
}

/// A parsed round, its entries not yet taken by the ordered checks.
struct Pending {
    /// In line order, up to the first that did not parse.
    parsed: Vec<Parsed>,
    /// Why the line after the last of `parsed` did not parse, if one did not.
    failed: Option<BundleError>,
    signatures: Vec<Line>,
    payloads: Vec<Line>,
}

/// A round taken by the ordered checks, whose signature and payload lines
/// are checked next.
struct Checking {
    entries: Vec<Parsed>,
    signatures: Vec<Line>,
    payloads: Vec<Line>,
}

/// The work of one round, shared by the threads.
struct Jobs<'a> {
    origin: &'a str,
    /// Blocks of entry lines, each taken by one thread.
    blocks: Vec<Mutex<Option<Vec<Line>>>>,
    next_block: AtomicUsize,
    checks: Option<Checks<'a>>,
    next_check: AtomicUsize,
}

/// The previous round's signature and payload lines, with its entries.
struct Checks<'a> {
    round: &'a Checking,
    schedule: &'a KeySchedule,
    from: u64,
    signatures: bool,
    payloads: bool,
}

/// What one thread did.
#[derive(Default)]
struct Done {
    parsed: Vec<(usize, Vec<Result<Parsed, BundleError>>)>,
    failures: Vec<(Check, u64, BundleError)>,
    reordered: bool,
}

fn work(jobs: &Jobs<'_>) -> Done {
    let mut done = Done::default();
    loop {
        let index = jobs.next_block.fetch_add(1, Ordering::Relaxed);
        let Some(block) = jobs.blocks.get(index) else {
            break;
        };
        let lines = block
            .lock()
            .map(|mut block| block.take())
            .unwrap_or_default()
            .unwrap_or_default();
        let parsed = lines
            .into_iter()
            .map(|line| {
                fields::read_entry_scanned(line.bytes, line.number - 1, jobs.origin).map(|entry| {
                    Parsed {
                        leaf: leaf_hash(&entry.bytes),
                        entry,
                    }
                })
            })
            .collect();
        done.parsed.push((index, parsed));
    }
    let Some(checks) = &jobs.checks else {
        return done;
    };
    let (signatures, payloads) = (&checks.round.signatures, &checks.round.payloads);
    let total = signatures.len() + payloads.len();
    loop {
        let start = jobs.next_check.fetch_add(LINES, Ordering::Relaxed);
        if start >= total {
            break;
        }
        for i in start..(start + LINES).min(total) {
            match signatures.get(i) {
                Some(line) if checks.signatures => check_signature(checks, line, &mut done),
                Some(_) => {}
                None if checks.payloads => {
                    check_payload(checks, &payloads[i - signatures.len()], &mut done);
                }
                None => {}
            }
        }
    }
    done
}

/// The round's entry of `seq` (its entries are in seq order when the
/// bundle is right).
fn entry_of(round: &Checking, seq: u64) -> Option<&BundleEntry> {
    // Where a right bundle has it (one entry a seq): one look, where a
    // binary search over a round's entries missed the cache at each step.
    let guess = round.entries.first().and_then(|first| {
        let at = usize::try_from(seq.checked_sub(first.entry.seq)?).ok()?;
        round
            .entries
            .get(at)
            .filter(|parsed| parsed.entry.seq == seq)
    });
    if let Some(parsed) = guess {
        return Some(&parsed.entry);
    }
    let at = round
        .entries
        .binary_search_by_key(&seq, |parsed| parsed.entry.seq)
        .ok()?;
    Some(&round.entries[at].entry)
}

fn check_signature(checks: &Checks<'_>, line: &Line, done: &mut Done) {
    let number = line.number;
    if let Some(err) = line.misplaced() {
        done.failures.push((Check::Signatures, number as u64, err));
        return;
    }
    let checked = lines::signature_line(number, &line.bytes).and_then(|(seq, object)| {
        if line.seq != Some(seq) {
            done.reordered = true;
            return Ok(());
        }
        let signature = lines::signature_of(seq, number, &object)?;
        let entry = entry_of(checks.round, seq);
        lines::check_signature(seq, number, &signature, entry, checks.schedule, checks.from)
    });
    if let Err(err) = checked {
        let err = line.named("signatures", err);
        done.failures.push((Check::Signatures, number as u64, err));
    }
}

fn check_payload(checks: &Checks<'_>, line: &Line, done: &mut Done) {
    let number = line.number;
    if let Some(err) = line.misplaced() {
        done.failures.push((Check::Payloads, number as u64, err));
        return;
    }
    let checked = lines::payload_line(number, &line.bytes).and_then(|(seq, object)| {
        if line.seq != Some(seq) {
            done.reordered = true;
            return Ok(());
        }
        lines::check_payload(seq, number, &object, entry_of(checks.round, seq))
    });
    if let Err(err) = checked {
        let err = line.named("payloads", err);
        done.failures.push((Check::Payloads, number as u64, err));
    }
}

/// Whether `lines` (in seq order) hold one for `seq`.
fn has_line(lines: &[Line], seq: u64) -> bool {
    // Where the line is when every entry has one: one look first.
    let guess = lines
        .first()
        .and_then(|first| seq.checked_sub(first.seq?))
        .and_then(|at| usize::try_from(at).ok())
        .and_then(|at| lines.get(at));
    if guess.is_some_and(|line| line.seq == Some(seq)) {
        return true;
    }
    lines
        .binary_search_by_key(&seq, |line| line.seq.unwrap_or(u64::MAX))
        .is_ok()
}

/// Verifies the contiguous bundle in `dir` in one pass.
pub(super) fn contiguous(
    dir: &Path,
    manifest: &Manifest,
    claimed: &Checkpoint,
    first_key: &NoteVerifier,
    current: Option<&NoteVerifier>,
    note: &str,
    jobs: usize,
) -> Result<Outcome, BundleError> {
    match pass(dir, manifest, claimed, first_key, current, note, jobs) {
        Ok(outcome) => Ok(outcome),
        Err(Stop::Reordered) => Ok(Outcome::InMemory),
        Err(Stop::Bundle(err)) => Err(name_chunk(manifest, err)),
    }
}

/// A chunked bundle's problem with an entry, named by the chunk file that
/// holds its line too (docs/audit-format.md section 8.4).
fn name_chunk(manifest: &Manifest, err: BundleError) -> BundleError {
    let BundleError::Bad {
        seq: Some(seq),
        item,
        reason,
    } = err
    else {
        return err;
    };
    if reason.contains("chunks/") {
        // Named by its chunk file already (a signature or payload line).
        return BundleError::Bad {
            seq: Some(seq),
            item,
            reason,
        };
    }
    let Some(chunked) = (manifest.version >= 3)
        .then(|| super::chunks::read(manifest).ok())
        .flatten()
    else {
        return BundleError::Bad {
            seq: Some(seq),
            item,
            reason,
        };
    };
    // A line of the entries' stream: its chunk file and its number there
    // (the files hold one line per seq of their chunk, as the file list
    // checked before the lines were read).
    let line = reason
        .strip_prefix("entries.jsonl line ")
        .and_then(|rest| rest.split_once(": "))
        .and_then(|(number, rest)| Some((number.parse::<u64>().ok()?, rest)))
        .filter(|(number, _)| *number >= 1);
    if let Some((number, rest)) = line
        && let Some(chunk) = chunked.chunks.iter().find(|chunk| {
            (chunk.from - manifest.from..chunk.to - manifest.from).contains(&(number - 1))
        })
        && let Some(file) = chunk.files.first()
    {
        let local = number - (chunk.from - manifest.from);
        return BundleError::Bad {
            seq: Some(seq),
            item: format!("{file}: {item}"),
            reason: format!("line {local}: {rest}"),
        };
    }
    let item = match chunked.file_of(seq) {
        Some(file) => format!("{file}: {item}"),
        None => item,
    };
    BundleError::Bad {
        seq: Some(seq),
        item,
        reason,
    }
}

/// The lines of `kind` (`entries`, `signatures`, `payloads`): the one
/// file, or the chunks' files one after the other.
fn open_lines(
    dir: &Path,
    chunked: Option<&Chunked>,
    kind: &str,
) -> Result<Option<Lines>, BundleError> {
    match chunked {
        Some(chunked) => chunked.lines(dir, kind),
        None => Lines::open(dir, &format!("{kind}.jsonl")),
    }
}

fn pass(
    dir: &Path,
    manifest: &Manifest,
    claimed: &Checkpoint,
    first_key: &NoteVerifier,
    current: Option<&NoteVerifier>,
    note: &str,
    jobs: usize,
) -> Result<Outcome, Stop> {
    let (from, to, origin) = (manifest.from, manifest.to, claimed.origin.as_str());
    let evidence = manifest.version >= 2;
    let files = manifest.raw.get("files");
    let chunked = if manifest.version >= 3 {
        Some(super::chunks::read(manifest)?)
    } else {
        None
    };
    let chunked = chunked.as_ref();
    // Step 1 first for chunks: a changed compressed file is then named by
    // its SHA-256 rather than by what decompressing it meets.
    if let (Some(files), Some(chunked)) = (files, chunked) {
        chunked.check_files(dir, files, true)?;
    }
    let Some(entries) = open_lines(dir, chunked, "entries")? else {
        if let Some(files) = files {
            digest::check_listed(files, &mut |name| digest::digest_file(dir, name))?;
        }
        return Err(bad("entries", "entries.jsonl is missing").into());
    };
    let mut first = First::default();
    let frontier = match super::prefix_hashes(manifest.raw.get("prefix"), from) {
        Ok(prefix) => super::frontier_from_prefix(from, &prefix),
        Err(err) => {
            first.error(Check::Range, 0, err);
            Frontier::new()
        }
    };
    if claimed.size != to {
        let reason = format!("size {} is not the bundle's to {to}", claimed.size);
        first.error(Check::Range, 1, bad("checkpoint", reason));
    }
    let (schedule, context, checkpoints) = if evidence {
        let context = super::context::read_context(dir, origin, from, to);
        let context = first.check(Check::Context, 0, context).unwrap_or_default();
        let checkpoints = Lines::open(dir, "checkpoints.jsonl")?;
        if checkpoints.is_none() {
            let missing = bad("checkpoints", "checkpoints.jsonl is missing");
            first.error(Check::CheckpointLines, 0, missing);
        }
        (KeySchedule::new(first_key.clone()), context, checkpoints)
    } else {
        let start = super::key_at_from(from, first_key, current);
        let start = first.check(Check::StartKey, 0, start).unwrap_or(first_key);
        (KeySchedule::new(start.clone()), Default::default(), None)
    };
    let declared = match chunked {
        Some(chunked) => lines::chunk_payloads_declared(chunked.has("payloads"), manifest.payloads),
        None => lines::payloads_declared(dir.join("payloads.jsonl").exists(), manifest.payloads),
    };
    let payloads = match declared {
        Ok(true) => open_lines(dir, chunked, "payloads")?,
        Ok(false) => None,
        Err(err) => {
            first.error(Check::Payloads, 0, err);
            None
        }
    };
    let start = Start {
        from,
        to,
        origin,
        evidence,
        payloads: manifest.payloads,
        schedule,
        frontier,
        checkpoints,
        context,
        alone: None,
        marks: chunked
            .map(|chunked| {
                chunked
                    .chunks
                    .iter()
                    .map(|chunk| (chunk.from, chunk.prefix.clone(), chunk.signing))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut ordered = Ordered::new(start, first)?;
    if let Some(current) = current.filter(|_| evidence) {
        let at_from = ordered.schedule.entry_key(from);
        if at_from != current {
            let reason = format!(
                "--current-vkey {} is not the key in force at from, {} (from the first key and \
                 the bundle's rotations)",
                current.vkey(),
                at_from.vkey()
            );
            ordered.first.error(Check::Current, 0, bad("keys", reason));
        }
    }
    let mut reader = Reader {
        entries,
        entries_done: false,
        taken: 0,
        from,
        signatures: Paired::new(
            open_lines(dir, chunked, "signatures")?,
            chunked.map(|chunked| chunked.places(files, "signatures")),
        ),
        payloads: Paired::new(
            payloads,
            chunked.map(|chunked| chunked.places(files, "payloads")),
        ),
    };
    let threads = super::parallel::threads(jobs);
    run(&mut reader, &mut ordered, origin, from, threads)?;
    let entries = ordered.entries();
    let finished = ordered.finish(note)?;
    let (signatures, payloads) = (reader.signatures.taken, reader.payloads.taken);
    // Every file read to its end, for the manifest's file list.
    let mut digests: BTreeMap<&str, Option<Digest>> = BTreeMap::new();
    digests.insert("entries.jsonl", Some(reader.entries.finish()?));
    if reader.signatures.lines.is_some() {
        digests.insert("signatures.jsonl", reader.signatures.finish()?);
    }
    if reader.payloads.lines.is_some() {
        digests.insert("payloads.jsonl", reader.payloads.finish()?);
    }
    if let Some(lines) = finished.checkpoint_lines {
        digests.insert("checkpoints.jsonl", Some(lines.finish()?));
    }
    let mut first = finished.first;
    if chunked.is_some() {
        // Checked before the pass.
    } else if let Some(files) = files {
        let listed = digest::check_listed(files, &mut |name| match digests.get(name) {
            Some(found) => Ok(found.clone()),
            None => digest::digest_file(dir, name),
        });
        first.check(Check::Files, 0, listed);
    }
    match first.take() {
        None => {}
        Some(Found::Ready(err)) => return Err(err.into()),
        Some(Found::Unopened(unopened)) => return Err(unopened.hinted(&finished.schedule).into()),
        Some(Found::NotOpen { seq, decision_seq }) => {
            return Err(not_open(dir, chunked, from, seq, decision_seq)?.into());
        }
    }
    let Some(checkpoint) = finished.of_to else {
        return Err(bad("checkpoint", format!("no checkpoint of size {to}")).into());
    };
    let report = BundleReport {
        form: BundleForm::Contiguous,
        origin: checkpoint.origin,
        from,
        to,
        size: to,
        entries,
        payloads,
        signatures,
        rotations: finished.schedule.count(),
        keys: finished.schedule.keys().cloned().collect(),
        filter: None,
        warnings: Vec::new(),
        open_streams: finished.open_streams,
    };
    Ok(Outcome::Verified(Box::new((report, finished.schedule))))
}

/// The rounds, three at a time: while this thread hands the previous
/// round's parsed entries to the ordered checks and reads the next round,
/// the other threads (this one too, when done) parse this round and check
/// the signatures and payloads of the round before the previous one. So
/// the checks in seq order (the tree's nodes, the chain) run beside the
/// parallel work rather than after it.
fn run(
    reader: &mut Reader,
    ordered: &mut Ordered<'_>,
    origin: &str,
    from: u64,
    threads: usize,
) -> Result<(), Stop> {
    let mut round = reader.round()?;
    let mut pending: Option<Pending> = None;
    let mut checking: Option<Checking> = None;
    while !round.is_empty() || pending.is_some() || checking.is_some() {
        if ordered
            .first
            .kept()
            .is_some_and(|kept| kept <= Check::Parse)
        {
            // Nothing but the file list can come first now.
            break;
        }
        let mut entries = std::mem::take(&mut round.entries).into_iter().peekable();
        let mut blocks = Vec::new();
        while entries.peek().is_some() {
            blocks.push(Mutex::new(Some(entries.by_ref().take(BLOCK).collect())));
        }
        // The key schedule as of the entries taken: the round checked now
        // was taken before, so it holds every rotation before its seqs.
        let schedule = ordered.schedule.clone();
        let jobs = Jobs {
            origin,
            blocks,
            next_block: AtomicUsize::new(0),
            checks: checking.as_ref().map(|round| Checks {
                round,
                schedule: &schedule,
                from,
                signatures: ordered.first.wants(Check::Signatures),
                payloads: ordered.first.wants(Check::Payloads),
            }),
            next_check: AtomicUsize::new(0),
        };
        let more = !reader.entries_done || !reader.signatures.stopped || !reader.payloads.stopped;
        let previous = pending.take();
        let (taken, next, dones, threads_ok) = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(|| work(&jobs))).collect();
            // This thread takes the previous round and reads the next one,
            // then joins in.
            let taken = previous.map(|previous| take(ordered, previous)).transpose();
            let next = if more {
                reader.round()
            } else {
                Ok(Round::default())
            };
            let mut dones = vec![work(&jobs)];
            let mut threads_ok = true;
            for helper in helpers {
                match helper.join() {
                    Ok(done) => dones.push(done),
                    Err(_) => threads_ok = false,
                }
            }
            (taken, next, dones, threads_ok)
        });
        drop(jobs);
        if !threads_ok {
            return Err(bad("bundle", "a verification thread failed").into());
        }
        let (taken, next) = (taken?, next?);
        let mut parsed = Vec::new();
        for done in dones {
            if done.reordered {
                return Err(Stop::Reordered);
            }
            for (check, at, err) in done.failures {
                ordered.first.error(check, at, err);
            }
            parsed.extend(done.parsed);
        }
        parsed.sort_unstable_by_key(|(index, _)| *index);
        checking = taken.filter(|c| {
            !(c.entries.is_empty() && c.signatures.is_empty() && c.payloads.is_empty())
        });
        // Moved once, into the vector the ordered checks and then the
        // signature and payload checks read in place (an entry is a few
        // hundred bytes: moving each again showed in profiles).
        let mut entries = Vec::with_capacity(parsed.iter().map(|(_, block)| block.len()).sum());
        let mut failed = None;
        for result in parsed.into_iter().flat_map(|(_, block)| block) {
            match result {
                Ok(entry) => entries.push(entry),
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        pending = Some(Pending {
            parsed: entries,
            failed,
            signatures: round.signatures,
            payloads: round.payloads,
        })
        .filter(|p| {
            !(p.parsed.is_empty()
                && p.failed.is_none()
                && p.signatures.is_empty()
                && p.payloads.is_empty())
        });
        round = next;
    }
    Ok(())
}

/// One chunk's lines through the ordered checks (`chunk_pass`): its
/// entries, and its signature and payload lines when it has them, on
/// `threads` threads. Returns the three files, read to the end of what the
/// pass took, and the signature and payload lines taken.
pub(super) fn run_chunk(
    entries: Lines,
    signatures: Option<Lines>,
    payloads: Option<Lines>,
    ordered: &mut Ordered<'_>,
    origin: &str,
    threads: usize,
) -> Result<ChunkLines, BundleError> {
    let from = ordered.from();
    let mut reader = Reader {
        entries,
        entries_done: false,
        taken: 0,
        from,
        signatures: Paired::new(signatures, None),
        payloads: Paired::new(payloads, None),
    };
    match run(&mut reader, ordered, origin, from, threads) {
        Ok(()) => {}
        Err(Stop::Bundle(err)) => return Err(err),
        Err(Stop::Reordered) => {
            return Err(bad(
                "bundle",
                "signature or payload lines are not in increasing seq order",
            ));
        }
    }
    Ok(ChunkLines {
        signatures_taken: reader.signatures.taken,
        payloads_taken: reader.payloads.taken,
        entries: reader.entries,
        signatures: reader.signatures.lines,
        payloads: reader.payloads.lines,
    })
}

/// A chunk's files after [`run_chunk`].
pub(super) struct ChunkLines {
    pub(super) entries: Lines,
    pub(super) signatures: Option<Lines>,
    pub(super) payloads: Option<Lines>,
    pub(super) signatures_taken: u64,
    pub(super) payloads_taken: u64,
}

/// Hands a parsed round's entries to the ordered checks, up to the first
/// that did not parse.
fn take(ordered: &mut Ordered<'_>, pending: Pending) -> Result<Checking, Stop> {
    for parsed in &pending.parsed {
        let seq = parsed.entry.seq;
        let signed = has_line(&pending.signatures, seq);
        let paid = has_line(&pending.payloads, seq);
        ordered.take(parsed, signed, paid)?;
    }
    if let Some(err) = pending.failed {
        let line = ordered.entries();
        ordered.first.error(Check::Parse, line, err);
    }
    Ok(Checking {
        entries: pending.parsed,
        signatures: pending.signatures,
        payloads: pending.payloads,
    })
}

/// Why the `stream_ended` at `seq` names `decision_seq`, an entry of the
/// bundle that begins no open stream: it is no streaming decision, or
/// its stream already ended. Read back from `entries.jsonl` (only when
/// this is the problem reported).
fn not_open(
    dir: &Path,
    chunked: Option<&Chunked>,
    from: u64,
    seq: u64,
    decision_seq: u64,
) -> Result<BundleError, BundleError> {
    let mut entries = open_lines(dir, chunked, "entries")?
        .ok_or_else(|| bad("entries", "entries.jsonl is missing"))?;
    let mut decision = serde_json::Value::Null;
    let mut ended_at = None;
    // The seqs check passed: line `n` holds seq `from + n - 1`.
    while let Some((number, line)) = entries.next_line()? {
        let at = from + number as u64 - 1;
        if at >= seq {
            break;
        }
        if at < decision_seq {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        if at == decision_seq {
            decision = value;
        } else if value["kind"] == "stream_ended" && value["decision_seq"] == decision_seq {
            ended_at = Some(at);
            break;
        }
    }
    let named = format!("stream_ended: decision_seq {decision_seq}");
    let reason = if decision["kind"] != "decision" {
        format!("{named} names a {} entry, not a decision", decision["kind"])
    } else if decision["outcome"] != "streaming" {
        format!(
            "{named} names a decision with outcome {}, not streaming",
            decision["outcome"]
        )
    } else {
        format!(
            "stream_ended: the stream of the decision at seq {decision_seq} already ended at \
             seq {} (a second stream_ended)",
            ended_at.map_or_else(|| "?".to_owned(), |at| at.to_string())
        )
    };
    Ok(bad_seq(seq, reason))
}
