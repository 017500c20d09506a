//! A bundle as one tar archive written into a stream, for the online
//! export (`GET /admin/ledger/export`): the same files, byte for byte, as
//! the offline export writes into a directory, read from a store view
//! pinned at one checkpoint ([`crate::ledger::store::Pinned`]).
//!
//! A tar member's header states its length before its bytes, and the
//! manifest holds every file's SHA-256, so the bundle is produced twice:
//! [`Prepared::prepare`] runs the export into tallies only (lengths, line
//! counts, hashes; nothing kept), then [`Prepared::stream`] produces each
//! file again, one at a time, straight into the archive. Memory stays that
//! of one entry whatever the bundle's size, and the whole archive's length
//! is known before its first byte (the HTTP answer's `Content-Length`).
//!
//! Archive layout (POSIX ustar, docs/operations.md): the bundle's files in
//! the fixed order of [`ARCHIVE_ORDER`], those the bundle has, then
//! `manifest.json` last, then the two zero blocks that end an archive.
//! Every member is a regular file of mode 0644 with no directory part.

use super::out::{OneFile, Tallies, Tally, TallyOut};
use super::{ExportError, ExportRequest, Exported, Plan};
use crate::ledger::checkpoint::NoteVerifier;
use crate::ledger::store::LedgerStore;
use std::io::Write;

/// tar's block: every header and every member's padded length.
const BLOCK: u64 = 512;

/// The order of a bundle's files in the archive; `manifest.json` follows.
pub const ARCHIVE_ORDER: &[&str] = super::BUNDLE_FILES;

/// The name of the manifest, the archive's last member.
pub const MANIFEST: &str = "manifest.json";

/// Why streaming stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Producing the bundle failed, or was stopped.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The stream could not take more bytes (the client went away).
    #[error("the stream was closed: {0}")]
    Closed(std::io::Error),
    /// A file came out different from the first pass: the store changed
    /// below the pinned checkpoint, which only an offline command does.
    #[error("{0} changed between the two passes over the store")]
    Changed(&'static str),
}

/// A bundle whose files have been tallied, ready to stream.
pub struct Prepared {
    plan: Plan,
    /// `(name, tally)` of each file of the bundle, in archive order.
    files: Vec<(&'static str, Tally)>,
    manifest: Vec<u8>,
    exported: Exported,
    mtime: u64,
}

impl Prepared {
    /// The first pass: resolves `request` against `store` and tallies every
    /// file. `progress` gets (entries done, entries to do) and may stop the
    /// pass by returning an error. `mtime` (Unix seconds) goes in every
    /// member's header.
    pub fn prepare(
        store: &dyn LedgerStore,
        verifier: &NoteVerifier,
        request: &ExportRequest,
        mtime: u64,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), ExportError>,
    ) -> Result<Prepared, ExportError> {
        let plan = Plan::new(store, request)?;
        let mut tally = TallyOut::default();
        let exported = plan.write(store, &mut tally, progress)?;
        let Tallies(mut all) = tally.tallies;
        let manifest = plan.manifest(store, verifier, &Tallies(all.clone()))?;
        let files = ARCHIVE_ORDER
            .iter()
            .filter_map(|name| all.remove(name).map(|tally| (*name, tally)))
            .collect();
        Ok(Prepared {
            plan,
            files,
            manifest: format!("{manifest:#}\n").into_bytes(),
            exported,
            mtime,
        })
    }

    /// What the bundle holds.
    pub fn exported(&self) -> &Exported {
        &self.exported
    }

    /// Whether it is the sparse form.
    pub fn is_sparse(&self) -> bool {
        matches!(self.plan, Plan::Sparse(_))
    }

    /// Lines of `entries.jsonl`: the entries a client will receive.
    pub fn entry_lines(&self) -> u64 {
        self.files
            .iter()
            .find(|(name, _)| *name == "entries.jsonl")
            .map_or(0, |(_, tally)| tally.lines)
    }

    /// The archive's length in bytes.
    pub fn archive_len(&self) -> u64 {
        let member = |len: u64| BLOCK + len.div_ceil(BLOCK) * BLOCK;
        self.files
            .iter()
            .map(|(_, tally)| member(tally.bytes))
            .sum::<u64>()
            + member(self.manifest.len() as u64)
            + 2 * BLOCK
    }

    /// The second pass: writes the archive into `sink`, producing each
    /// file again from `store` (the store the first pass read). `progress`
    /// as for [`Prepared::prepare`], for each file's pass.
    pub fn stream(
        &self,
        store: &dyn LedgerStore,
        sink: &mut dyn Write,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), ExportError>,
    ) -> Result<(), StreamError> {
        for (name, expected) in &self.files {
            self.header(sink, name, expected.bytes)?;
            let mut limited = Limited {
                inner: &mut *sink,
                left: expected.bytes,
            };
            let mut one = OneFile {
                name,
                writer: &mut limited,
                tally: Tally::default(),
            };
            match self.plan.write(store, &mut one, progress) {
                Ok(_) => {}
                Err(ExportError::Write { source, .. }) => return Err(StreamError::Closed(source)),
                Err(err) => return Err(err.into()),
            }
            if one.tally.bytes != expected.bytes || one.tally.sha256_hex() != expected.sha256_hex()
            {
                return Err(StreamError::Changed(name));
            }
            pad(sink, expected.bytes)?;
        }
        self.header(sink, MANIFEST, self.manifest.len() as u64)?;
        sink.write_all(&self.manifest)
            .map_err(StreamError::Closed)?;
        pad(sink, self.manifest.len() as u64)?;
        sink.write_all(&[0; 2 * BLOCK as usize])
            .and_then(|()| sink.flush())
            .map_err(StreamError::Closed)
    }

    fn header(&self, sink: &mut dyn Write, name: &str, len: u64) -> Result<(), StreamError> {
        let mut header = tar::Header::new_ustar();
        // INVARIANT: bundle file names are short relative ASCII names.
        header.set_path(name).map_err(StreamError::Closed)?;
        header.set_size(len);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        sink.write_all(header.as_bytes())
            .map_err(StreamError::Closed)
    }
}

/// Zeros up to the next block boundary after a member of `len` bytes.
fn pad(sink: &mut dyn Write, len: u64) -> Result<(), StreamError> {
    let short = (BLOCK - len % BLOCK) % BLOCK;
    sink.write_all(&[0; BLOCK as usize][..short as usize])
        .map_err(StreamError::Closed)
}

/// A writer that refuses to pass more than `left` bytes: a member can
/// never run over the length its header declared.
struct Limited<'w> {
    inner: &'w mut dyn Write,
    left: u64,
}

impl Write for Limited<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(std::io::Error::other(
                "a bundle file is longer than in the first pass",
            ));
        }
        let written = self.inner.write(buf)?;
        self.left -= written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
