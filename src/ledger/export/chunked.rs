//! The chunks of a chunked contiguous bundle (`govgate-bundle/3`,
//! docs/audit-format.md section 8.4): entries, signatures and payloads of
//! `from..to` split by seq range into `chunks/A/`, each chunk ending at a
//! carried checkpoint, each file written (and compressed) as it comes.
//! Memory holds one chunk's open files and the list of chunks.

use super::compress::{ChunkFile, Compression, Stored};
use super::evidence::{self, InRange, SIGNATURES_KIND, Scan};
use super::{ExportError, payload_line};
use crate::ledger::store::{LedgerStore, StoreError, StoreNodes};
use crate::ledger::tree::Frontier;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::iter::Peekable;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// `--chunk-entries` when only `--compress` is given.
pub const DEFAULT_CHUNK_ENTRIES: u64 = 1_000_000;

/// How a contiguous bundle is split and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// At most this many entries per chunk (unless the carried checkpoints
    /// are further apart); 0 reads as 1.
    pub entries: u64,
    /// How each chunk file is stored.
    pub compression: Compression,
}

/// One member of the manifest's `chunks`.
pub(crate) struct Chunk {
    from: u64,
    to: u64,
    /// Base64 subtree hashes left of `from`, largest first.
    prefix: Vec<String>,
    /// The `entry_signatures` setting in force at `from`.
    entry_signatures: &'static str,
    /// Each file's path in the bundle and what the manifest says of it.
    pub(crate) files: Vec<(String, Stored)>,
}

impl Chunk {
    /// The manifest member.
    pub(crate) fn member(&self) -> serde_json::Value {
        let files: Vec<&str> = self.files.iter().map(|(name, _)| name.as_str()).collect();
        serde_json::json!({
            "from": self.from,
            "to": self.to,
            "prefix": self.prefix,
            "entry_signatures": self.entry_signatures,
            "files": files,
        })
    }
}

/// Where each chunk ends: the largest carried checkpoint size at most
/// `limit` entries past its start, or the first carried one past its start
/// when none is that near. Reads the carried checkpoints once, in order.
struct Ends<'s> {
    carried: Peekable<InRange<'s>>,
    limit: u64,
    to: u64,
}

impl Ends<'_> {
    fn after(&mut self, start: u64) -> Result<u64, StoreError> {
        let most = start.saturating_add(self.limit);
        let mut end = None;
        loop {
            let size = match self.carried.peek() {
                None => break,
                Some(Err(_)) => {
                    return Err(match self.carried.next() {
                        Some(Err(err)) => err,
                        _ => StoreError::Corrupt("checkpoint walk".to_owned()),
                    });
                }
                Some(Ok((size, _))) => *size,
            };
            if size <= start {
                self.carried.next();
                continue;
            }
            if size > most && end.is_some() {
                break;
            }
            self.carried.next();
            end = Some(size);
            if size > most {
                break;
            }
        }
        // SPEC: "the last one's `to` is the manifest's `to`", a carried size.
        Ok(end.unwrap_or(self.to))
    }
}

/// The chunk being written.
struct Open {
    chunk: Chunk,
    dir: PathBuf,
    entries: ChunkFile,
    signatures: Option<ChunkFile>,
    payloads: Option<ChunkFile>,
}

/// The chunk directory's name: its first seq in 12 digits.
fn chunk_dir(from: u64) -> String {
    format!("chunks/{from:012}")
}

/// What was written: the chunks and the number of payload lines.
pub(crate) struct Written {
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) payloads: u64,
}

/// A chunked export's settings, resolved for one bundle.
pub(crate) struct Job<'a> {
    pub(crate) store: &'a dyn LedgerStore,
    pub(crate) found: &'a Scan,
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) every: u64,
    pub(crate) payloads: bool,
    pub(crate) chunking: Chunking,
    /// The bundle directory (exists).
    pub(crate) dir: &'a Path,
}

impl Job<'_> {
    /// Writes every chunk, calling `progress` with (entries done, entries to do).
    pub(crate) fn write(
        &self,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), ExportError>,
    ) -> Result<Written, ExportError> {
        let store = self.store;
        let mut ends = Ends {
            carried: InRange::new(store, self.found, self.from, self.to, self.every)?.peekable(),
            limit: self.chunking.entries.max(1),
            to: self.to,
        };
        let mut setting = match self.found.setting_before {
            Some(seq) => setting_of(&entry(store, seq)?).unwrap_or("off"),
            None => "off",
        };
        let mut written = Written {
            chunks: Vec::new(),
            payloads: 0,
        };
        let mark = format!("\"kind\":\"{SIGNATURES_KIND}\"");
        let mut start = self.from;
        while start < self.to {
            let end = ends.after(start)?;
            let mut chunk = self.open(start, end, setting)?;
            // Each file of the chunk from one range read of the store: a
            // lookup per entry costs about as much as compressing it.
            let mut next = start;
            let mut failed = None;
            self.store.entries_in(start, end, &mut |seq, bytes| {
                if seq != next {
                    failed = Some(StoreError::Corrupt(format!("entry {next} missing")).into());
                    return ControlFlow::Break(());
                }
                next += 1;
                if evidence::has(bytes, mark.as_bytes())
                    && let Some(now) = setting_of(bytes)
                {
                    setting = now;
                }
                let written = chunk
                    .entries
                    .append(bytes)
                    .and_then(|()| chunk.entries.append(b"\n"))
                    .and_then(|()| progress(seq - self.from + 1, self.to - self.from));
                match written {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(err) => {
                        failed = Some(err);
                        ControlFlow::Break(())
                    }
                }
            })?;
            if let Some(err) = failed {
                return Err(err);
            }
            if next != end {
                return Err(StoreError::Corrupt(format!("entry {next} missing")).into());
            }
            let mut line = String::with_capacity(128);
            let mut failed = None;
            self.store
                .signatures_in(start, end, &mut |seq, signature| {
                    if failed.is_some() {
                        return;
                    }
                    line.clear();
                    signature_line(&mut line, seq, signature);
                    let file = self.file(&chunk.dir, "signatures", &mut chunk.signatures);
                    if let Err(err) = file.and_then(|file| file.append(line.as_bytes())) {
                        failed = Some(err);
                    }
                })?;
            if let Some(err) = failed {
                return Err(err);
            }
            if self.payloads {
                for seq in start..end {
                    if let Some(record) = store.payload(seq)? {
                        let line = payload_line(seq, &record)
                            .ok_or_else(|| StoreError::Corrupt(format!("payload {seq}")))?;
                        self.file(&chunk.dir, "payloads", &mut chunk.payloads)?
                            .append(line.as_bytes())?;
                        written.payloads += 1;
                    }
                }
            }
            written.chunks.push(self.close(chunk)?);
            start = end;
        }
        Ok(written)
    }

    fn name(&self, dir: &str, file: &str) -> String {
        format!(
            "{dir}/{file}.jsonl{}",
            self.chunking.compression.extension()
        )
    }

    /// The chunk file `file` of `dir`, created on its first line.
    fn file<'f>(
        &self,
        dir: &Path,
        file: &str,
        slot: &'f mut Option<ChunkFile>,
    ) -> Result<&'f mut ChunkFile, ExportError> {
        if let Some(open) = slot {
            return Ok(open);
        }
        let name = format!("{file}.jsonl{}", self.chunking.compression.extension());
        let created = ChunkFile::create(&dir.join(name), self.chunking.compression)?;
        Ok(slot.insert(created))
    }

    fn open(&self, from: u64, end: u64, setting: &'static str) -> Result<Open, ExportError> {
        let name = chunk_dir(from);
        let dir = self.dir.join(&name);
        std::fs::create_dir_all(&dir).map_err(|source| ExportError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        let prefix = Frontier::load(&StoreNodes(self.store), from)?
            .peaks()
            .map(|hash| BASE64.encode(hash))
            .collect();
        let entries = ChunkFile::create(
            &dir.join(format!(
                "entries.jsonl{}",
                self.chunking.compression.extension()
            )),
            self.chunking.compression,
        )?;
        Ok(Open {
            chunk: Chunk {
                from,
                to: end,
                prefix,
                entry_signatures: setting,
                files: Vec::new(),
            },
            dir,
            entries,
            signatures: None,
            payloads: None,
        })
    }

    fn close(&self, open: Open) -> Result<Chunk, ExportError> {
        let mut chunk = open.chunk;
        let dir = chunk_dir(chunk.from);
        chunk
            .files
            .push((self.name(&dir, "entries"), open.entries.finish()?));
        for (file, slot) in [("signatures", open.signatures), ("payloads", open.payloads)] {
            if let Some(written) = slot {
                chunk.files.push((self.name(&dir, file), written.finish()?));
            }
        }
        Ok(chunk)
    }
}

/// A line of a chunk's `signatures.jsonl`: `{"seq":N,"signature":"BASE64"}`
/// and LF, the members in their canonical order.
fn signature_line(line: &mut String, seq: u64, signature: &[u8; 64]) {
    use std::fmt::Write;
    let _ = write!(line, "{{\"seq\":{seq},\"signature\":\"");
    BASE64.encode_string(signature, line);
    line.push_str("\"}\n");
}

fn entry(store: &dyn LedgerStore, seq: u64) -> Result<Vec<u8>, StoreError> {
    store
        .entry(seq)?
        .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} missing")))
}

/// The setting an `entry_signatures_set` entry records.
fn setting_of(entry: &[u8]) -> Option<&'static str> {
    let value: serde_json::Value = serde_json::from_slice(entry).ok()?;
    if value["kind"] != SIGNATURES_KIND {
        return None;
    }
    match value["entry_signatures"].as_str()? {
        "on" => Some("on"),
        "off" => Some("off"),
        _ => None,
    }
}
