//! The write-ahead file's segments on disk: `<first seq, 20 digits>.wal`
//! in the WAL directory, each a header (`"GWS1"` and the segment's random
//! 32-byte checksum key) and a run of records ([`super::record`]). The
//! last one is appended to; a new one starts once it passes
//! [`SEGMENT_BYTES`]; whole segments below what the store has flushed are
//! deleted. Segments without a header (written before segment keys) are
//! read as unkeyed records.

use super::Faults;
use super::record::{self, SegmentKey, Torn};
use crate::ledger::store::{CommitBatch, StoreError};
use rand::RngCore;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A segment this long is closed and the next commit starts a new one.
#[cfg(not(test))]
pub(super) const SEGMENT_BYTES: u64 = 16 << 20;
/// Small in tests, so rotation needs no large writes.
#[cfg(test)]
pub(super) const SEGMENT_BYTES: u64 = 64 << 10;

/// A keyed segment starts with this, then its key.
const SEGMENT_MAGIC: &[u8; 4] = b"GWS1";
/// Magic and key.
const SEGMENT_HEADER_BYTES: usize = 4 + 32;

/// How a segment's bytes start.
enum Start {
    /// A header: records from byte [`SEGMENT_HEADER_BYTES`], keyed.
    Keyed(SegmentKey),
    /// No header (a segment written before segment keys, or empty):
    /// unkeyed records from byte 0.
    Unkeyed,
    /// The start of a header and nothing else: a crash while the segment
    /// was being created, before any record.
    TornHeader,
}

fn start_of(bytes: &[u8]) -> Start {
    if let Some(key) = bytes
        .strip_prefix(SEGMENT_MAGIC)
        .and_then(|rest| rest.get(..32))
        .and_then(|key| SegmentKey::try_from(key).ok())
    {
        return Start::Keyed(key);
    }
    let magic_part = &bytes[..bytes.len().min(SEGMENT_MAGIC.len())];
    if !bytes.is_empty()
        && bytes.len() < SEGMENT_HEADER_BYTES
        && SEGMENT_MAGIC.starts_with(magic_part)
    {
        return Start::TornHeader;
    }
    Start::Unkeyed
}

/// The file [`Appender::probe`] writes and removes; not a segment's name,
/// so a probe left behind by a crash is ignored at open.
const PROBE_FILE: &str = "probe.tmp";
/// One file-system block.
const PROBE_BYTES: usize = 4096;

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Sync {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|source| io_error(dir, source))
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.wal"))
}

/// What to do with a torn final record found at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Cut it, so appends can follow the last good record (a start).
    Cut,
    /// Leave the file as it is (a command that only reads the ledger).
    Keep,
}

/// A torn final record: a write a crash interrupted (never acknowledged).
#[derive(Debug, Clone)]
pub struct TornTail {
    /// The segment file.
    pub path: PathBuf,
    /// Where the good records end (the file's length, once cut).
    pub offset: u64,
    /// How many bytes the torn record took.
    pub bytes: u64,
    /// Why they were not a record.
    pub reason: String,
    /// Whether they were cut ([`Tail::Cut`]) or left in the file.
    pub cut: bool,
}

/// The records found at open, in order, with the segment each starts.
pub(super) struct Scanned {
    pub(super) segments: Vec<(u64, PathBuf)>,
    pub(super) batches: Vec<CommitBatch>,
    pub(super) torn: Option<TornTail>,
}

/// Reads every segment of `dir` (none if it does not exist). A record
/// that cannot be read is a torn write only when it is the last thing in
/// the last segment: every append is fdatasynced before the next starts,
/// so a crash can only interrupt the final one. Any other bad record
/// (in an earlier segment, or followed by a valid record) is damage, not
/// a crash: refused, naming the file and the byte. A torn record is cut
/// or kept as `tail` says.
pub(super) fn scan(dir: &Path, tail: Tail) -> Result<Scanned, StoreError> {
    let mut segments = Vec::new();
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Scanned {
                segments,
                batches: Vec::new(),
                torn: None,
            });
        }
        Err(source) => return Err(io_error(dir, source)),
    };
    for item in listing {
        let item = item.map_err(|source| io_error(dir, source))?;
        let name = item.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((first, item.path()));
    }
    segments.sort_unstable_by_key(|(first, _)| *first);
    let mut batches = Vec::new();
    let mut torn = None;
    let count = segments.len();
    for (i, (_, path)) in segments.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
        let (key, mut at) = match start_of(&bytes) {
            Start::Keyed(key) => (Some(key), SEGMENT_HEADER_BYTES),
            Start::Unkeyed => (None, 0),
            Start::TornHeader if i + 1 == count => {
                torn = Some(torn_tail(path, 0, bytes.len() as u64, &Torn::Short, tail)?);
                break;
            }
            Start::TornHeader => {
                return Err(StoreError::Corrupt(format!(
                    "{}: a segment header cut short in a segment that is not the last; damage, not a write cut short by a crash",
                    path.display()
                )));
            }
        };
        while at < bytes.len() {
            match record::decode(&bytes[at..], key.as_ref()) {
                Ok((batch, len)) => {
                    batches.push(batch);
                    at += len;
                }
                Err(err) => {
                    let damage = |more: &str| {
                        StoreError::Corrupt(format!(
                            "{} at byte {at}: {err}{more}; damage, not a write cut short by a crash",
                            path.display()
                        ))
                    };
                    if i + 1 != count {
                        return Err(damage(" in a segment that is not the last"));
                    }
                    if let Some(next) = next_record(&bytes, at + 1, key.as_ref()) {
                        return Err(damage(&format!(
                            ", followed by a valid record at byte {next}"
                        )));
                    }
                    torn = Some(torn_tail(path, at as u64, bytes.len() as u64, &err, tail)?);
                    break;
                }
            }
        }
    }
    Ok(Scanned {
        segments,
        batches,
        torn,
    })
}

/// Where the first valid record at or after byte `from` starts.
fn next_record(bytes: &[u8], from: usize, key: Option<&SegmentKey>) -> Option<usize> {
    let mut at = from;
    let magic = record::magic(key);
    while let Some(found) = bytes.get(at..)?.windows(4).position(|w| w == magic) {
        let start = at + found;
        if record::decode(&bytes[start..], key).is_ok() {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

fn torn_tail(
    path: &Path,
    offset: u64,
    len: u64,
    why: &Torn,
    tail: Tail,
) -> Result<TornTail, StoreError> {
    if tail == Tail::Cut {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| io_error(path, source))?;
        file.set_len(offset)
            .and_then(|()| file.sync_all())
            .map_err(|source| io_error(path, source))?;
    }
    Ok(TornTail {
        path: path.to_path_buf(),
        offset,
        bytes: len - offset,
        reason: why.to_string(),
        cut: tail == Tail::Cut,
    })
}

/// The segment being appended to, and the older ones still needed.
pub(super) struct Appender {
    dir: PathBuf,
    /// `(first seq, path)` of every segment, the current one last.
    segments: Vec<(u64, PathBuf)>,
    file: File,
    /// The current segment's checksum key.
    key: SegmentKey,
    /// Bytes known durable in the current segment.
    synced: u64,
    /// Bytes possibly written (more than `synced` after a failure).
    written: u64,
    /// Where the log stands after the last durable record: the first seq
    /// of the next one.
    end: u64,
}

impl Appender {
    /// Starts a fresh segment for the batch that begins at `first`, after
    /// `kept` (older segments not yet flushed to the store).
    pub(super) fn start(
        dir: &Path,
        kept: Vec<(u64, PathBuf)>,
        first: u64,
    ) -> Result<Self, StoreError> {
        create_dir(dir)?;
        let (file, key) = new_segment(dir, first)?;
        let mut appender = Self {
            dir: dir.to_path_buf(),
            segments: kept,
            file,
            key,
            synced: SEGMENT_HEADER_BYTES as u64,
            written: SEGMENT_HEADER_BYTES as u64,
            end: first,
        };
        appender.segments.retain(|(seq, _)| *seq != first);
        appender.segments.push((first, segment_path(dir, first)));
        Ok(appender)
    }

    /// Appends `batch` as one record and fdatasyncs it: the commit point.
    pub(super) fn append(
        &mut self,
        batch: &CommitBatch,
        faults: &Faults,
    ) -> Result<(), StoreError> {
        let first = batch.first_seq();
        if self.written > self.synced {
            return Err(StoreError::Engine(
                "the write-ahead file was not repaired after a failure".to_owned(),
            ));
        }
        if self.synced >= SEGMENT_BYTES {
            let (file, key) = new_segment(&self.dir, first)?;
            self.file = file;
            self.key = key;
            self.segments.push((first, segment_path(&self.dir, first)));
            self.synced = SEGMENT_HEADER_BYTES as u64;
            self.written = SEGMENT_HEADER_BYTES as u64;
        }
        let record = record::encode(batch, Some(&self.key));
        let record = record.as_slice();
        let path = self.current_path();
        self.written = self.synced + record.len() as u64;
        faults
            .write()
            .and_then(|()| self.file.write_all(record))
            .map_err(|err| StoreError::Engine(format!("write to {}: {err}", path.display())))?;
        faults
            .sync()
            .and_then(|()| self.file.sync_data())
            .map_err(|source| io_error(&path, source))?;
        self.synced = self.written;
        self.end = batch.checkpoint.0;
        Ok(())
    }

    /// Whether a segment still on disk holds the record of entry `seq`,
    /// and if so whether it is the current one.
    pub(super) fn holding(&self, seq: u64) -> Option<bool> {
        let at = self.segments.partition_point(|(first, _)| *first <= seq);
        let index = at.checked_sub(1)?;
        // The current segment holds `seq` only once it was written there.
        let current = index + 1 == self.segments.len();
        (!current || seq < self.end).then_some(current)
    }

    /// Closes the current segment and starts the next one at once (it
    /// would otherwise take records until it is full): the closed one is
    /// deleted as soon as the store has flushed past it.
    pub(super) fn roll(&mut self) -> Result<(), StoreError> {
        if self.written > self.synced {
            return Err(StoreError::Engine(
                "the write-ahead file was not repaired after a failure".to_owned(),
            ));
        }
        let (file, key) = new_segment(&self.dir, self.end)?;
        self.file = file;
        self.key = key;
        self.segments.retain(|(first, _)| *first != self.end);
        self.segments
            .push((self.end, segment_path(&self.dir, self.end)));
        self.synced = SEGMENT_HEADER_BYTES as u64;
        self.written = SEGMENT_HEADER_BYTES as u64;
        Ok(())
    }

    /// After a failed append: cuts what it may have left, so the file ends
    /// at its last durable record again.
    pub(super) fn repair(&mut self) -> Result<(), StoreError> {
        let path = self.current_path();
        self.file
            .set_len(self.synced)
            .and_then(|()| self.file.sync_all())
            .and_then(|()| self.file.seek(SeekFrom::Start(self.synced)).map(drop))
            .map_err(|source| io_error(&path, source))?;
        self.written = self.synced;
        Ok(())
    }

    /// Whether the disk takes writes again: syncs the current segment,
    /// then writes, syncs and removes a block in a probe file next to it.
    /// A sync alone succeeds on a full disk, and the resumed ledger would
    /// fail its first commit again; a write that needs a new block does
    /// not. Called only while resuming after a failure.
    pub(super) fn probe(&self) -> Result<(), StoreError> {
        self.file
            .sync_all()
            .map_err(|source| io_error(&self.current_path(), source))?;
        let path = self.dir.join(PROBE_FILE);
        let written = File::create(&path)
            .and_then(|mut file| {
                file.write_all(&[0; PROBE_BYTES])?;
                file.sync_data()
            })
            .map_err(|source| io_error(&path, source));
        // Removed even when the write failed: a full disk may have let it
        // create the (empty) file.
        let removed = std::fs::remove_file(&path).map_err(|source| io_error(&path, source));
        written.and(removed)
    }

    /// Deletes the segments wholly below `flushed` (every record in them
    /// is in the store, durably); never the current one.
    pub(super) fn remove_below(&mut self, flushed: u64) {
        while self.segments.len() > 1 && self.segments[1].0 <= flushed {
            let (_, path) = self.segments.remove(0);
            if let Err(err) = std::fs::remove_file(&path) {
                // Replay skips what the store already holds; only space is lost.
                tracing::warn!(path = %path.display(), error = %err, "cannot delete a flushed write-ahead segment");
            }
        }
    }

    fn current_path(&self) -> PathBuf {
        self.segments
            .last()
            .map_or_else(|| self.dir.clone(), |(_, path)| path.clone())
    }
}

/// Creates the WAL directory if it is missing, and makes its name durable
/// in the parent (the store synced the parent before the directory was
/// there; without this a crash could lose it with every segment in it).
fn create_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// Creates (or empties) the segment for `first` with a header holding a
/// new random key, and makes both the header and its name durable.
fn new_segment(dir: &Path, first: u64) -> Result<(File, SegmentKey), StoreError> {
    let path = segment_path(dir, first);
    let mut key = [0; 32];
    rand::rng().fill_bytes(&mut key);
    let mut header = Vec::with_capacity(SEGMENT_HEADER_BYTES);
    header.extend_from_slice(SEGMENT_MAGIC);
    header.extend_from_slice(&key);
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(&header)?;
            file.sync_data()?;
            Ok(file)
        })
        .map_err(|source| io_error(&path, source))?;
    sync_dir(dir)?;
    Ok((file, key))
}
