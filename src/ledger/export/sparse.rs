//! Writes the sparse bundle form (`govgate-bundle-sparse/1`,
//! docs/audit-format.md section 8.2): the entries a filter selects, each
//! with its inclusion proof against one signed checkpoint, plus every
//! `key_rotated` entry up to that checkpoint (a verifier needs them to know
//! which key signed it). A model filter selects the model's decisions and
//! their `stream_ended` entries in the range and its model-version entries
//! anywhere up to the checkpoint,
//! so each decision's `approval_seq` leads to an entry of the bundle.

use super::select::{ModelMatch, Selected, UtcTime, first_at_or_after};
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
    /// Only decisions of this model (and the `stream_ended` entries of its
    /// streamed ones) in the range, and its model-version entries anywhere
    /// in the log (plus the `key_rotated` entries).
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

/// The bundle's JSON-lines files, written one bundled entry at a time.
struct Files {
    entries: LazyLines,
    proofs: LazyLines,
    signatures: LazyLines,
    payloads: LazyLines,
    with_payloads: bool,
    payload_count: u64,
}

impl Files {
    /// Writes entry `seq`, its inclusion proof into the tree of
    /// `checkpoint_size`, its payload (when asked for) and, with `sign`,
    /// its per-entry signature. Entries before `from` go without their
    /// signature: the bundle cannot tell which key was in force there
    /// (its `key_rotated` entries start at `from`), while their inclusion
    /// proofs need no key but the checkpoint's.
    fn write(
        &mut self,
        store: &dyn LedgerStore,
        seq: u64,
        entry: &[u8],
        checkpoint_size: u64,
        sign: bool,
    ) -> Result<(), ExportError> {
        self.entries.line(entry)?;
        let path = inclusion_proof(&StoreNodes(store), seq, checkpoint_size)
            .map_err(|err| StoreError::Corrupt(format!("inclusion proof of {seq}: {err}")))?;
        let path: Vec<String> = path.iter().map(|hash| BASE64.encode(hash)).collect();
        self.proofs.line(
            serde_json::json!({ "seq": seq, "path": path })
                .to_string()
                .as_bytes(),
        )?;
        if let (true, Some(signature)) = (sign, store.entry_signature(seq)?) {
            let line = serde_json::json!({ "seq": seq, "signature": BASE64.encode(signature) });
            self.signatures.line(line.to_string().as_bytes())?;
        }
        if let (true, Some(record)) = (self.with_payloads, store.payload(seq)?) {
            let line = payload_line(seq, &record)
                .ok_or_else(|| StoreError::Corrupt(format!("payload {seq}")))?;
            self.payloads.line(line.trim_end().as_bytes())?;
            self.payload_count += 1;
        }
        Ok(())
    }
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
    let mut out_files = Files {
        entries: LazyLines::new(out, "entries.jsonl"),
        proofs: LazyLines::new(out, "proofs.jsonl"),
        signatures: LazyLines::new(out, "signatures.jsonl"),
        payloads: LazyLines::new(out, "payloads.jsonl"),
        with_payloads,
        payload_count: 0,
    };
    let mut selected = 0u64;
    // The model's version entries before the range: the approvals behind
    // its decisions usually come before them. Only governance entries can
    // be, so the store's index of them spares a scan of 0..start.
    if let Some(model) = &model {
        for seq in store.governance_seqs()?.into_iter().filter(|s| *s < start) {
            let entry = store
                .entry(seq)?
                .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} missing")))?;
            if model.selects(&entry) == Some(Selected::Version) {
                selected += 1;
                out_files.write(store, seq, &entry, checkpoint_size, false)?;
            }
        }
    }
    let total = checkpoint_size - start;
    for seq in start..checkpoint_size {
        let entry = store
            .entry(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} missing")))?;
        let chosen = match &model {
            None => seq < end,
            Some(model) => match model.selects(&entry) {
                Some(Selected::Decision | Selected::StreamEnd) => seq < end,
                Some(Selected::Version) => true,
                None => false,
            },
        };
        if chosen || is_rotation(&entry) {
            selected += u64::from(chosen);
            out_files.write(store, seq, &entry, checkpoint_size, true)?;
        }
        progress(seq - start + 1, total);
    }
    let Files {
        entries,
        proofs,
        signatures,
        payloads,
        payload_count,
        ..
    } = out_files;
    if selected == 0 {
        // Nothing the filter asked for: no bundle rather than an empty one
        // that looks like an answer. Removing what we just created is safe.
        let _ = std::fs::remove_dir_all(out);
        return Err(ExportError::Range(format!(
            "nothing to export: no decision or model-version entry of model {:?} in seq {start}..{end}",
            filter.model.as_deref().unwrap_or_default()
        )));
    }
    entries.finish(true)?;
    proofs.finish(true)?;
    signatures.finish(false)?;
    payloads.finish(with_payloads)?;
    super::write_file(out, "checkpoint.txt", note.as_bytes())?;
    let found = super::evidence::scan(store, start, end, checkpoint_size)?;
    let (first_vkey, rotations) = super::evidence::key_chain(&found, &verifier.vkey());
    let manifest = serde_json::json!({
        "format": SPARSE_FORMAT,
        "origin": verifier.name(),
        "vkey": verifier.vkey(),
        "first_vkey": first_vkey,
        "rotations": rotations,
        "files": super::evidence::file_list(out)?,
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
