//! Writes the sparse bundle form (`govgate-bundle-sparse/1`,
//! docs/audit-format.md section 8.2): the entries a filter selects, each
//! with its inclusion proof against one signed checkpoint, plus every
//! `key_rotated` entry up to that checkpoint (a verifier needs them to know
//! which key signed it). A model filter selects the model's decisions and
//! their `stream_ended` entries in the range and its model-version entries
//! anywhere up to the checkpoint,
//! so each decision's `approval_seq` leads to an entry of the bundle.

use super::out::{BundleOut, DirOut, Tallies};
use super::select::{ModelMatch, Selected, UtcTime, first_at_or_after};
use super::{ExportError, Exported, payload_line};
use crate::ledger::bundle::SPARSE_FORMAT;
use crate::ledger::checkpoint::NoteVerifier;
use crate::ledger::store::{LedgerStore, StoreError, StoreNodes};
use crate::ledger::tree::inclusion_proof;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::path::Path;

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

/// Whether an entry is a `key_rotated` one; the byte search spares
/// parsing every other entry of a long scan.
fn is_rotation(entry: &[u8]) -> bool {
    const MARK: &[u8] = br#""kind":"key_rotated""#;
    entry.windows(MARK.len()).any(|w| w == MARK)
        && crate::ledger::entry::key_rotation(entry).is_some()
}

/// Writes entry `seq` (its canonical bytes `entry`), its inclusion proof
/// into the tree of `checkpoint_size`, its payload (when asked for) and,
/// with `sign`, its per-entry signature, each when `out` wants it. Entries
/// before `from` go without their signature: the bundle cannot tell which
/// key was in force there (its `key_rotated` entries start at `from`),
/// while their inclusion proofs need no key but the checkpoint's. Returns
/// whether a payload was written.
fn write_one(
    out: &mut dyn BundleOut,
    store: &dyn LedgerStore,
    seq: u64,
    entry: &[u8],
    checkpoint_size: u64,
    sign: bool,
    with_payloads: bool,
) -> Result<bool, ExportError> {
    if out.wants("entries.jsonl") {
        out.append("entries.jsonl", entry)?;
        out.append("entries.jsonl", b"\n")?;
    }
    if out.wants("proofs.jsonl") {
        let path = inclusion_proof(&StoreNodes(store), seq, checkpoint_size)
            .map_err(|err| StoreError::Corrupt(format!("inclusion proof of {seq}: {err}")))?;
        let path: Vec<String> = path.iter().map(|hash| BASE64.encode(hash)).collect();
        let line = serde_json::json!({ "seq": seq, "path": path });
        out.append("proofs.jsonl", format!("{line}\n").as_bytes())?;
    }
    if sign
        && out.wants("signatures.jsonl")
        && let Some(signature) = store.entry_signature(seq)?
    {
        let line = serde_json::json!({ "seq": seq, "signature": BASE64.encode(signature) });
        out.append("signatures.jsonl", format!("{line}\n").as_bytes())?;
    }
    if with_payloads
        && out.wants("payloads.jsonl")
        && let Some(record) = store.payload(seq)?
    {
        let line = payload_line(seq, &record)
            .ok_or_else(|| StoreError::Corrupt(format!("payload {seq}")))?;
        out.append("payloads.jsonl", line.as_bytes())?;
        return Ok(true);
    }
    Ok(false)
}

fn parse_time(text: &str) -> Result<UtcTime, ExportError> {
    UtcTime::parse(text).map_err(|err| ExportError::Range(err.to_string()))
}

/// A sparse bundle resolved against a store.
pub(crate) struct Plan {
    /// The seq range after the time filters.
    start: u64,
    end: u64,
    checkpoint_size: u64,
    note: String,
    filter: Filter,
    with_payloads: bool,
}

impl Plan {
    /// The entries `filter` selects in `from..to` (default: the whole log).
    pub(crate) fn new(
        store: &dyn LedgerStore,
        from: u64,
        to: Option<u64>,
        filter: &Filter,
        with_payloads: bool,
    ) -> Result<Self, ExportError> {
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
        Ok(Self {
            start,
            end,
            checkpoint_size,
            note,
            filter: filter.clone(),
            with_payloads,
        })
    }

    /// The bundle's checkpoint (its `checkpoint.txt`).
    pub(crate) fn note(&self) -> &str {
        &self.note
    }

    /// Produces entries, proofs, signatures, payloads and checkpoint (each
    /// only when `out` wants it). Nothing selected is
    /// [`ExportError::Range`]: no bundle rather than an empty one that
    /// looks like an answer.
    pub(crate) fn write(
        &self,
        store: &dyn LedgerStore,
        out: &mut dyn BundleOut,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), ExportError>,
    ) -> Result<Exported, ExportError> {
        let (start, end, checkpoint_size) = (self.start, self.end, self.checkpoint_size);
        let with_payloads = self.with_payloads;
        out.touch("entries.jsonl")?;
        out.touch("proofs.jsonl")?;
        if with_payloads {
            out.touch("payloads.jsonl")?;
        }
        let model = self.filter.model.as_deref().map(ModelMatch::new);
        let (mut selected, mut payloads) = (0u64, 0u64);
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
                    let wrote = write_one(
                        out,
                        store,
                        seq,
                        &entry,
                        checkpoint_size,
                        false,
                        with_payloads,
                    )?;
                    payloads += u64::from(wrote);
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
                let wrote = write_one(
                    out,
                    store,
                    seq,
                    &entry,
                    checkpoint_size,
                    true,
                    with_payloads,
                )?;
                payloads += u64::from(wrote);
            }
            progress(seq - start + 1, total)?;
        }
        if selected == 0 {
            return Err(ExportError::Range(format!(
                "nothing to export: no decision or model-version entry of model {:?} in seq {start}..{end}",
                self.filter.model.as_deref().unwrap_or_default()
            )));
        }
        if out.wants("checkpoint.txt") {
            out.append("checkpoint.txt", self.note.as_bytes())?;
        }
        Ok(Exported {
            from: start,
            to: end,
            size: checkpoint_size,
            entries: selected,
            payloads,
        })
    }

    /// The manifest of the files `tallies` describes.
    pub(crate) fn manifest(
        &self,
        store: &dyn LedgerStore,
        verifier: &NoteVerifier,
        tallies: &Tallies,
    ) -> Result<serde_json::Value, ExportError> {
        let found = super::evidence::scan(store, self.start, self.end, self.checkpoint_size)?;
        let (first_vkey, rotations) = super::evidence::key_chain(&found, &verifier.vkey());
        Ok(serde_json::json!({
            "format": SPARSE_FORMAT,
            "origin": verifier.name(),
            "vkey": verifier.vkey(),
            "first_vkey": first_vkey,
            "rotations": rotations,
            "files": tallies.file_list(),
            "from": self.start,
            "to": self.end,
            "size": self.checkpoint_size,
            "filter": {
                "model": self.filter.model,
                "since": self.filter.since,
                "until": self.filter.until,
            },
            "payloads": self.with_payloads,
        }))
    }
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
    let plan = Plan::new(store, from, to, filter, with_payloads)?;
    std::fs::create_dir(out).map_err(|source| ExportError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let mut files = DirOut::new(out);
    let exported = match plan.write(store, &mut files, &mut |done, total| {
        progress(done, total);
        Ok(())
    }) {
        Ok(exported) => exported,
        Err(err) => {
            // Removing what we just created is safe.
            drop(files);
            let _ = std::fs::remove_dir_all(out);
            return Err(err);
        }
    };
    let tallies = files.finish()?;
    let manifest = plan.manifest(store, verifier, &tallies)?;
    super::write_file(out, "manifest.json", format!("{manifest:#}\n").as_bytes())?;
    Ok(exported)
}
