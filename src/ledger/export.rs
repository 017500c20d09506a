//! Export bundles: a range of entries, the signed checkpoint that covers
//! them, the subtree hashes left of the range, and optionally the payloads,
//! as docs/audit-format.md section 8 specifies. Filtered exports (by time,
//! by model) write the sparse form instead ([`export_filtered`]). Both are
//! produced through [`out::BundleOut`]: into a directory here, or as a
//! tar stream from a running gateway ([`stream`]).

mod chunked;
mod compress;
mod contiguous;
mod evidence;
pub(crate) mod out;
mod relief;
pub(crate) mod select;
mod sparse;
pub mod stream;

pub use chunked::{Chunking, DEFAULT_CHUNK_ENTRIES};
pub use compress::Compression;
pub use evidence::{KnownRotations, SIGNATURES_KIND};
pub use relief::{RELIEF_BUDGET, Relieved};

pub use select::{TimeError, UtcTime};
pub use sparse::{Filter, export_filtered};

use super::checkpoint::NoteVerifier;
use super::store::{LedgerStore, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
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
    /// The caller stopped it (the gateway is shutting down, or the client
    /// of an online export went away).
    #[error("the export was stopped")]
    Stopped,
}

/// `format` of the contiguous bundles this code writes.
pub const CONTIGUOUS_FORMAT_2: &str = "govgate-bundle/2";
/// `format` of the chunked contiguous bundles (section 8.4).
pub const CONTIGUOUS_FORMAT_3: &str = "govgate-bundle/3";

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
    /// Split into chunks (`govgate-bundle/3`); `None`: one file each
    /// (`govgate-bundle/2`).
    pub chunks: Option<Chunking>,
}

impl BundleOptions {
    /// Every checkpoint; payloads as said; not chunked.
    pub fn payloads(payloads: bool) -> Self {
        Self {
            payloads,
            checkpoints_every: 1,
            chunks: None,
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
    progress: impl FnMut(u64, u64),
) -> Result<Exported, ExportError> {
    let plan = contiguous::Plan::new(store, from, to, *options)?;
    write_bundle(store, verifier, plan, options, out, progress)
}

/// [`export_bundle`] right after a verification of the log that found
/// `known`: the bundle is the same, the log is not read once more for the
/// entries the bundle depends on.
pub fn export_bundle_knowing(
    store: &dyn LedgerStore,
    verifier: &NoteVerifier,
    from: u64,
    options: &BundleOptions,
    known: KnownRotations,
    out: &Path,
    progress: impl FnMut(u64, u64),
) -> Result<Exported, ExportError> {
    let plan = contiguous::Plan::new(store, from, None, *options)?.knowing(known);
    write_bundle(store, verifier, plan, options, out, progress)
}

fn write_bundle(
    store: &dyn LedgerStore,
    verifier: &NoteVerifier,
    plan: contiguous::Plan,
    options: &BundleOptions,
    out: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<Exported, ExportError> {
    std::fs::create_dir(out).map_err(|source| ExportError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let mut files = out::DirOut::new(out);
    let mut progress = |done, total| {
        progress(done, total);
        Ok(())
    };
    let (exported, manifest) = match options.chunks {
        None => {
            let exported = plan.write(store, &mut files, &mut progress)?;
            let tallies = files.finish()?;
            (exported, plan.manifest(store, verifier, &tallies)?)
        }
        Some(chunking) => {
            let (exported, chunks) =
                plan.write_chunked(store, &mut files, chunking, &mut progress)?;
            let tallies = files.finish()?;
            let manifest = plan.manifest_chunked(store, verifier, &tallies, chunking, &chunks)?;
            (exported, manifest)
        }
    };
    write_file(out, "manifest.json", format!("{manifest:#}\n").as_bytes())?;
    Ok(exported)
}

/// What an export selects, as the CLI and the admin API take it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportRequest {
    /// First seq.
    pub from: u64,
    /// Up to this seq (exclusive); `None`: the whole log.
    pub to: Option<u64>,
    /// Time and model filters (the sparse form when any is set).
    pub filter: Filter,
    /// Whether the kept payloads go in.
    pub payloads: bool,
    /// Every K-th batch checkpoint carried (contiguous bundles; 0 reads as 1).
    pub checkpoints_every: u64,
}

/// A bundle about to be produced: its range resolved against a store, in
/// either form. Producing it twice on a store that does not change below
/// its checkpoint gives the same bytes (the online export's two passes).
pub(crate) enum Plan {
    /// `govgate-bundle/2`.
    Contiguous(contiguous::Plan),
    /// `govgate-bundle-sparse/1`.
    Sparse(sparse::Plan),
}

impl Plan {
    /// Resolves `request` against `store`; a range not in the log is
    /// [`ExportError::Range`].
    pub(crate) fn new(
        store: &dyn LedgerStore,
        request: &ExportRequest,
    ) -> Result<Self, ExportError> {
        if request.filter.is_empty() {
            // The online export writes one tar stream: never chunked.
            let options = BundleOptions {
                payloads: request.payloads,
                checkpoints_every: request.checkpoints_every.max(1),
                chunks: None,
            };
            contiguous::Plan::new(store, request.from, request.to, options).map(Plan::Contiguous)
        } else {
            sparse::Plan::new(
                store,
                request.from,
                request.to,
                &request.filter,
                request.payloads,
            )
            .map(Plan::Sparse)
        }
    }

    /// Produces every file but the manifest into `out`, calling `progress`
    /// with (entries done, entries to do).
    pub(crate) fn write(
        &self,
        store: &dyn LedgerStore,
        out: &mut dyn out::BundleOut,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), ExportError>,
    ) -> Result<Exported, ExportError> {
        match self {
            Plan::Contiguous(plan) => plan.write(store, out, progress),
            Plan::Sparse(plan) => plan.write(store, out, progress),
        }
    }

    /// The bundle's checkpoint (its `checkpoint.txt`).
    pub(crate) fn note(&self) -> &str {
        match self {
            Plan::Contiguous(plan) => plan.note(),
            Plan::Sparse(plan) => plan.note(),
        }
    }

    /// The manifest of the files `tallies` describes.
    pub(crate) fn manifest(
        &self,
        store: &dyn LedgerStore,
        verifier: &NoteVerifier,
        tallies: &out::Tallies,
    ) -> Result<serde_json::Value, ExportError> {
        match self {
            Plan::Contiguous(plan) => plan.manifest(store, verifier, tallies),
            Plan::Sparse(plan) => plan.manifest(store, verifier, tallies),
        }
    }
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
