//! Where a report's entries come from: a stopped gateway's store (for
//! `govgate report`) or a contiguous bundle (for `govgate verify
//! --report`). Both feed the same [`Run`] one entry at a time.

use super::{Fed, Outside, Period, ReportError, Run, controls::ControlMap};
use crate::ledger::export::RELIEF_BUDGET;
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

/// The entries of a contiguous bundle (`govgate-bundle/2`), read one line
/// at a time.
pub struct BundleEntries {
    lines: std::io::BufReader<std::fs::File>,
    path: String,
    seq: u64,
    buffer: Vec<u8>,
}

impl BundleEntries {
    /// Opens `dir/entries.jsonl` of the contiguous bundle in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ReportError> {
        let manifest_path = dir.join("manifest.json");
        let manifest: Value = std::fs::read(&manifest_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| {
                ReportError::Bundle(format!("cannot read {}", manifest_path.display()))
            })?;
        if manifest["format"] != crate::ledger::export::CONTIGUOUS_FORMAT_2 {
            return Err(ReportError::Bundle(format!(
                "{}: a report's bundle is a contiguous bundle ({}), this is {}",
                dir.display(),
                crate::ledger::export::CONTIGUOUS_FORMAT_2,
                manifest["format"]
            )));
        }
        let path = dir.join("entries.jsonl");
        let file = std::fs::File::open(&path)
            .map_err(|err| ReportError::Bundle(format!("{}: {err}", path.display())))?;
        Ok(Self {
            lines: std::io::BufReader::new(file),
            path: path.display().to_string(),
            seq: manifest["from"].as_u64().unwrap_or(0),
            buffer: Vec::new(),
        })
    }

    /// The next entry: its seq and canonical bytes.
    pub fn next_line(&mut self) -> Result<Option<(u64, Vec<u8>)>, ReportError> {
        self.buffer.clear();
        let read = self
            .lines
            .read_until(b'\n', &mut self.buffer)
            .map_err(|err| ReportError::Bundle(format!("{}: {err}", self.path)))?;
        if read == 0 {
            return Ok(None);
        }
        if self.buffer.last() == Some(&b'\n') {
            self.buffer.pop();
        }
        let seq = self.seq;
        self.seq += 1;
        Ok(Some((seq, std::mem::take(&mut self.buffer))))
    }
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
