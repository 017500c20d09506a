//! One history per origin and key: the signing key's state record
//! (`KEYFILE.state`, beside the key) holds the origin and the last
//! checkpoint the key signed for it, so that a new tree (a removed or
//! quarantined `data_dir/ledger`, another store) is never signed under an
//! origin whose key already signed a different history (C2SP
//! tlog-checkpoint: a log must not sign a checkpoint inconsistent with one
//! it signed before).
//!
//! The record is written at start (after `gateway_started` is durable),
//! every 30 seconds while serving and at shutdown, never per commit: a
//! record that lags (a crash) names an older checkpoint the store still
//! extends, which keeps the check sound.

use super::store::{LedgerStore, StoreError, StoreNodes};
use super::tree;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The record kept beside the key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryRecord {
    /// The key's Ed25519 public key, base64: a record of another key
    /// (a key file replaced by a new key) does not bind this one.
    pub public_key: String,
    /// The origin the key signs for now.
    pub origin: String,
    /// The size of the last checkpoint recorded.
    pub size: u64,
    /// Its root hash, base64.
    pub root: String,
    /// The checkpoint itself: the signed note, verbatim.
    pub checkpoint: String,
    /// Origins this key signed for before and left: never signed again.
    #[serde(default)]
    pub left_origins: Vec<String>,
}

impl HistoryRecord {
    /// Whether this is the record of `public_key` (a record of another key
    /// binds nothing).
    pub fn is_of_key(&self, public_key: &[u8; 32]) -> bool {
        self.public_key == STANDARD.encode(public_key)
    }

    /// The refusal of a store that does not extend this record, saying
    /// what was `found` instead.
    pub fn not_extended(&self, path: &Path, found: String) -> HistoryError {
        HistoryError::NotExtended {
            origin: self.origin.clone(),
            size: self.size,
            root: self.root.clone(),
            path: path.to_path_buf(),
            found,
        }
    }
}

/// Why the record cannot be read or written, or the store does not extend it.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The record file cannot be read, parsed or written.
    #[error("key state record {path}: {reason}")]
    File {
        /// The record's path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The store does not extend the checkpoint the key last signed for
    /// this origin.
    #[error(
        "the signing key already signed origin `{origin}` up to size {size} (root {root}), \
         recorded in {path}, and this ledger store {found}; signing it under `{origin}` would \
         make a second, conflicting history. Start the right store again, or set a new \
         ledger.origin (for example `{origin}/2`): the new log's first entry then cites the \
         old log's last checkpoint"
    )]
    NotExtended {
        /// The recorded origin.
        origin: String,
        /// The recorded size.
        size: u64,
        /// The recorded root, base64.
        root: String,
        /// The record's path.
        path: PathBuf,
        /// What the store holds instead.
        found: String,
    },
    /// The configured origin is one this key signed for and left.
    #[error(
        "the signing key left origin `{origin}` for `{current}` (recorded in {path}); it never \
         signs `{origin}` again: set ledger.origin to a new name"
    )]
    OriginLeft {
        /// The configured origin.
        origin: String,
        /// The origin the key signs for now.
        current: String,
        /// The record's path.
        path: PathBuf,
    },
    /// The store could not be read.
    #[error("ledger store: {0}")]
    Store(#[from] StoreError),
}

/// The record's path for the key file at `key_file`.
pub fn record_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.file_name().unwrap_or_default().to_os_string();
    name.push(".state");
    key_file.with_file_name(name)
}

/// The record at `path`, if there is one.
pub fn load(path: &Path) -> Result<Option<HistoryRecord>, HistoryError> {
    let file_error = |reason: String| HistoryError::File {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| file_error(err.to_string())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(file_error(err.to_string())),
    }
}

/// Writes `record` to `path` atomically: a temporary file, fsynced,
/// renamed over the record, then the directory fsynced.
pub fn save(path: &Path, record: &HistoryRecord) -> Result<(), HistoryError> {
    let file_error = |err: std::io::Error| HistoryError::File {
        path: path.to_path_buf(),
        reason: err.to_string(),
    };
    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    let json = serde_json::to_vec_pretty(record).map_err(|err| HistoryError::File {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    let mut file = std::fs::File::create(&temp).map_err(file_error)?;
    file.write_all(&json)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(file_error)?;
    drop(file);
    std::fs::rename(&temp, path).map_err(file_error)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(file_error)
}

/// The record for the store's latest checkpoint under `origin`, if it has one.
pub fn current(
    store: &dyn LedgerStore,
    public_key: &[u8; 32],
    origin: &str,
    left_origins: Vec<String>,
) -> Result<Option<HistoryRecord>, HistoryError> {
    let Some((size, checkpoint)) = store.latest_checkpoint()? else {
        return Ok(None);
    };
    let root = STANDARD.encode(tree::root(&StoreNodes(store), size)?);
    Ok(Some(HistoryRecord {
        public_key: STANDARD.encode(public_key),
        origin: origin.to_owned(),
        size,
        root,
        checkpoint,
        left_origins,
    }))
}

/// Checks that `store` extends `record`: it holds at least `record.size`
/// entries and its root at that size is the recorded one.
pub fn check_extends(
    store: &dyn LedgerStore,
    record: &HistoryRecord,
    path: &Path,
) -> Result<(), HistoryError> {
    let size = store.size()?;
    let not_extended = |found: String| record.not_extended(path, found);
    if size < record.size {
        return Err(not_extended(format!("holds only {size} entries")));
    }
    let root = STANDARD.encode(tree::root(&StoreNodes(store), record.size)?);
    if root != record.root {
        return Err(not_extended(format!(
            "has root {root} at size {}",
            record.size
        )));
    }
    Ok(())
}

/// What starting `store` under `origin` with the key `public_key` means
/// for the key's history.
#[derive(Debug)]
pub enum Start {
    /// The key has no record (first start, or a record of another key):
    /// the record is made from the store once started.
    Unrecorded,
    /// The store extends the key's recorded history under this origin.
    Continues(HistoryRecord),
    /// A new origin on an empty store: a new log whose first entry cites
    /// the recorded checkpoint of the origin left.
    NewOrigin(HistoryRecord),
}

/// Decides [`Start`], refusing a store that would make a second history
/// under an origin the key signed before.
pub fn check_start(
    store: &dyn LedgerStore,
    record: Option<HistoryRecord>,
    public_key: &[u8; 32],
    origin: &str,
    path: &Path,
) -> Result<Start, HistoryError> {
    let Some(record) = record.filter(|record| record.is_of_key(public_key)) else {
        return Ok(Start::Unrecorded);
    };
    if record.origin == origin {
        check_extends(store, &record, path)?;
        return Ok(Start::Continues(record));
    }
    if record.left_origins.iter().any(|left| left == origin) {
        return Err(HistoryError::OriginLeft {
            origin: origin.to_owned(),
            current: record.origin,
            path: path.to_path_buf(),
        });
    }
    if store.size()? == 0 {
        return Ok(Start::NewOrigin(record));
    }
    // A store that already holds entries under a new origin has cited the
    // old one when it began (the record predates it, e.g. a crash before
    // the record was rewritten): it continues.
    Ok(Start::Continues(record))
}
