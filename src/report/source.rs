//! Where a report's entries come from: a stopped gateway's store (for
//! `govgate report`) or a contiguous bundle (for `govgate verify
//! --report`). Both feed the same [`Run`] one entry at a time.

use super::{Fed, Outside, Period, ReportError, Run, controls::ControlMap};
use crate::ledger::export::{Compression, KnownRotations, RELIEF_BUDGET};
use crate::ledger::store::LedgerStore;
use serde_json::Value;
use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::Path;

/// Entries read between chances to let the store go of what it read.
const WINDOW: u64 = 4096;

/// The report of `period` from `store`, whose entries were verified
/// (`verified`). `progress` is called with (entries read, entries to
/// read at most) as it goes. With `relieve`, the store is reopened
/// whenever [`RELIEF_BUDGET`] bytes were read since the last time, so a
/// long period is read in bounded memory (sled keeps what it read until
/// then): only for a store no one else uses (a stopped gateway's).
/// Returns the report and the period's first seq.
pub fn from_store(
    store: &dyn LedgerStore,
    period: Period,
    controls: ControlMap,
    verified: bool,
    relieve: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Value, u64), ReportError> {
    let size = store.size()?;
    let first = crate::ledger::export::select::first_at_or_after(store, period.start(), 0, size)?;
    let mut run = Run::new(period, controls);
    let mut failed = None;
    let mut done = false;
    let (mut at, mut read) = (first, 0u64);
    while at < size && !done {
        let end = at.saturating_add(WINDOW).min(size);
        store.entries_in(at, end, &mut |seq, bytes| {
            read += bytes.len() as u64;
            match run.feed(seq, bytes) {
                Ok(Fed::More) => ControlFlow::Continue(()),
                Ok(Fed::Done) => {
                    done = true;
                    ControlFlow::Break(())
                }
                Err(err) => {
                    failed = Some(err);
                    done = true;
                    ControlFlow::Break(())
                }
            }
        })?;
        progress(end - first, size - first);
        at = end;
        if relieve && read >= RELIEF_BUDGET {
            store.reopen()?;
            read = 0;
        }
    }
    if let Some(err) = failed {
        return Err(err);
    }
    let checkpoint = match run.last_seq() {
        Some(last) => store.checkpoint_covering(last)?.ok_or_else(|| {
            ReportError::Bundle(format!("no signed checkpoint covers seq {last} yet"))
        })?,
        None => (0, String::new()),
    };
    let report = run.finish(&Outside {
        checkpoint,
        verified,
        made_from: super::MADE_FROM_LEDGER,
    })?;
    Ok((report, first))
}

/// Why [`from_verified_store`] made no report.
#[derive(Debug, thiserror::Error)]
pub enum StoreReportError {
    /// The log does not verify (this comes first: a period is reported
    /// only from a log that verifies).
    #[error("the ledger does not verify, so no report: {0}")]
    Unverified(#[from] crate::ledger::verify::VerifyError),
    /// The report could not be computed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The verification thread panicked.
    #[error("the verification thread failed")]
    Panicked,
}

/// How often the progress is shown while only the verification runs.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The report of `period` from a stopped gateway's `store`, made only if
/// the whole log verifies: the verification (its own threads) and the
/// period's fold run at once, each reading the store, so the command takes
/// about the longer of the two rather than their sum. `progress` hears
/// (entries done, entries to do) summed over both.
pub fn from_verified_store<S: LedgerStore + Sync>(
    store: &S,
    verifier: &crate::ledger::checkpoint::NoteVerifier,
    period: Period,
    controls: ControlMap,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifiedReport, StoreReportError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let (checked, to_check) = (
        AtomicU64::new(0),
        AtomicU64::new(store.size().map_err(ReportError::from)?),
    );
    let (read, to_read) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut show = || {
        let done = checked.load(Ordering::Relaxed) + read.load(Ordering::Relaxed);
        let total = to_check.load(Ordering::Relaxed) + to_read.load(Ordering::Relaxed);
        progress(done, total);
    };
    std::thread::scope(|scope| {
        let verifying = scope.spawn(|| {
            crate::ledger::verify::verify_store_with_progress(
                store,
                verifier,
                &mut |done, total| {
                    checked.store(done, Ordering::Relaxed);
                    to_check.store(total, Ordering::Relaxed);
                },
            )
        });
        // Not relieved (no reopening): the verification reads the same
        // store at the same time.
        let folded = from_store(store, period, controls, true, false, &mut |done, total| {
            read.store(done, Ordering::Relaxed);
            to_read.store(total, Ordering::Relaxed);
            show();
        });
        // A period that ends before the log does is read to its end.
        read.store(to_read.load(Ordering::Relaxed), Ordering::Relaxed);
        while !verifying.is_finished() {
            show();
            std::thread::sleep(PROGRESS_EVERY);
        }
        let verified = verifying.join().map_err(|_| StoreReportError::Panicked)??;
        // Every entry checked: the bar reaches its total.
        checked.store(verified.entries, Ordering::Relaxed);
        show();
        let (report, first) = folded?;
        Ok(VerifiedReport {
            report,
            first,
            rotations: KnownRotations {
                below: verified.entries,
                seqs: verified.rotation_seqs,
            },
        })
    })
}

/// What [`from_verified_store`] made.
#[derive(Debug)]
pub struct VerifiedReport {
    /// The report.
    pub report: Value,
    /// The period's first seq.
    pub first: u64,
    /// The key rotations the verification found (the bundle's export needs
    /// them and need not read the log again to find them).
    pub rotations: KnownRotations,
}

/// The report of `period` recomputed from the contiguous bundle in
/// `dir` (verified before: `verified`), up to seq `last` at most (the
/// `report_issued` entry's `last_seq`). `made_from`: what the report
/// says it was made from (the report being checked says).
pub fn from_bundle(
    dir: &Path,
    period: Period,
    controls: ControlMap,
    verified: bool,
    last: Option<u64>,
    made_from: &'static str,
) -> Result<Value, ReportError> {
    from_bundle_in_format(
        dir,
        period,
        controls,
        verified,
        last,
        made_from,
        super::FORMAT,
    )
}

/// [`from_bundle`], computing a report of `format` (the one being checked
/// says which: an older report is recomputed as it was made).
pub fn from_bundle_in_format(
    dir: &Path,
    period: Period,
    controls: ControlMap,
    verified: bool,
    last: Option<u64>,
    made_from: &'static str,
    format: &str,
) -> Result<Value, ReportError> {
    let start = period.start();
    let mut run = Run::new(period, controls).in_format(format)?.until(last);
    let mut entries = BundleEntries::open(dir)?;
    let mut first = true;
    while let Some((seq, line)) = entries.next_line()? {
        if std::mem::take(&mut first) && seq > 0 {
            // Entries before the bundle may lie in the period: only a
            // bundle that starts before it (or at the log's start) holds
            // all of the period's beginning.
            let entry = super::Entry::parse(seq, &line)?;
            if entry.time >= start && made_from == super::MADE_FROM_BUNDLE {
                return Err(ReportError::Bundle(format!(
                    "the bundle starts inside the period (its first entry, seq {seq}, is at {}): \
                     the entries before it may belong to the period too; export from an earlier seq",
                    entry.time_text()
                )));
            }
        }
        if run.feed(seq, &line)? == Fed::Done {
            break;
        }
    }
    let checkpoint = match run.last_seq() {
        Some(last) => checkpoint_covering(dir, last)?,
        None => (0, String::new()),
    };
    run.finish(&Outside {
        checkpoint,
        verified,
        made_from,
    })
}

/// The entries of a contiguous bundle, read one line at a time: the one
/// `entries.jsonl` of `govgate-bundle/2`, or the chunks' entries files of
/// `govgate-bundle/3` in seq order, decompressed as they are read.
pub struct BundleEntries {
    /// The entries files still to read after the current one.
    files: std::collections::VecDeque<std::path::PathBuf>,
    compression: Compression,
    lines: Option<Box<dyn BufRead>>,
    path: String,
    seq: u64,
    buffer: Vec<u8>,
}

impl BundleEntries {
    /// Opens the entries of the contiguous bundle in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ReportError> {
        use crate::ledger::export::{CONTIGUOUS_FORMAT_2, CONTIGUOUS_FORMAT_3};
        let manifest_path = dir.join("manifest.json");
        let manifest: Value = std::fs::read(&manifest_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| {
                ReportError::Bundle(format!("cannot read {}", manifest_path.display()))
            })?;
        let (files, compression) = if manifest["format"] == CONTIGUOUS_FORMAT_2 {
            (vec![dir.join("entries.jsonl")], Compression::None)
        } else if manifest["format"] == CONTIGUOUS_FORMAT_3 {
            chunk_entries(dir, &manifest)?
        } else {
            return Err(ReportError::Bundle(format!(
                "{}: a report's bundle is a contiguous bundle ({CONTIGUOUS_FORMAT_2} or \
                 {CONTIGUOUS_FORMAT_3}), this is {}",
                dir.display(),
                manifest["format"]
            )));
        };
        Ok(Self {
            files: files.into(),
            compression,
            lines: None,
            path: String::new(),
            seq: manifest["from"].as_u64().unwrap_or(0),
            buffer: Vec::new(),
        })
    }

    /// The next entry: its seq and canonical bytes.
    pub fn next_line(&mut self) -> Result<Option<(u64, Vec<u8>)>, ReportError> {
        self.buffer.clear();
        loop {
            let Some(lines) = self.lines.as_mut() else {
                let Some(next) = self.files.pop_front() else {
                    return Ok(None);
                };
                self.path = next.display().to_string();
                self.lines = Some(open_lines(&next, self.compression)?);
                continue;
            };
            let read = lines
                .read_until(b'\n', &mut self.buffer)
                .map_err(|err| ReportError::Bundle(format!("{}: {err}", self.path)))?;
            if read == 0 {
                self.lines = None;
                continue;
            }
            break;
        }
        if self.buffer.last() == Some(&b'\n') {
            self.buffer.pop();
        }
        let seq = self.seq;
        self.seq += 1;
        Ok(Some((seq, std::mem::take(&mut self.buffer))))
    }
}

/// The entries files of a `govgate-bundle/3` bundle, in seq order (the
/// first file of each chunk, docs/audit-format.md section 8.4), and how
/// they are stored.
fn chunk_entries(
    dir: &Path,
    manifest: &Value,
) -> Result<(Vec<std::path::PathBuf>, Compression), ReportError> {
    let bad = |why: String| ReportError::Bundle(format!("{}: {why}", dir.display()));
    let compression = manifest["compression"]
        .as_str()
        .and_then(Compression::parse)
        .ok_or_else(|| {
            bad(format!(
                "compression {} is none this govgate reads",
                manifest["compression"]
            ))
        })?;
    let chunks = manifest["chunks"]
        .as_array()
        .ok_or_else(|| bad("the manifest has no chunks".to_owned()))?;
    let wanted = format!("/entries.jsonl{}", compression.extension());
    chunks
        .iter()
        .map(|chunk| {
            let name = chunk["files"][0].as_str().unwrap_or_default();
            // Only a chunk's own entries file, never a path out of the bundle.
            let inside = name.starts_with("chunks/") && !name.split('/').any(|part| part == "..");
            if inside && name.ends_with(&wanted) {
                Ok(dir.join(name))
            } else {
                Err(bad(format!(
                    "a chunk's first file is {name:?}, not its entries"
                )))
            }
        })
        .collect::<Result<_, _>>()
        .map(|files| (files, compression))
}

/// Bytes read from a file at a time.
const READ_BUFFER: usize = 256 << 10;

/// The lines of an entries file, decompressed as `compression` says.
fn open_lines(path: &Path, compression: Compression) -> Result<Box<dyn BufRead>, ReportError> {
    let failed = |err: std::io::Error| ReportError::Bundle(format!("{}: {err}", path.display()));
    let file = std::fs::File::open(path).map_err(failed)?;
    Ok(match compression {
        Compression::None => Box::new(std::io::BufReader::with_capacity(READ_BUFFER, file)),
        Compression::Gzip => Box::new(std::io::BufReader::with_capacity(
            READ_BUFFER,
            flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)),
        )),
        Compression::Zstd => Box::new(std::io::BufReader::with_capacity(
            READ_BUFFER,
            zstd::stream::read::Decoder::new(file).map_err(failed)?,
        )),
    })
}

/// The first checkpoint of the bundle's `checkpoints.jsonl` (every batch
/// checkpoint of the range) whose tree holds `seq`.
fn checkpoint_covering(dir: &Path, seq: u64) -> Result<(u64, String), ReportError> {
    let path = dir.join("checkpoints.jsonl");
    let file = std::fs::File::open(&path)
        .map_err(|err| ReportError::Bundle(format!("{}: {err}", path.display())))?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|err| ReportError::Bundle(format!("{}: {err}", path.display())))?;
        let carried: Value = serde_json::from_str(&line)
            .map_err(|err| ReportError::Bundle(format!("{}: {err}", path.display())))?;
        let size = carried["size"].as_u64().unwrap_or(0);
        if size > seq {
            let note = carried["checkpoint"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            return Ok((size, note));
        }
    }
    Err(ReportError::Bundle(format!(
        "{}: no carried checkpoint covers seq {seq}",
        path.display()
    )))
}
