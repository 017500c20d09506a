//! One chunk of a `govgate-bundle/3` bundle checked alone
//! (docs/audit-format.md section 8.4), as a worker of the parallel
//! verification or for `govgate verify --bundle DIR --chunk A`: its files
//! read once each (`chunk_read`) against the manifest's `files`; its seqs;
//! its tree from its `prefix` reaching the root every carried checkpoint
//! in its range claims; the chain inside it; its entry signatures (with
//! the key schedule the caller gives for its `from`) and payloads. What
//! reaches before or after it is handed back (`ChunkEnd`) for the step
//! that joins the chunks.

use super::chunks::Chunk;
use super::digest::Lines;
use super::evidence::checkpoint_line;
use super::first::First;
use super::keys::KeySchedule;
use super::ordered::{ChunkEnd, Ordered, Start};
use super::{BundleError, bad, peek_checkpoint};
use crate::ledger::export::Compression;
use crate::ledger::tree::Hash;
use serde_json::{Map, Value};
use std::path::Path;

/// What a chunk is checked with.
pub(super) struct ChunkTask<'a> {
    pub(super) dir: &'a Path,
    pub(super) origin: &'a str,
    pub(super) compression: Compression,
    pub(super) chunk: &'a Chunk,
    /// The manifest's `files`.
    pub(super) files: &'a Map<String, Value>,
    /// The manifest's `payloads`.
    pub(super) payloads: bool,
    /// The key schedule in force at the chunk's `from`.
    pub(super) schedule: KeySchedule,
    /// Threads for the chunk's own rounds.
    pub(super) threads: usize,
}

/// A chunk checked: what the joins need, and what it counted.
pub(super) struct ChunkDone {
    pub(super) end: ChunkEnd,
    pub(super) payloads: u64,
    pub(super) signatures: u64,
}

/// Checks one chunk. A problem in a file or an entry is an error (named by
/// the chunk's file); the joins are left to the caller.
pub(super) fn check(task: ChunkTask<'_>) -> Result<ChunkDone, BundleError> {
    let chunk = task.chunk;
    let roots = claimed_roots(task.dir, chunk.from, chunk.to)?;
    let entries_name = &chunk.files[0];
    let (entries, entries_tail) =
        super::chunk_read::open(task.dir, entries_name, task.compression)?;
    let (mut signatures, mut payloads) = (None, None);
    for name in &chunk.files[1..] {
        let opened = super::chunk_read::open(task.dir, name, task.compression)?;
        if name.contains("/signatures.") {
            signatures = Some((name, opened));
        } else if task.payloads {
            payloads = Some((name, opened));
        } else {
            return Err(bad(
                "payloads",
                format!("{name} is present but the manifest says payloads is false"),
            ));
        }
    }
    let (signature_lines, signature_tail) = split(signatures);
    let (payload_lines, payload_tail) = split(payloads);
    let start = Start {
        from: chunk.from,
        to: chunk.to,
        origin: task.origin,
        evidence: true,
        payloads: task.payloads,
        schedule: task.schedule,
        frontier: chunk.prefix.clone(),
        checkpoints: None,
        context: Default::default(),
        marks: Vec::new(),
        alone: Some((roots, chunk.signing)),
    };
    let mut ordered = Ordered::new(start, First::default())?;
    let read = super::stream::run_chunk(
        entries,
        signature_lines,
        payload_lines,
        &mut ordered,
        task.origin,
        task.threads,
    )?;
    let mut end = ordered.finish_chunk();
    // Each file read to its end: its stored bytes and lines.
    let files = [
        (Some(entries_name), Some(read.entries), Some(entries_tail)),
        (
            signature_tail.as_ref().map(|(name, _)| *name),
            read.signatures,
            signature_tail.map(|(_, tail)| tail),
        ),
        (
            payload_tail.as_ref().map(|(name, _)| *name),
            read.payloads,
            payload_tail.map(|(_, tail)| tail),
        ),
    ];
    for (name, lines, tail) in files {
        let (Some(name), Some(lines), Some(tail)) = (name, lines, tail) else {
            continue;
        };
        let lines = lines.finish()?.lines;
        let stored = tail.finish()?;
        if let Err(err) = super::chunk_read::compare(name, task.files.get(name), &stored, lines) {
            end.first.error(super::first::Check::Files, 0, err);
        }
    }
    Ok(ChunkDone {
        end,
        payloads: read.payloads_taken,
        signatures: read.signatures_taken,
    })
}

type Opened<'a> = Option<(&'a String, (Lines, super::chunk_read::Tail))>;

fn split(opened: Opened<'_>) -> (Option<Lines>, Option<(&String, super::chunk_read::Tail)>) {
    match opened {
        Some((name, (lines, tail))) => (Some(lines), Some((name, tail))),
        None => (None, None),
    }
}

/// The carried checkpoints of a size in `from + 1..=to`: size and the root
/// each note claims (its signature is checked once for the whole bundle,
/// with the key in force for its size).
fn claimed_roots(dir: &Path, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, BundleError> {
    let mut roots = Vec::new();
    let Some(mut lines) = Lines::open(dir, "checkpoints.jsonl")? else {
        return Err(bad("checkpoints", "checkpoints.jsonl is missing"));
    };
    let mut last = None;
    while let Some((number, raw)) = lines.next_line()? {
        let line = checkpoint_line(number, &raw, last)?;
        last = Some(line.size);
        if line.size > to {
            break;
        }
        if line.size > from {
            let claimed = peek_checkpoint(&line.note)?;
            if claimed.size != line.size {
                return Err(bad(
                    &format!("checkpoints.jsonl line {number}"),
                    format!("its note is of size {}, not {}", claimed.size, line.size),
                ));
            }
            roots.push((line.size, claimed.root));
        }
    }
    Ok(roots)
}
