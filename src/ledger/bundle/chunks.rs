//! Chunked bundles (`govgate-bundle/3`, docs/audit-format.md section 8.4):
//! the manifest's chunk list and its joins, the chunk files against the
//! manifest's file list (stored bytes hashed, decompressed lines counted),
//! and each of the three line streams read as one over the chunks in seq
//! order, so the contiguous pass checks a chunked bundle as it checks the
//! one-file form.

use super::digest::{Lines, digest_file};
use super::{BundleError, Manifest, bad};
use crate::ledger::export::Compression;
use crate::ledger::tree::Frontier;
use serde_json::Value;
use sha2::Digest as _;
use std::collections::VecDeque;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One member of the manifest's `chunks`.
pub(super) struct Chunk {
    pub(super) from: u64,
    pub(super) to: u64,
    /// The tree's right edge at `from`, as the member's `prefix` says.
    pub(super) prefix: Frontier,
    /// `entry_signatures` is `on`.
    pub(super) signing: bool,
    pub(super) files: Vec<String>,
}

/// The chunk files of one kind read as one stream: which file each line
/// is in, and that file's chunk.
#[derive(Default)]
pub(super) struct Places {
    files: Vec<Place>,
    /// The file the last line asked about is in.
    at: usize,
}

/// One chunk file in [`Places`].
pub(super) struct Place {
    pub(super) file: Arc<str>,
    /// The stream's number of its first line (from 1).
    first: usize,
    /// Its chunk's range.
    pub(super) from: u64,
    pub(super) to: u64,
}

impl Places {
    /// The file of the stream's line `number` (from 1), and the line's
    /// number in it. Lines are asked about in increasing order.
    pub(super) fn of(&mut self, number: usize) -> Option<(&Place, usize)> {
        while self
            .files
            .get(self.at + 1)
            .is_some_and(|next| next.first <= number)
        {
            self.at += 1;
        }
        let place = self.files.get(self.at)?;
        let local = number.checked_sub(place.first)? + 1;
        Some((place, local))
    }
}

/// The chunk list of a `govgate-bundle/3` manifest.
pub(super) struct Chunked {
    pub(super) compression: Compression,
    pub(super) chunks: Vec<Chunk>,
}

/// The three line streams a chunk may have, by the start of their name.
const KINDS: [&str; 3] = ["entries", "signatures", "payloads"];

/// Reads and checks the manifest's `compression` and `chunks`: chunks in
/// seq order, contiguous from `from` to `to`, each one's files named as
/// section 8.4 says.
pub(super) fn read(manifest: &Manifest) -> Result<Chunked, BundleError> {
    let compression = manifest
        .raw
        .get("compression")
        .and_then(Value::as_str)
        .and_then(Compression::parse)
        .ok_or_else(|| bad("manifest", "compression is not none, gzip nor zstd"))?;
    let Some(Value::Array(items)) = manifest.raw.get("chunks") else {
        return Err(bad("manifest", "chunks is not a list"));
    };
    let mut chunks = Vec::with_capacity(items.len());
    let mut next = manifest.from;
    for (i, item) in items.iter().enumerate() {
        let name = format!("chunk {i}");
        let bound = |member: &str| {
            item[member].as_u64().ok_or_else(|| {
                bad(
                    "manifest",
                    format!("{name}: {member} is missing or not a non-negative integer"),
                )
            })
        };
        let (from, to) = (bound("from")?, bound("to")?);
        if from != next {
            return Err(bad(
                "manifest",
                format!(
                    "{name}: from {from} is not {next} (chunks must be contiguous from the bundle's from)"
                ),
            ));
        }
        if to <= from || to > manifest.to {
            return Err(bad(
                "manifest",
                format!(
                    "{name}: to {to} is not above its from {from} and at most the bundle's to {}",
                    manifest.to
                ),
            ));
        }
        let prefix = super::prefix_hashes(item.get("prefix"), from)
            .map_err(|err| bad("manifest", format!("{name}: {err}")))?;
        let signing = match item["entry_signatures"].as_str() {
            Some("on") => true,
            Some("off") => false,
            _ => {
                return Err(bad(
                    "manifest",
                    format!("{name}: entry_signatures is not on nor off"),
                ));
            }
        };
        let files = chunk_files(&name, item, from, compression)?;
        chunks.push(Chunk {
            from,
            to,
            prefix: super::frontier_from_prefix(from, &prefix),
            signing,
            files,
        });
        next = to;
    }
    if next != manifest.to {
        return Err(bad(
            "manifest",
            format!(
                "the chunks end at {next}, not at the bundle's to {}",
                manifest.to
            ),
        ));
    }
    Ok(Chunked {
        compression,
        chunks,
    })
}

/// A chunk's `files`: `chunks/A/entries.jsonl[ext]` first, then the
/// signatures and payloads files when present, in that order.
fn chunk_files(
    name: &str,
    item: &Value,
    from: u64,
    compression: Compression,
) -> Result<Vec<String>, BundleError> {
    let Some(Value::Array(listed)) = item.get("files") else {
        return Err(bad("manifest", format!("{name}: files is not a list")));
    };
    let dir = format!("chunks/{from:012}/");
    let mut kinds = KINDS.iter();
    let mut files = Vec::with_capacity(listed.len());
    for file in listed {
        let file = file.as_str().unwrap_or_default();
        let kind = kinds
            .by_ref()
            .find(|kind| file == format!("{dir}{kind}.jsonl{}", compression.extension()));
        if kind.is_none() || (files.is_empty() && kind != Some(&"entries")) {
            return Err(bad(
                "manifest",
                format!(
                    "{name}: files names {file:?}, not the chunk's entries, signatures or payloads file in order"
                ),
            ));
        }
        files.push(file.to_owned());
    }
    if files.is_empty() {
        return Err(bad("manifest", format!("{name}: files is empty")));
    }
    Ok(files)
}

impl Chunked {
    /// The files of `kind` (`entries`, `signatures`, `payloads`) of every
    /// chunk that has one, in seq order.
    fn of_kind(&self, kind: &str) -> Vec<&str> {
        let name = format!("/{kind}.jsonl{}", self.compression.extension());
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.files.iter())
            .filter(|file| file.ends_with(&name))
            .map(String::as_str)
            .collect()
    }

    /// Whether any chunk has a file of `kind`.
    pub(super) fn has(&self, kind: &str) -> bool {
        !self.of_kind(kind).is_empty()
    }

    /// The decompressed lines of every chunk's file of `kind`, as one
    /// stream; `None` when no chunk has one.
    pub(super) fn lines(&self, dir: &Path, kind: &str) -> Result<Option<Lines>, BundleError> {
        let files: VecDeque<PathBuf> = self
            .of_kind(kind)
            .into_iter()
            .map(|file| dir.join(file))
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let label = dir.join(format!(
            "chunks/*/{kind}.jsonl{}",
            self.compression.extension()
        ));
        Ok(Some(Lines::from_reader(
            label,
            Box::new(Chain {
                files,
                compression: self.compression,
                current: None,
            }),
        )))
    }

    /// Where the lines of [`Chunked::lines`] of `kind` come from, by the
    /// line counts the manifest's `files` gives each file (`listed`), which
    /// are checked against the files before their lines are read.
    pub(super) fn places(&self, listed: Option<&Value>, kind: &str) -> Places {
        let name = format!("/{kind}.jsonl{}", self.compression.extension());
        let mut places = Places::default();
        let mut first = 1;
        for chunk in &self.chunks {
            for file in chunk.files.iter().filter(|file| file.ends_with(&name)) {
                let lines = listed
                    .and_then(|listed| listed[file.as_str()]["lines"].as_u64())
                    .and_then(|lines| usize::try_from(lines).ok())
                    .unwrap_or(usize::MAX);
                places.files.push(Place {
                    file: Arc::from(file.as_str()),
                    first,
                    from: chunk.from,
                    to: chunk.to,
                });
                first = first.saturating_add(lines);
            }
        }
        places
    }

    /// The file holding entry `seq`'s line, to name a problem by.
    pub(super) fn file_of(&self, seq: u64) -> Option<&str> {
        self.chunks
            .iter()
            .find(|chunk| chunk.from <= seq && seq < chunk.to)
            .and_then(|chunk| chunk.files.first())
            .map(String::as_str)
    }

    /// The manifest's `files` against the bundle: every listed file
    /// present with its `lines`, `sha256` and (where given) `bytes`; the
    /// chunks' files all listed, their line counts their seq ranges; no
    /// other file of section 8.4 present unlisted. Every chunk but the last
    /// ends at a carried checkpoint's size. With `read_chunks` false the
    /// chunks' own files are not read here (each is compared as its chunk
    /// is checked, read once: `chunk_read`).
    pub(super) fn check_files(
        &self,
        dir: &Path,
        files: &Value,
        read_chunks: bool,
    ) -> Result<(), BundleError> {
        let Value::Object(files) = files else {
            return Err(bad("manifest", "files is not an object"));
        };
        for (name, expected) in files {
            let chunked = self.chunks.iter().any(|c| c.files.contains(name));
            if !chunked && !super::evidence::FILES.contains(&name.as_str()) {
                return Err(bad(
                    "manifest",
                    format!("files lists an unknown file {name}"),
                ));
            }
            if chunked && !read_chunks {
                continue;
            }
            // The stored bytes first: a changed compressed file is named
            // by its SHA-256, not by what decompressing it meets.
            let (sha256, bytes, lines) = if chunked {
                let (sha256, bytes) = stored(dir, name)?;
                (sha256, bytes, None)
            } else {
                let found = digest_file(dir, name)?.ok_or_else(|| missing(name))?;
                let bytes = std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
                (found.sha256, bytes, Some(found.lines))
            };
            check_stored(name, expected, &sha256, Some(bytes))?;
            let lines = match lines {
                Some(lines) => lines,
                None => decompressed_lines(dir, name, self.compression)?,
            };
            check_lines(name, expected, lines)?;
        }
        for chunk in &self.chunks {
            for file in &chunk.files {
                if !files.contains_key(file) {
                    return Err(bad("manifest", format!("files does not list {file}")));
                }
            }
            let entries = &chunk.files[0];
            if files[entries]["lines"].as_u64() != Some(chunk.to - chunk.from) {
                return Err(bad(
                    "files",
                    format!(
                        "{entries}: {} lines for the chunk {}..{} ({} entries)",
                        files[entries]["lines"],
                        chunk.from,
                        chunk.to,
                        chunk.to - chunk.from
                    ),
                ));
            }
        }
        for name in super::evidence::FILES {
            if !files.contains_key(*name) && dir.join(name).exists() {
                return Err(bad(
                    "files",
                    format!("{name} is present but the manifest does not list it"),
                ));
            }
        }
        // Nor any file under chunks/ that the manifest does not list: what
        // was handed over is what the manifest says, both ways.
        if let Some(name) = present_under(dir, "chunks")?
            .into_iter()
            .find(|name| !files.contains_key(name))
        {
            return Err(bad(
                "files",
                format!("{name} is present but the manifest does not list it"),
            ));
        }
        self.check_ends(dir)
    }

    /// Every chunk but the last ends at a carried checkpoint's size.
    fn check_ends(&self, dir: &Path) -> Result<(), BundleError> {
        let mut sizes = std::collections::BTreeSet::new();
        if let Some(mut lines) = Lines::open(dir, "checkpoints.jsonl")? {
            let mut last = None;
            while let Some((number, raw)) = lines.next_line()? {
                // Malformed lines are the pass's to report.
                let Ok(line) = super::evidence::checkpoint_line(number, &raw, last) else {
                    break;
                };
                last = Some(line.size);
                sizes.insert(line.size);
            }
        }
        let Some((_, inner)) = self.chunks.split_last() else {
            return Ok(());
        };
        for chunk in inner {
            if !sizes.contains(&chunk.to) {
                return Err(bad(
                    "manifest",
                    format!(
                        "the chunk {}..{} does not end at a carried checkpoint's size",
                        chunk.from, chunk.to
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Every file under `dir/sub` (at any depth), named relative to `dir`
/// with `/` between the parts, in name order; none when `sub` is absent.
fn present_under(dir: &Path, sub: &str) -> Result<Vec<String>, BundleError> {
    let mut found = Vec::new();
    let mut pending = vec![sub.to_owned()];
    while let Some(relative) = pending.pop() {
        let path = dir.join(&relative);
        let listing = match std::fs::read_dir(&path) {
            Ok(listing) => listing,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(unreadable(&path, source)),
        };
        for item in listing {
            let item = item.map_err(|source| unreadable(&path, source))?;
            let name = format!("{relative}/{}", item.file_name().to_string_lossy());
            let is_dir = item
                .file_type()
                .map_err(|source| unreadable(&path, source))?
                .is_dir();
            if is_dir {
                pending.push(name);
            } else {
                found.push(name);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn missing(name: &str) -> BundleError {
    bad(
        "files",
        format!("{name} is missing (the manifest lists it)"),
    )
}

fn unreadable(path: &Path, source: std::io::Error) -> BundleError {
    BundleError::Unreadable {
        path: path.display().to_string(),
        source,
    }
}

/// The SHA-256 and size of a chunk file's stored bytes.
pub(super) fn stored(dir: &Path, name: &str) -> Result<(String, u64), BundleError> {
    let path = dir.join(name);
    let raw = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(missing(name)),
        Err(err) => return Err(unreadable(&path, err)),
    };
    let mut sha = sha2::Sha256::new();
    let mut bytes = 0u64;
    let mut reader = BufReader::new(raw);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(unreadable(&path, err)),
        };
        sha.update(&buffer[..read]);
        bytes += read as u64;
    }
    Ok((crate::ledger::entry::hex(&sha.finalize()), bytes))
}

/// The LF-terminated lines of a chunk file's decompressed content.
fn decompressed_lines(
    dir: &Path,
    name: &str,
    compression: Compression,
) -> Result<u64, BundleError> {
    let mut content = decoder(&dir.join(name), compression)?;
    let mut buffer = vec![0u8; 1 << 16];
    let mut lines = 0u64;
    loop {
        let read = match content.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(bad(
                    "files",
                    format!("{name}: cannot be decompressed ({err})"),
                ));
            }
        };
        lines += buffer[..read].iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok(lines)
}

/// The decompressed content of the file at `path`.
fn decoder(path: &Path, compression: Compression) -> Result<Box<dyn Read + Send>, BundleError> {
    let file = std::fs::File::open(path).map_err(|err| unreadable(path, err))?;
    decode(file, compression).map_err(|err| unreadable(path, err))
}

/// The decompressed content of `stored`.
pub(super) fn decode<R: Read + Send + 'static>(
    stored: R,
    compression: Compression,
) -> std::io::Result<Box<dyn Read + Send>> {
    Ok(match compression {
        Compression::None => Box::new(stored),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(stored))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(stored)?),
    })
}

/// Files' decompressed contents one after the other.
struct Chain {
    files: VecDeque<PathBuf>,
    compression: Compression,
    current: Option<Box<dyn Read + Send>>,
}

impl Read for Chain {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.current.is_none() {
                let Some(path) = self.files.pop_front() else {
                    return Ok(0);
                };
                self.current =
                    Some(decoder(&path, self.compression).map_err(|err| {
                        std::io::Error::other(format!("{}: {err}", path.display()))
                    })?);
            }
            let Some(current) = self.current.as_mut() else {
                return Ok(0);
            };
            match current.read(buf)? {
                0 => self.current = None,
                read => return Ok(read),
            }
        }
    }
}

/// A file's stored SHA-256 (and its size, when known) against its member
/// of the manifest's `files`.
pub(super) fn check_stored(
    name: &str,
    expected: &Value,
    sha256: &str,
    bytes: Option<u64>,
) -> Result<(), BundleError> {
    if expected["sha256"].as_str() != Some(sha256) {
        return Err(bad(
            "files",
            format!("{name}: its SHA-256 is not the manifest's"),
        ));
    }
    if let (Some(said), Some(bytes)) = (expected.get("bytes"), bytes)
        && said.as_u64() != Some(bytes)
    {
        return Err(bad(
            "files",
            format!("{name} has {bytes} bytes, the manifest says {said}"),
        ));
    }
    Ok(())
}

/// A file's line count (of its content, decompressed) against its member
/// of the manifest's `files`.
pub(super) fn check_lines(name: &str, expected: &Value, lines: u64) -> Result<(), BundleError> {
    if expected["lines"].as_u64() != Some(lines) {
        return Err(bad(
            "files",
            format!(
                "{name} has {lines} lines, the manifest says {}",
                expected["lines"]
            ),
        ));
    }
    Ok(())
}
