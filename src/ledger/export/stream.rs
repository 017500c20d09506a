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
//! the fixed order of [`ARCHIVE_ORDER`], those the bundle has, then the
//! members added beside the bundle ([`Prepared::add_member`]: the cosigned
//! checkpoint and its proof, as the offline export adds them), then
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
    /// Members beside the bundle's files, not in its manifest.
    extra: Vec<(&'static str, Vec<u8>)>,
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
            extra: Vec::new(),
            manifest: format!("{manifest:#}\n").into_bytes(),
            exported,
            mtime,
        })
    }

    /// The bundle's checkpoint (its `checkpoint.txt`).
    pub fn checkpoint_note(&self) -> &str {
        self.plan.note()
    }

    /// Adds a file beside the bundle's own (written after them, before
    /// the manifest, which does not list it).
    pub fn add_member(&mut self, name: &'static str, bytes: Vec<u8>) {
        self.extra.push((name, bytes));
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
            .chain(
                self.extra
                    .iter()
                    .map(|(_, bytes)| member(bytes.len() as u64)),
            )
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
                // `Limited` refused bytes beyond the first pass's length.
                Err(ExportError::Write { source, .. })
                    if source.kind() == std::io::ErrorKind::InvalidData =>
                {
                    return Err(StreamError::Changed(name));
                }
                Err(ExportError::Write { source, .. }) => return Err(StreamError::Closed(source)),
                Err(err) => return Err(err.into()),
            }
            if one.tally.bytes != expected.bytes || one.tally.sha256_hex() != expected.sha256_hex()
            {
                return Err(StreamError::Changed(name));
            }
            pad(sink, expected.bytes)?;
        }
        let extra = self
            .extra
            .iter()
            .map(|(name, bytes)| (*name, bytes.as_slice()));
        for (name, bytes) in extra.chain(std::iter::once((MANIFEST, self.manifest.as_slice()))) {
            self.header(sink, name, bytes.len() as u64)?;
            sink.write_all(bytes).map_err(StreamError::Closed)?;
            pad(sink, bytes.len() as u64)?;
        }
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
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{
        Capture, Decision, DecisionId, EntrySignatures, Outcome, Route, Timings,
    };
    use crate::ledger::entry::EntryBody;
    use crate::ledger::export::{BundleOptions, Filter, export_bundle, export_filtered};
    use crate::ledger::memstore::MemStore;
    use crate::ledger::sequencer::{Ledger, SequencerConfig};
    use crate::ledger::store::Pinned;
    use ed25519_dalek::SigningKey;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    const ORIGIN: &str = "test.example/log";

    fn decision(model: &str) -> EntryBody {
        EntryBody::Decision(Box::new(Decision {
            id: DecisionId::random(),
            caller: "alice".into(),
            subject: None,
            auth: Default::default(),
            route: Route::KserveInfer,
            protocol: None,
            model: Some(model.into()),
            version: Some("1".into()),
            approval_seq: None,
            path: "/v2/models/m/infer".into(),
            cut: Default::default(),
            policy: None,
            outcome: Outcome::Served,
            status: 200,
            error_code: None,
            timings: Timings::default(),
            request: Capture::of_complete(&bytes::Bytes::from_static(b"{\"in\":1}"), 64),
            response: Capture::of_complete(&bytes::Bytes::from_static(b"{\"out\":2}"), 64),
        }))
    }

    /// Appends `n` decisions of models `a` and `b` in turn, three at a time.
    async fn append(ledger: &Ledger, n: usize) {
        let bodies: Vec<EntryBody> = (0..n)
            .map(|i| decision(if i % 2 == 0 { "a" } else { "b" }))
            .collect();
        for batch in bodies.chunks(3) {
            let appends: Vec<_> = batch.iter().map(|b| ledger.append(b.clone())).collect();
            for append in appends {
                append.await.unwrap();
            }
        }
    }

    fn files(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                (name, std::fs::read(entry.path()).unwrap())
            })
            .collect()
    }

    /// The archive's members, in order, as the tar crate reads them.
    fn members(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(archive);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
                let name = entry.path().unwrap().to_str().unwrap().to_owned();
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
                (name, bytes)
            })
            .collect()
    }

    fn no_stop(_: u64, _: u64) -> Result<(), ExportError> {
        Ok(())
    }

    #[tokio::test]
    async fn the_archive_holds_the_directory_export_of_the_pinned_store_while_the_log_grows() {
        let store = Arc::new(MemStore::new());
        let key = SigningKey::from_bytes(&[7; 32]);
        let verifier = NoteVerifier::new(ORIGIN, key.verifying_key()).unwrap();
        let (ledger, writer) = Ledger::open(
            store.clone(),
            SequencerConfig::for_tests(ORIGIN, &key, EntrySignatures::On, 64, 3),
        )
        .unwrap();
        append(&ledger, 20).await;
        let pinned = Pinned::at_latest(store.clone()).unwrap().unwrap();
        let size = pinned.size_pinned();
        let requests = [
            ExportRequest {
                from: 2,
                to: Some(14),
                payloads: true,
                checkpoints_every: 2,
                ..ExportRequest::default()
            },
            ExportRequest::default(),
            ExportRequest {
                from: 1,
                filter: Filter {
                    model: Some("a".into()),
                    ..Filter::default()
                },
                payloads: true,
                ..ExportRequest::default()
            },
        ];
        let mut prepared = Vec::new();
        for request in &requests {
            prepared.push(
                Prepared::prepare(&pinned, &verifier, request, 1_800_000_000, &mut no_stop)
                    .unwrap(),
            );
        }
        // The log grows between the two passes and after them.
        append(&ledger, 9).await;
        assert!(store.size().unwrap() > size);
        let root = tempfile::tempdir().unwrap();
        for (i, (request, prepared)) in requests.iter().zip(&prepared).enumerate() {
            let mut archive = Vec::new();
            prepared
                .stream(&pinned, &mut archive, &mut no_stop)
                .unwrap();
            assert_eq!(archive.len() as u64, prepared.archive_len(), "request {i}");
            let members = members(&archive);
            let names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(names.last(), Some(&MANIFEST), "request {i}: {names:?}");
            let mut expected: Vec<&str> = ARCHIVE_ORDER
                .iter()
                .copied()
                .filter(|name| names.contains(name))
                .collect();
            expected.push(MANIFEST);
            assert_eq!(names, expected, "request {i}: fixed order");

            let dir = root.path().join(format!("dir-{i}"));
            if request.filter.is_empty() {
                let options = BundleOptions {
                    payloads: request.payloads,
                    checkpoints_every: request.checkpoints_every.max(1),
                    chunks: None,
                };
                export_bundle(
                    &pinned,
                    &verifier,
                    request.from,
                    request.to,
                    &options,
                    &dir,
                    |_, _| {},
                )
                .unwrap();
            } else {
                export_filtered(
                    &pinned,
                    &verifier,
                    request.from,
                    request.to,
                    &request.filter,
                    request.payloads,
                    &dir,
                    |_, _| {},
                )
                .unwrap();
            }
            let streamed: BTreeMap<String, Vec<u8>> = members.into_iter().collect();
            assert_eq!(streamed, files(&dir), "request {i}");
        }
        assert_eq!(
            prepared[1].exported().to,
            size,
            "the whole log is the pinned one"
        );
        assert!(prepared[2].is_sparse());

        // An entry changed underneath between the passes is caught, never sent as if whole.
        store.tamper(|entries, _| {
            let entry = entries.get_mut(&5).unwrap();
            let at = entry.len() - 3;
            entry[at] ^= 1;
        });
        let mut archive = Vec::new();
        let changed = prepared[0].stream(&pinned, &mut archive, &mut no_stop);
        assert!(
            matches!(changed, Err(StreamError::Changed("entries.jsonl"))),
            "{changed:?}"
        );
        assert!((archive.len() as u64) < prepared[0].archive_len());

        // One that grew is refused before it runs over its member's length.
        store.tamper(|entries, _| {
            entries.get_mut(&5).unwrap().extend_from_slice(b"  ");
        });
        let mut archive = Vec::new();
        let grown = prepared[1].stream(&pinned, &mut archive, &mut no_stop);
        assert!(
            matches!(grown, Err(StreamError::Changed("entries.jsonl"))),
            "{grown:?}"
        );
        let entries_len = prepared[1].files[0].1.bytes;
        assert!((archive.len() as u64) <= BLOCK + entries_len);

        // A stop asked for by the caller ends the pass.
        let mut stop = |_: u64, _: u64| Err(ExportError::Stopped);
        let stopped = prepared[1].stream(&pinned, &mut Vec::new(), &mut stop);
        assert!(matches!(
            stopped,
            Err(StreamError::Export(ExportError::Stopped))
        ));
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();
    }
}
