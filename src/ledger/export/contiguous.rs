//! The contiguous bundle (`govgate-bundle/2`, docs/audit-format.md
//! section 8.1): every entry of `from..to`, `to` the size of a signed
//! checkpoint, with the subtree hashes left of the range, the carried
//! checkpoints and the context entries ([`super::evidence`]).

use super::chunked::{self, Chunk, Chunking};
use super::evidence::{self, Scan};
use super::out::{BundleOut, Tallies};
use super::{
    BundleOptions, CONTIGUOUS_FORMAT_2, CONTIGUOUS_FORMAT_3, ExportError, Exported, payload_line,
};
use crate::ledger::checkpoint::NoteVerifier;
use crate::ledger::store::{LedgerStore, StoreError, StoreNodes};
use crate::ledger::tree::Frontier;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::cell::OnceCell;

/// A contiguous bundle resolved against a store.
pub(crate) struct Plan {
    from: u64,
    /// The size of the bundle's checkpoint.
    to: u64,
    note: String,
    options: BundleOptions,
    /// Read once, when first needed.
    scan: OnceCell<Scan>,
    /// What a verification just before found (spares most of the scan).
    known: Option<evidence::KnownRotations>,
}

impl Plan {
    /// Entries `from..` up to the first checkpoint covering `to` (default:
    /// the latest).
    pub(crate) fn new(
        store: &dyn LedgerStore,
        from: u64,
        to: Option<u64>,
        options: BundleOptions,
    ) -> Result<Self, ExportError> {
        let size = store.size()?;
        let wanted = to.unwrap_or(size);
        if wanted == 0 || wanted > size || from >= wanted {
            return Err(ExportError::Range(format!(
                "cannot export {from}..{wanted} from a log of {size} entries"
            )));
        }
        let (to, note) = store.checkpoint_covering(wanted - 1)?.ok_or_else(|| {
            ExportError::Range(format!("no checkpoint covers entry {}", wanted - 1))
        })?;
        Ok(Self {
            from,
            to,
            note,
            options,
            scan: OnceCell::new(),
            known: None,
        })
    }

    /// The plan, reading only what `known` leaves open of the log when it
    /// looks for the entries the bundle depends on.
    pub(crate) fn knowing(mut self, known: evidence::KnownRotations) -> Self {
        self.known = Some(known);
        self
    }

    /// The bundle's checkpoint (its `checkpoint.txt`).
    pub(crate) fn note(&self) -> &str {
        &self.note
    }

    fn scan(&self, store: &dyn LedgerStore) -> Result<&Scan, ExportError> {
        if let Some(scan) = self.scan.get() {
            return Ok(scan);
        }
        let latest = store.latest_checkpoint()?.map_or(self.to, |(size, _)| size);
        let found = match &self.known {
            Some(known) => evidence::scan_known(store, self.from, self.to, latest, known)?,
            None => evidence::scan(store, self.from, self.to, latest)?,
        };
        Ok(self.scan.get_or_init(|| found))
    }

    /// Produces entries, signatures, payloads, checkpoint, carried
    /// checkpoints and context (each only when `out` wants it).
    pub(crate) fn write(
        &self,
        store: &dyn LedgerStore,
        out: &mut dyn BundleOut,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), ExportError>,
    ) -> Result<Exported, ExportError> {
        let (from, to) = (self.from, self.to);
        let with_payloads = self.options.payloads;
        out.touch("entries.jsonl")?;
        if with_payloads {
            out.touch("payloads.jsonl")?;
        }
        let want_entries = out.wants("entries.jsonl");
        let want_signatures = out.wants("signatures.jsonl");
        let want_payloads = with_payloads && out.wants("payloads.jsonl");
        let mut payload_count = 0u64;
        if want_entries || want_signatures || want_payloads {
            for seq in from..to {
                if want_signatures && let Some(signature) = store.entry_signature(seq)? {
                    let line =
                        serde_json::json!({ "seq": seq, "signature": BASE64.encode(signature) });
                    out.append("signatures.jsonl", format!("{line}\n").as_bytes())?;
                }
                if want_entries {
                    let mut entry = store
                        .entry(seq)?
                        .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} missing")))?;
                    entry.push(b'\n');
                    out.append("entries.jsonl", &entry)?;
                }
                if want_payloads && let Some(record) = store.payload(seq)? {
                    let line = payload_line(seq, &record)
                        .ok_or_else(|| StoreError::Corrupt(format!("payload {seq}")))?;
                    out.append("payloads.jsonl", line.as_bytes())?;
                    payload_count += 1;
                }
                progress(seq - from + 1, to - from)?;
            }
        }
        if out.wants("checkpoint.txt") {
            out.append("checkpoint.txt", self.note.as_bytes())?;
        }
        if out.wants("checkpoints.jsonl") || out.wants("context.jsonl") {
            let found = self.scan(store)?;
            evidence::write(out, store, found, from, to, self.options.checkpoints_every)?;
        }
        Ok(Exported {
            from,
            to,
            size: to,
            entries: to - from,
            payloads: payload_count,
        })
    }

    /// Produces the chunks of a `govgate-bundle/3` bundle into `out`'s
    /// directory, then checkpoint, carried checkpoints and context as
    /// [`Plan::write`] does; the chunks written, for the manifest.
    pub(crate) fn write_chunked(
        &self,
        store: &dyn LedgerStore,
        out: &mut super::out::DirOut,
        chunking: Chunking,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), ExportError>,
    ) -> Result<(Exported, Vec<Chunk>), ExportError> {
        let (from, to) = (self.from, self.to);
        let found = self.scan(store)?;
        let job = chunked::Job {
            store,
            found,
            from,
            to,
            every: self.options.checkpoints_every,
            payloads: self.options.payloads,
            chunking,
            dir: out.dir(),
        };
        let written = job.write(progress)?;
        out.append("checkpoint.txt", self.note.as_bytes())?;
        evidence::write(out, store, found, from, to, self.options.checkpoints_every)?;
        let exported = Exported {
            from,
            to,
            size: to,
            entries: to - from,
            payloads: written.payloads,
        };
        Ok((exported, written.chunks))
    }

    /// The manifest of a `govgate-bundle/3` bundle: that of
    /// [`Plan::manifest`] with its format, compression and chunks, and
    /// every file (the chunks' too) listed with its stored length.
    pub(crate) fn manifest_chunked(
        &self,
        store: &dyn LedgerStore,
        verifier: &NoteVerifier,
        tallies: &Tallies,
        chunking: Chunking,
        chunks: &[Chunk],
    ) -> Result<serde_json::Value, ExportError> {
        let mut manifest = self.manifest(store, verifier, tallies)?;
        let mut files = tallies.file_list_with_bytes();
        for chunk in chunks {
            for (name, stored) in &chunk.files {
                files.insert(
                    name.clone(),
                    serde_json::json!({
                        "lines": stored.lines,
                        "sha256": stored.sha256,
                        "bytes": stored.bytes,
                    }),
                );
            }
        }
        manifest["format"] = CONTIGUOUS_FORMAT_3.into();
        manifest["compression"] = chunking.compression.name().into();
        manifest["chunks"] = chunks.iter().map(Chunk::member).collect();
        manifest["files"] = serde_json::Value::Object(files);
        Ok(manifest)
    }

    /// The manifest of the files `tallies` describes.
    pub(crate) fn manifest(
        &self,
        store: &dyn LedgerStore,
        verifier: &NoteVerifier,
        tallies: &Tallies,
    ) -> Result<serde_json::Value, ExportError> {
        let prefix: Vec<String> = Frontier::load(&StoreNodes(store), self.from)?
            .peaks()
            .map(|hash| BASE64.encode(hash))
            .collect();
        let found = self.scan(store)?;
        let (first_vkey, rotations) = evidence::key_chain(found, &verifier.vkey());
        Ok(serde_json::json!({
            "format": CONTIGUOUS_FORMAT_2,
            "origin": verifier.name(),
            "vkey": verifier.vkey(),
            "first_vkey": first_vkey,
            "rotations": rotations,
            "from": self.from,
            "to": self.to,
            "prefix": prefix,
            "payloads": self.options.payloads,
            "checkpoints_every": self.options.checkpoints_every.max(1),
            "files": tallies.file_list(),
        }))
    }
}
