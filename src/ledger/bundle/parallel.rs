//! A chunked bundle (`govgate-bundle/3`, docs/audit-format.md section 8.4)
//! checked chunk by chunk on worker threads, and one chunk checked alone
//! (`--chunk A`).
//!
//! Each chunk is checked by `chunk_pass` with the key schedule the
//! manifest's (unsigned) `rotations` give for its `from`; one more task
//! opens and links every carried checkpoint with the same schedule. At
//! most `jobs` tasks run at once, each in bounded memory, and each hands
//! back a summary, never its entries. The step that joins them, in seq
//! order, checks the joins (`prev_hash`, `prefix`, `entry_signatures`),
//! that each chunk's own `key_rotated` entries are the rotations its
//! successors were checked with (so the schedule used is the one the
//! entries prove), and the checks that span chunks (streams ended in a
//! later chunk, payloads erased by a later entry).
//!
//! Any problem sends the bundle to the one-stream pass (`stream`), which
//! names the first problem in seq order exactly as before: so the outcome
//! never depends on the number of threads, and a bundle that verifies is
//! read once.

use super::chunk_pass::{ChunkDone, ChunkTask};
use super::chunks::Chunked;
use super::context::Context;
use super::digest::{Digest, Lines};
use super::first::{First, Found};
use super::keys::KeySchedule;
use super::lines::BundleEntry;
use super::ordered::{Ordered, Start};
use super::{BundleError, BundleForm, BundleReport, Manifest, bad, bad_seq};
use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::seq_set::SeqSet;
use crate::ledger::tree::Frontier;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What one chunk checked alone (`--chunk A`) shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkReport {
    /// The log's origin.
    pub origin: String,
    /// The chunk's first seq.
    pub from: u64,
    /// The seq after the chunk's last.
    pub to: u64,
    /// The bundle's `to` (the size of `checkpoint.txt`).
    pub size: u64,
    /// Entries checked.
    pub entries: u64,
    /// Payloads checked against their commitments.
    pub payloads: u64,
    /// Per-entry signatures checked.
    pub signatures: u64,
    /// `key_rotated` entries followed (the manifest's for other chunks).
    pub rotations: u64,
    /// The checks that need other chunks, not made.
    pub not_made: Vec<String>,
    /// Streamed decisions of the chunk whose end is not in it.
    pub open_streams: Vec<u64>,
}

/// What every task reads, prepared once.
struct Shared<'a> {
    dir: &'a Path,
    manifest: &'a Manifest,
    chunked: Chunked,
    origin: &'a str,
    files: &'a Map<String, Value>,
    first_key: &'a NoteVerifier,
    /// The tree's right edge at the bundle's `from`.
    frontier: Frontier,
    context: Context,
    /// The manifest's rotations of a seq in `from..to`, as entries.
    hints: Vec<BundleEntry>,
    /// The `entry_signatures` setting at `from` (the context's).
    signing: bool,
}

/// What a task hands back.
enum Done {
    /// The carried checkpoints: the one of size `to`, the key schedule.
    Carried(Box<(Checkpoint, KeySchedule)>),
    Chunk(Box<ChunkDone>),
}

/// The threads to use for `jobs` (0: every core).
pub(super) fn threads(jobs: usize) -> usize {
    match jobs {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        jobs => jobs,
    }
}

/// The whole chunked bundle on `jobs` threads; `None` when anything does
/// not verify (the caller then runs the one-stream pass, which names it).
pub(super) fn verify(
    dir: &Path,
    manifest: &Manifest,
    claimed: &Checkpoint,
    first_key: &NoteVerifier,
    current: Option<&NoteVerifier>,
    note: &str,
    jobs: usize,
) -> Option<(BundleReport, KeySchedule)> {
    let shared = prepare(dir, manifest, claimed, first_key, current, false).ok()?;
    let chunks = shared.chunked.chunks.len();
    let jobs = threads(jobs);
    let inner = (jobs / jobs.min(chunks).max(1)).max(1);
    let tasks: Vec<usize> = (0..=chunks).collect();
    let dones = run(jobs, &tasks, |task| run_task(&shared, note, task, inner)).ok()?;
    combine(&shared, dones)
}

/// One task: 0 the carried checkpoints, `i` the chunk `i - 1`.
fn run_task(
    shared: &Shared<'_>,
    note: &str,
    task: usize,
    threads: usize,
) -> Result<Done, BundleError> {
    let Some(index) = task.checked_sub(1) else {
        return carried(shared, note).map(|done| Done::Carried(Box::new(done)));
    };
    let chunk = &shared.chunked.chunks[index];
    let task = ChunkTask {
        dir: shared.dir,
        origin: shared.origin,
        compression: shared.chunked.compression,
        chunk,
        files: shared.files,
        payloads: shared.manifest.payloads,
        schedule: schedule_at(shared, chunk.from)?,
        threads,
    };
    let checked = super::chunk_pass::check(task).and_then(|mut done| {
        let first = std::mem::take(&mut done.end.first);
        match first.take() {
            Some(found) => Err(named(
                &chunk.files[0],
                found_error(found, &done.end.schedule),
            )),
            None => Ok(Done::Chunk(Box::new(done))),
        }
    });
    // A chunk file changed as stored is named by its SHA-256 rather than
    // by what decompressing or reading it met.
    if checked.is_err() {
        stored_as_listed(shared, chunk)?;
    }
    checked
}

/// A chunk's files' stored bytes against the manifest's `files`.
fn stored_as_listed(shared: &Shared<'_>, chunk: &super::chunks::Chunk) -> Result<(), BundleError> {
    for name in &chunk.files {
        let (sha256, bytes) = super::chunks::stored(shared.dir, name)?;
        let expected = shared.files.get(name);
        if expected.and_then(|e| e["sha256"].as_str()) != Some(sha256.as_str()) {
            return Err(bad(
                "files",
                format!("{name}: its SHA-256 is not the manifest's"),
            ));
        }
        if let Some(said) = expected.and_then(|e| e.get("bytes"))
            && said.as_u64() != Some(bytes)
        {
            return Err(bad(
                "files",
                format!("{name} has {bytes} bytes, the manifest says {said}"),
            ));
        }
    }
    Ok(())
}

/// Runs `work` over `tasks` on `jobs` threads, each taking the next task
/// when done; stops handing out tasks at the first error (the one of the
/// lowest task is returned).
fn run<T: Send>(
    jobs: usize,
    tasks: &[usize],
    work: impl Fn(usize) -> Result<T, BundleError> + Sync,
) -> Result<Vec<T>, BundleError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<T, BundleError>>>> =
        tasks.iter().map(|_| Mutex::new(None)).collect();
    let worker = || {
        loop {
            if failed.load(Ordering::Relaxed) {
                return;
            }
            let at = next.fetch_add(1, Ordering::Relaxed);
            let Some(&task) = tasks.get(at) else {
                return;
            };
            let result = work(task);
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            if let Ok(mut slot) = results[at].lock() {
                *slot = Some(result);
            }
        }
    };
    let threads_ok = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..jobs.min(tasks.len()))
            .map(|_| scope.spawn(worker))
            .collect();
        worker();
        helpers.into_iter().all(|helper| helper.join().is_ok())
    });
    if !threads_ok {
        return Err(bad("bundle", "a verification thread failed"));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for slot in results {
        match slot.into_inner().ok().flatten() {
            Some(Ok(done)) => out.push(done),
            Some(Err(err)) => return Err(err),
            None => return Err(bad("bundle", "a task was not run")),
        }
    }
    Ok(out)
}

/// A problem found in a chunk's entries, named by the chunk's file.
fn named(file: &str, err: BundleError) -> BundleError {
    match err {
        BundleError::Bad {
            seq: Some(seq),
            item,
            reason,
        } if !item.starts_with("chunks/") => BundleError::Bad {
            seq: Some(seq),
            item: format!("{file}: {item}"),
            reason,
        },
        err => err,
    }
}

fn found_error(found: Found, schedule: &KeySchedule) -> BundleError {
    match found {
        Found::Ready(err) => err,
        Found::Unopened(unopened) => unopened.hinted(schedule),
        Found::NotOpen { seq, decision_seq } => bad_seq(
            seq,
            format!(
                "stream_ended: decision_seq {decision_seq} names an entry of the chunk that \
                 begins no stream still open"
            ),
        ),
    }
}

/// The manifest, the file list (but for the chunks' files), the range,
/// the prefix, the context and the key at `from`, read once for every
/// task. `alone`: one chunk is checked, whose fellows may be absent.
fn prepare<'a>(
    dir: &'a Path,
    manifest: &'a Manifest,
    claimed: &'a Checkpoint,
    first_key: &'a NoteVerifier,
    current: Option<&NoteVerifier>,
    alone: bool,
) -> Result<Shared<'a>, BundleError> {
    let (from, to) = (manifest.from, manifest.to);
    let origin = claimed.origin.as_str();
    let chunked = super::chunks::read(manifest)?;
    let Some(Value::Object(files)) = manifest.raw.get("files") else {
        return Err(bad("manifest", "files is not an object"));
    };
    if alone {
        check_top_files(dir, files)?;
    } else if let Some(listed) = manifest.raw.get("files") {
        chunked.check_files(dir, listed, false)?;
    }
    if claimed.size != to {
        let reason = format!("size {} is not the bundle's to {to}", claimed.size);
        return Err(bad("checkpoint", reason));
    }
    let prefix = super::prefix_hashes(manifest.raw.get("prefix"), from)?;
    let context = super::context::read_context(dir, origin, from, to)?;
    if !alone {
        super::lines::chunk_payloads_declared(chunked.has("payloads"), manifest.payloads)?;
    }
    let signing = context.setting_before(from).is_some_and(|(_, on)| on);
    let shared = Shared {
        dir,
        manifest,
        chunked,
        origin,
        files,
        first_key,
        frontier: super::frontier_from_prefix(from, &prefix),
        context,
        hints: hints(manifest, from, to)?,
        signing,
    };
    if let Some(current) = current {
        let schedule = schedule_at(&shared, from)?;
        let at_from = schedule.entry_key(from);
        if at_from != current {
            let reason = format!(
                "--current-vkey {} is not the key in force at from, {} (from the first key and \
                 the bundle's rotations)",
                current.vkey(),
                at_from.vkey()
            );
            return Err(bad("keys", reason));
        }
    }
    Ok(shared)
}

/// With `--chunk`: the files beside the chunks, against the manifest's
/// `files`: `checkpoint.txt`, `checkpoints.jsonl` and, when the manifest
/// lists it, `context.jsonl` (what came before the bundle: the key and
/// the signature setting in force at its start) must be there.
fn check_top_files(dir: &Path, files: &Map<String, Value>) -> Result<(), BundleError> {
    for name in ["checkpoint.txt", "checkpoints.jsonl", "context.jsonl"] {
        let found = super::digest::digest_file(dir, name)?;
        let (expected, found) = match (files.get(name), found) {
            (Some(expected), Some(found)) => (expected, found),
            (None, None) if name == "context.jsonl" => continue,
            (Some(_), None) => {
                return Err(bad(
                    "files",
                    format!("{name} is missing (the manifest lists it)"),
                ));
            }
            (None, _) => {
                return Err(bad(
                    "files",
                    format!("{name} is present but the manifest does not list it"),
                ));
            }
        };
        let Digest { lines, sha256 } = found;
        super::chunks::check_lines(name, expected, lines)?;
        super::chunks::check_stored(name, expected, &sha256, None)?;
    }
    Ok(())
}

/// The manifest's `rotations` with a seq in `from..to`, as the
/// `key_rotated` entries they stand for.
fn hints(manifest: &Manifest, from: u64, to: u64) -> Result<Vec<BundleEntry>, BundleError> {
    let Some(Value::Array(listed)) = manifest.raw.get("rotations") else {
        return Ok(Vec::new());
    };
    let mut hints = Vec::new();
    for item in listed {
        let Some(seq) = item["seq"].as_u64() else {
            return Err(bad("manifest", "a rotation's seq is not a seq"));
        };
        if !(from..to).contains(&seq) {
            continue;
        }
        if hints
            .last()
            .is_some_and(|last: &BundleEntry| last.seq >= seq)
        {
            return Err(bad("manifest", "rotations are not in increasing seq order"));
        }
        let mut value = item.clone();
        value["kind"] = "key_rotated".into();
        hints.push(BundleEntry {
            seq,
            bytes: bytes::Bytes::new(),
            value,
            hash: String::new(),
            spans: None,
        });
    }
    Ok(hints)
}

/// The key schedule at seq `at`: the context's rotations before `from`,
/// then the manifest's rotations before `at`.
fn schedule_at(shared: &Shared<'_>, at: u64) -> Result<KeySchedule, BundleError> {
    let mut schedule = KeySchedule::new(shared.first_key.clone());
    let before = shared.context.before(shared.manifest.from);
    for entry in before.chain(shared.hints.iter().filter(|hint| hint.seq < at)) {
        schedule.push(entry, shared.origin)?;
    }
    Ok(schedule)
}

/// Every carried checkpoint opened with the key in force for its size
/// (the manifest's rotations standing in for the chunks' entries) and
/// linked to the one before; the one of size `to` is `checkpoint.txt`;
/// each rotation has its own; the context is proven.
fn carried(shared: &Shared<'_>, note: &str) -> Result<(Checkpoint, KeySchedule), BundleError> {
    let manifest = shared.manifest;
    let checkpoints = Lines::open(shared.dir, "checkpoints.jsonl")?
        .ok_or_else(|| bad("checkpoints", "checkpoints.jsonl is missing"))?;
    let start = Start {
        from: manifest.from,
        to: manifest.to,
        origin: shared.origin,
        evidence: true,
        payloads: manifest.payloads,
        schedule: KeySchedule::new(shared.first_key.clone()),
        frontier: shared.frontier.clone(),
        checkpoints: Some(checkpoints),
        context: shared.context.clone(),
        marks: Vec::new(),
        alone: None,
    };
    let mut ordered = Ordered::new(start, First::default())?;
    ordered.entries_elsewhere(&shared.hints, manifest.to - manifest.from);
    let finished = ordered.finish(note)?;
    if let Some(found) = finished.first.take() {
        return Err(found_error(found, &finished.schedule));
    }
    let checkpoint = finished.of_to.ok_or_else(|| {
        bad(
            "checkpoint",
            format!("no checkpoint of size {}", manifest.to),
        )
    })?;
    Ok((checkpoint, finished.schedule))
}

/// The chunks' summaries joined in seq order; `None` at the first
/// problem.
fn combine(shared: &Shared<'_>, dones: Vec<Done>) -> Option<(BundleReport, KeySchedule)> {
    let mut dones = dones.into_iter();
    let Some(Done::Carried(carried)) = dones.next() else {
        return None;
    };
    let (checkpoint, schedule) = *carried;
    let from = shared.manifest.from;
    let mut edge = shared.frontier.clone();
    let mut signing = shared.signing;
    let mut last_hash: Option<String> = None;
    let mut open: BTreeMap<u64, Value> = BTreeMap::new();
    let mut ended_before: BTreeSet<u64> = BTreeSet::new();
    let mut unpaid = SeqSet::new();
    let mut erased = shared.context.erased.clone();
    let (mut entries, mut payloads, mut signatures) = (0, 0, 0);
    for (chunk, done) in shared.chunked.chunks.iter().zip(dones) {
        let Done::Chunk(done) = done else {
            return None;
        };
        let end = done.end;
        let range = chunk.from..chunk.to;
        let joined = chunk.prefix == edge
            && chunk.signing == signing
            && last_hash
                .as_ref()
                .is_none_or(|last| end.first_prev.as_ref() == Some(last))
            && end.schedule.rotations_in(range.clone()) == schedule.rotations_in(range);
        if !joined {
            return None;
        }
        for (decision_seq, _, names) in &end.ends {
            if *decision_seq < from {
                if !ended_before.insert(*decision_seq) {
                    return None;
                }
                continue;
            }
            let decision = open.remove(decision_seq)?;
            if super::streams::link_problem(names, &decision, *decision_seq).is_some() {
                return None;
            }
        }
        open.extend(end.open);
        unpaid.extend_from(&end.unpaid);
        erased.extend_from(&end.erased);
        edge = end.frontier;
        signing = end.signing;
        last_hash = end.last_hash;
        entries += end.entries;
        payloads += done.payloads;
        signatures += done.signatures;
    }
    if unpaid.first_not_in(&erased).is_some() {
        return None;
    }
    let report = BundleReport {
        form: BundleForm::Contiguous,
        origin: checkpoint.origin,
        from,
        to: shared.manifest.to,
        size: shared.manifest.to,
        entries,
        payloads,
        signatures,
        rotations: schedule.count(),
        keys: schedule.keys().cloned().collect(),
        filter: None,
        warnings: Vec::new(),
        open_streams: open.into_keys().collect(),
    };
    Some((report, schedule))
}

/// `--chunk A`: the chunk of the bundle in `dir` that starts at `at`,
/// checked alone, on `jobs` threads (0: every core).
pub(super) fn verify_chunk(
    dir: &Path,
    manifest: &Manifest,
    claimed: &Checkpoint,
    first_key: &NoteVerifier,
    current: Option<&NoteVerifier>,
    note: &str,
    (at, jobs): (u64, usize),
) -> Result<ChunkReport, BundleError> {
    let shared = prepare(dir, manifest, claimed, first_key, current, true)?;
    let Some(index) = shared.chunked.chunks.iter().position(|c| c.from == at) else {
        let starts: Vec<String> = shared
            .chunked
            .chunks
            .iter()
            .map(|c| c.from.to_string())
            .collect();
        return Err(BundleError::NoChunk(format!(
            "no chunk of the bundle starts at seq {at} (its chunks start at {})",
            starts.join(", ")
        )));
    };
    let chunk = &shared.chunked.chunks[index];
    let jobs = threads(jobs);
    let dones = run(jobs, &[0, index + 1], |task| {
        run_task(&shared, note, task, jobs)
    })?;
    let mut dones = dones.into_iter();
    let (Some(Done::Carried(carried)), Some(Done::Chunk(done))) = (dones.next(), dones.next())
    else {
        return Err(bad("bundle", "a task was not run"));
    };
    let (checkpoint, schedule) = *carried;
    let end = done.end;
    let file = &chunk.files[0];
    let range = chunk.from..chunk.to;
    if end.schedule.rotations_in(range.clone()) != schedule.rotations_in(range) {
        return Err(bad(
            &format!("{file}: keys"),
            "the chunk's key_rotated entries are not the manifest's rotations in its range",
        ));
    }
    let mut not_made = Vec::new();
    if index == 0 {
        if chunk.prefix != shared.frontier {
            return Err(bad_seq(
                chunk.from,
                format!(
                    "the chunk from {}: its prefix is not the manifest's prefix",
                    chunk.from
                ),
            ));
        }
        if chunk.signing != shared.signing {
            return Err(bad_seq(
                chunk.from,
                format!(
                    "the chunk from {}: its entry_signatures is not the setting the context leaves",
                    chunk.from
                ),
            ));
        }
        not_made.push(
            "the join with the chunk after it (its first entry, tree and signature setting)"
                .to_owned(),
        );
    } else {
        not_made.push(
            "the joins with the chunks before and after it (their last and first entries, tree \
             and signature setting)"
                .to_owned(),
        );
    }
    let elsewhere: Vec<String> = shared
        .hints
        .iter()
        .filter(|hint| !(chunk.from..chunk.to).contains(&hint.seq))
        .map(|hint| hint.seq.to_string())
        .collect();
    if !elsewhere.is_empty() {
        not_made.push(format!(
            "the key_rotated entries at seq {} lie in other chunks: the keys they name are the \
             manifest's rotations, unsigned",
            elsewhere.join(", ")
        ));
    }
    if !end.ends.is_empty() {
        let ends: Vec<String> = end.ends.iter().map(|(_, seq, _)| seq.to_string()).collect();
        not_made.push(format!(
            "the links to entries of other chunks: the stream_ended entries at seq {} name \
             decisions before the chunk, taken as given",
            ends.join(", ")
        ));
    }
    let mut erased = shared.context.erased.clone();
    erased.extend_from(&end.erased);
    if end.unpaid.first_not_in(&erased).is_some() {
        not_made.push(
            "kept payloads without their payloads line: a payload_erased entry of a later chunk \
             may name them"
                .to_owned(),
        );
    }
    Ok(ChunkReport {
        origin: checkpoint.origin,
        from: chunk.from,
        to: chunk.to,
        size: manifest.to,
        entries: end.entries,
        payloads: done.payloads,
        signatures: done.signatures,
        rotations: schedule.count(),
        not_made,
        open_streams: end.open.into_keys().collect(),
    })
}
