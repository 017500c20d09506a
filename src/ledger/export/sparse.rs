//! Writes the sparse bundle form (`govgate-bundle-sparse/1`,
//! docs/audit-format.md section 8.2): the entries a filter selects, each
//! with its inclusion proof against one signed checkpoint, plus every
//! `key_rotated` entry up to that checkpoint (a verifier needs them to know
//! which key signed it).

use super::select::{ModelMatch, UtcTime, first_at_or_after};
use super::{ExportError, Exported, payload_line};
use crate::ledger::bundle::SPARSE_FORMAT;
use crate::ledger::checkpoint::NoteVerifier;
use crate::ledger::store::{LedgerStore, StoreError, StoreNodes};
use crate::ledger::tree::inclusion_proof;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a filtered export selects, as the user wrote it (the manifest
/// repeats these texts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// RFC 3339: the range starts at the first entry at or after it.
    pub since: Option<String>,
    /// RFC 3339: the range ends before the first entry at or after it.
    pub until: Option<String>,
    /// Only decisions of this model (plus the `key_rotated` entries).
    pub model: Option<String>,
}

impl Filter {
    /// Whether anything is filtered (otherwise the contiguous form is written).
    pub fn is_empty(&self) -> bool {
        self.since.is_none() && self.until.is_none() && self.model.is_none()
    }
}

/// A JSON-lines file created on its first line.
struct LazyLines {
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl LazyLines {
    fn new(dir: &Path, name: &str) -> Self {
        Self {
            path: dir.join(name),
            file: None,
        }
    }

    fn write_error(&self, source: std::io::Error) -> ExportError {
        ExportError::Write {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn line(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        if self.file.is_none() {
            let file = std::fs::File::create(&self.path).map_err(|e| self.write_error(e))?;
            self.file = Some(std::io::BufWriter::new(file));
        }
        let result = match self.file.as_mut() {
            Some(file) => file.write_all(bytes).and_then(|()| file.write_all(b"\n")),
            None => Ok(()),
        };
        result.map_err(|e| self.write_error(e))
    }

    /// Flushes; with `always`, creates the file even when it has no line.
    fn finish(mut self, always: bool) -> Result<(), ExportError> {
        if always && self.file.is_none() {
            std::fs::File::create(&self.path).map_err(|e| self.write_error(e))?;
        }
        match self.file.take() {
            Some(mut file) => file.flush().map_err(|e| self.write_error(e)),
            None => Ok(()),
        }
    }
}

/// Whether an entry is a `key_rotated` one; the byte search spares
/// parsing every other entry of a long scan.
fn is_rotation(entry: &[u8]) -> bool {
    const MARK: &[u8] = br#""kind":"key_rotated""#;
    entry.windows(MARK.len()).any(|w| w == MARK)
        && crate::ledger::entry::key_rotation(entry).is_some()
}

fn parse_time(text: &str) -> Result<UtcTime, ExportError> {
    UtcTime::parse(text).map_err(|err| ExportError::Range(err.to_string()))
}

/// Writes a sparse bundle of the entries `filter` selects in `from..to`
/// (default: the whole log) into the new directory `out`. `progress` is
/// called with (entries scanned, entries to scan).
#[allow(clippy::too_many_arguments)] // reason: one export request, spelled out as the CLI gives it
pub fn export_filtered(
    store: &dyn LedgerStore,
    verifier: &NoteVerifier,
    from: u64,
    to: Option<u64>,
    filter: &Filter,
    with_payloads: bool,
    out: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<Exported, ExportError> {
    let size = store.size()?;
    let (mut start, mut end) = (from, to.unwrap_or(size));
    if end > size {
        return Err(ExportError::Range(format!(
            "cannot export up to seq {end} from a log of {size} entries"
        )));
    }
    if let Some(since) = &filter.since {
        start = start.max(first_at_or_after(store, parse_time(since)?, 0, size)?);
    }
    if let Some(until) = &filter.until {
        end = end.min(first_at_or_after(store, parse_time(until)?, 0, size)?);
    }
    if start >= end {
        return Err(ExportError::Range(format!(
            "nothing to export: the selection is seq {start}..{end} of a log of {size} entries"
        )));
    }
    let (checkpoint_size, note) = store
        .checkpoint_covering(end - 1)?
        .ok_or_else(|| ExportError::Range(format!("no checkpoint covers entry {}", end - 1)))?;
    std::fs::create_dir(out).map_err(|source| ExportError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let model = filter.model.as_deref().map(ModelMatch::new);
    let (mut entries, mut proofs) = (
        LazyLines::new(out, "entries.jsonl"),
        LazyLines::new(out, "proofs.jsonl"),
    );
    let (mut signatures, mut payloads) = (
        LazyLines::new(out, "signatures.jsonl"),
        LazyLines::new(out, "payloads.jsonl"),
    );
    let (mut selected, mut payload_count) = (0u64, 0u64);
    let total = checkpoint_size - start;
    for seq in start..checkpoint_size {
        let entry = store
            .entry(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} missing")))?;
        let chosen = seq < end && model.as_ref().is_none_or(|m| m.matches(&entry));
        if chosen || is_rotation(&entry) {
            selected += u64::from(chosen);
            entries.line(&entry)?;
            let path = inclusion_proof(&StoreNodes(store), seq, checkpoint_size)
                .map_err(|err| StoreError::Corrupt(format!("inclusion proof of {seq}: {err}")))?;
            let path: Vec<String> = path.iter().map(|hash| BASE64.encode(hash)).collect();
            proofs.line(
                serde_json::json!({ "seq": seq, "path": path })
                    .to_string()
                    .as_bytes(),
            )?;
            if let Some(signature) = store.entry_signature(seq)? {
                let line = serde_json::json!({ "seq": seq, "signature": BASE64.encode(signature) });
                signatures.line(line.to_string().as_bytes())?;
            }
            if let (true, Some(record)) = (with_payloads, store.payload(seq)?) {
                let line = payload_line(seq, &record)
                    .ok_or_else(|| StoreError::Corrupt(format!("payload {seq}")))?;
                payloads.line(line.trim_end().as_bytes())?;
                payload_count += 1;
            }
        }
        progress(seq - start + 1, total);
    }
    if selected == 0 {
        // Nothing the filter asked for: no bundle rather than an empty one
        // that looks like an answer. Removing what we just created is safe.
        let _ = std::fs::remove_dir_all(out);
        return Err(ExportError::Range(format!(
            "nothing to export: no decision of model {:?} in seq {start}..{end}",
            filter.model.as_deref().unwrap_or_default()
        )));
    }
    entries.finish(true)?;
    proofs.finish(true)?;
    signatures.finish(false)?;
    payloads.finish(with_payloads)?;
    super::write_file(out, "checkpoint.txt", note.as_bytes())?;
    let manifest = serde_json::json!({
        "format": SPARSE_FORMAT,
        "origin": verifier.name(),
        "vkey": verifier.vkey(),
        "from": start,
        "to": end,
        "size": checkpoint_size,
        "filter": {
            "model": filter.model,
            "since": filter.since,
            "until": filter.until,
        },
        "payloads": with_payloads,
    });
    super::write_file(out, "manifest.json", format!("{manifest:#}\n").as_bytes())?;
    Ok(Exported {
        from: start,
        to: end,
        size: checkpoint_size,
        entries: selected,
        payloads: payload_count,
    })
}
