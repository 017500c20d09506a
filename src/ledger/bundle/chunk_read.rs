//! A chunk file of a `govgate-bundle/3` bundle read once
//! (docs/audit-format.md section 8.4): the stored bytes are hashed
//! (SHA-256) and counted as the decoder pulls them from the file, so the
//! manifest's `sha256` and `bytes`, the decompressed content's line count
//! and every check of its lines all come from one read.

use super::chunks::{check_lines, check_stored};
use super::digest::Lines;
use super::{BundleError, bad};
use crate::ledger::export::Compression;
use sha2::Digest as _;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

/// What has been read of the stored bytes.
#[derive(Default)]
struct Stored {
    sha: sha2::Sha256,
    bytes: u64,
}

/// The file under the decoder: every byte read is hashed and counted.
struct Hashing {
    file: std::fs::File,
    stored: Arc<Mutex<Stored>>,
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.file.read(buf)?;
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        stored.sha.update(&buf[..read]);
        stored.bytes += read as u64;
        Ok(read)
    }
}

/// The stored side of a chunk file whose content is read as [`Lines`].
pub(super) struct Tail {
    stored: Arc<Mutex<Stored>>,
    /// The same open file (one offset): what the decoder left unread.
    rest: std::fs::File,
    name: String,
}

/// What the manifest's `files` says of a chunk file, as read.
pub(super) struct Read1 {
    pub(super) sha256: String,
    pub(super) bytes: u64,
}

/// Opens chunk file `name` of the bundle in `dir`: its content's lines,
/// and the [`Tail`] that says what its stored bytes were once they are
/// read.
pub(super) fn open(
    dir: &Path,
    name: &str,
    compression: Compression,
) -> Result<(Lines, Tail), BundleError> {
    let path = dir.join(name);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(
                "files",
                format!("{name} is missing (the manifest lists it)"),
            ));
        }
        Err(source) => {
            return Err(BundleError::Unreadable {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let unreadable = |source| BundleError::Unreadable {
        path: path.display().to_string(),
        source,
    };
    let rest = file.try_clone().map_err(unreadable)?;
    let stored = Arc::new(Mutex::new(Stored::default()));
    let hashing = Hashing {
        file,
        stored: Arc::clone(&stored),
    };
    let content = super::chunks::decode(hashing, compression).map_err(unreadable)?;
    let lines = Lines::unhashed(path.clone(), content);
    Ok((
        lines,
        Tail {
            stored,
            rest,
            name: name.to_owned(),
        },
    ))
}

impl Tail {
    /// Once the content was read to its end: the SHA-256 and size of the
    /// stored bytes, with any the decoder did not need.
    pub(super) fn finish(mut self) -> Result<Read1, BundleError> {
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = match self.rest.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(BundleError::Unreadable {
                        path: self.name,
                        source,
                    });
                }
            };
            let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
            stored.sha.update(&buffer[..read]);
            stored.bytes += read as u64;
        }
        let stored =
            std::mem::take(&mut *self.stored.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(Read1 {
            sha256: crate::ledger::entry::hex(&stored.sha.finalize()),
            bytes: stored.bytes,
        })
    }
}

/// A chunk file as read against its member of the manifest's `files`.
pub(super) fn compare(
    name: &str,
    expected: Option<&serde_json::Value>,
    read: &Read1,
    lines: u64,
) -> Result<(), BundleError> {
    let Some(expected) = expected else {
        return Err(bad("manifest", format!("files does not list {name}")));
    };
    check_stored(name, expected, &read.sha256, Some(read.bytes))?;
    check_lines(name, expected, lines)
}
