//! Export bundles: a range of entries, the signed checkpoint that covers
//! them, the subtree hashes left of the range, and optionally the payloads,
//! as docs/audit-format.md section 8 specifies. Filtered exports (by time,
//! by model) write the sparse form instead ([`export_filtered`]).

mod evidence;
pub(crate) mod select;
mod sparse;

pub use evidence::SIGNATURES_KIND;

pub use select::{TimeError, UtcTime};
pub use sparse::{Filter, export_filtered};

use super::checkpoint::NoteVerifier;
use super::store::{LedgerStore, StoreError, StoreNodes};
use super::tree::Frontier;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::io::Write;
use std::path::Path;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the bundle failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The range asked for is not in the log.
    #[error("{0}")]
    Range(String),
}

/// `format` of the contiguous bundles this code writes.
pub const CONTIGUOUS_FORMAT_2: &str = "govgate-bundle/2";

/// Every file a bundle may hold besides `manifest.json`, as the manifest's
/// `files` lists them.
const BUNDLE_FILES: &[&str] = &[
    "entries.jsonl",
    "checkpoint.txt",
    "checkpoints.jsonl",
    "context.jsonl",
    "proofs.jsonl",
    "signatures.jsonl",
    "payloads.jsonl",
];

/// How a contiguous bundle is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleOptions {
    /// Include the kept payloads.
    pub payloads: bool,
    /// Carry every K-th batch checkpoint of the range (1: every one).
    pub checkpoints_every: u64,
}

impl BundleOptions {
    /// Every checkpoint; payloads as said.
    pub fn payloads(payloads: bool) -> Self {
        Self {
            payloads,
            checkpoints_every: 1,
        }
    }
}

/// What was exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// First seq.
    pub from: u64,
    /// One past the last seq.
    pub to: u64,
    /// The size of the checkpoint in the bundle (`to` in the contiguous form).
    pub size: u64,
    /// Entries exported (in the sparse form: those the filter selected).
    pub entries: u64,
    /// Payload records written.
    pub payloads: u64,
}

/// Writes a bundle of entries `from..` up to the first checkpoint covering
/// `to` (default: the latest) into the new directory `out`. `progress`
/// is called with (entries written, entries to write) after every entry:
/// the caller decides how often to show it.
pub fn export_bundle(
    store: &dyn LedgerStore,
    verifier: &NoteVerifier,
    from: u64,
    to: Option<u64>,
    options: &BundleOptions,
    out: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<Exported, ExportError> {
    let with_payloads = options.payloads;
    let size = store.size()?;
    let wanted = to.unwrap_or(size);
    if wanted == 0 || wanted > size || from >= wanted {
        return Err(ExportError::Range(format!(
            "cannot export {from}..{wanted} from a log of {size} entries"
        )));
    }
    let (to, note) = store
        .checkpoint_covering(wanted - 1)?
        .ok_or_else(|| ExportError::Range(format!("no checkpoint covers entry {}", wanted - 1)))?;
    let write_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| ExportError::Write { path, source }
    };
    std::fs::create_dir(out).map_err(write_error(out))?;
    let prefix: Vec<String> = Frontier::load(&StoreNodes(store), from)?
        .peaks()
        .map(|hash| BASE64.encode(hash))
        .collect();

    let entries_path = out.join("entries.jsonl");
    let mut entries = std::io::BufWriter::new(
        std::fs::File::create(&entries_path).map_err(write_error(&entries_path))?,
    );
    let payloads_path = out.join("payloads.jsonl");
    let mut payloads = if with_payloads {
        Some(std::io::BufWriter::new(
            std::fs::File::create(&payloads_path).map_err(write_error(&payloads_path))?,
        ))
    } else {
        None
    };
    let signatures_path = out.join("signatures.jsonl");
    let mut signatures: Option<std::io::BufWriter<std::fs::File>> = None;
    let mut payload_count = 0u64;
    for seq in from..to {
        if let Some(signature) = store.entry_signature(seq)? {
            if signatures.is_none() {
                let file = std::fs::File::create(&signatures_path)
                    .map_err(write_error(&signatures_path))?;
                signatures = Some(std::io::BufWriter::new(file));
            }
            if let Some(out) = signatures.as_mut() {
                let line = serde_json::json!({ "seq": seq, "signature": BASE64.encode(signature) });
                writeln!(out, "{line}").map_err(write_error(&signatures_path))?;
            }
        }
        let entry = store
            .entry(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} missing")))?;
        entries
            .write_all(&entry)
            .and_then(|()| entries.write_all(b"\n"))
            .map_err(write_error(&entries_path))?;
        if let (Some(out), Some(record)) = (payloads.as_mut(), store.payload(seq)?) {
            let line = payload_line(seq, &record)
                .ok_or_else(|| StoreError::Corrupt(format!("payload {seq}")))?;
            out.write_all(line.as_bytes())
                .map_err(write_error(&payloads_path))?;
            payload_count += 1;
        }
        progress(seq - from + 1, to - from);
    }
    entries.flush().map_err(write_error(&entries_path))?;
    if let Some(mut out) = payloads {
        out.flush().map_err(write_error(&payloads_path))?;
    }
    if let Some(mut out) = signatures {
        out.flush().map_err(write_error(&signatures_path))?;
    }
    let checkpoint_path = out.join("checkpoint.txt");
    std::fs::write(&checkpoint_path, note).map_err(write_error(&checkpoint_path))?;
    let latest = store.latest_checkpoint()?.map_or(to, |(size, _)| size);
    let found = evidence::scan(store, from, to, latest)?;
    evidence::write(out, store, &found, from, to, options.checkpoints_every)?;
    let (first_vkey, rotations) = evidence::key_chain(&found, &verifier.vkey());
    let manifest = serde_json::json!({
        "format": CONTIGUOUS_FORMAT_2,
        "origin": verifier.name(),
        "vkey": verifier.vkey(),
        "first_vkey": first_vkey,
        "rotations": rotations,
        "from": from,
        "to": to,
        "prefix": prefix,
        "payloads": with_payloads,
        "checkpoints_every": options.checkpoints_every.max(1),
        "files": evidence::file_list(out)?,
    });
    let manifest_path = out.join("manifest.json");
    std::fs::write(&manifest_path, format!("{manifest:#}\n"))
        .map_err(write_error(&manifest_path))?;
    Ok(Exported {
        from,
        to,
        size: to,
        entries: to - from,
        payloads: payload_count,
    })
}

/// Writes a whole bundle file.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ExportError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|source| ExportError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// One `payloads.jsonl` line from a stored payload record (layout in
/// `sequencer::payload_record`).
fn payload_line(seq: u64, record: &[u8]) -> Option<String> {
    let request_len = u32::from_be_bytes(record.get(64..68)?.try_into().ok()?) as usize;
    let request = record.get(68..68 + request_len)?;
    let response = record.get(68 + request_len..)?;
    let line = serde_json::json!({
        "seq": seq,
        "request_salt": super::entry::hex(record.get(..32)?),
        "response_salt": super::entry::hex(record.get(32..64)?),
        "request": BASE64.encode(request),
        "response": BASE64.encode(response),
    });
    Some(format!("{line}\n"))
}
