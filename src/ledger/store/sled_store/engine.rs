//! One open sled database and its trees: opening it (layout check, what
//! an interrupted commit left), the rows every read starts from, and the
//! flush plus fdatasync that makes a commit durable.

use super::{
    CHECKPOINT, FORMAT, FORMAT_KEY, StoreError, be_u64, checkpoint_row, remove_packs_from,
    tagged_key,
};
use std::fs::File;
use std::path::Path;

/// One open sled database and its trees, replaced whole by a reopen.
pub(super) struct Engine {
    db: sled::Db,
    pub(super) main: sled::Tree,
    pub(super) entries: sled::Tree,
    pub(super) payloads: sled::Tree,
    /// sled's data file, kept open for fdatasync after every flush.
    data_file: File,
    /// sled's `blobs/` directory, kept open too once it exists: a sync
    /// then needs no new descriptor, so it works while the process is out
    /// of them (a flood of connections).
    blobs: std::sync::Mutex<Option<File>>,
}

/// sled reports a lock held by another process (a running gateway) only
/// as an I/O error whose text says so; it is told apart here so that the
/// person at the command line reads one sentence instead of sled's text.
fn locked_or(err: sled::Error, dir: &Path) -> StoreError {
    match &err {
        sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock") => {
            StoreError::Locked {
                path: dir.to_path_buf(),
            }
        }
        _ => err.into(),
    }
}

impl Engine {
    /// Opens sled in `dir`, checks the layout mark, and drops what an
    /// interrupted commit left above the latest checkpoint.
    pub(super) fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .segment_size(8 << 20)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|err| locked_or(err, dir))?;
        let main = db.open_tree("ledger")?;
        let entries = db.open_tree("entries")?;
        let payloads = db.open_tree("payloads")?;
        let data_path = dir.join("db");
        let data_file = File::open(&data_path).map_err(|source| StoreError::Sync {
            path: data_path,
            source,
        })?;
        match main.get(FORMAT_KEY)? {
            Some(format) if format == FORMAT => {}
            Some(format) => {
                return Err(StoreError::Corrupt(format!(
                    "store format {:?}; this gateway reads {:?}",
                    String::from_utf8_lossy(&format),
                    String::from_utf8_lossy(FORMAT)
                )));
            }
            None if main.is_empty() && entries.is_empty() => {
                main.insert(FORMAT_KEY, FORMAT)?;
            }
            None => {
                return Err(StoreError::Corrupt(
                    "a store without a format mark (written by an older gateway)".to_owned(),
                ));
            }
        }
        let engine = Self {
            db,
            main,
            entries,
            payloads,
            data_file,
            blobs: std::sync::Mutex::new(File::open(dir.join("blobs")).ok()),
        };
        engine.remove_uncommitted()?;
        engine.sync(dir)?;
        Ok(engine)
    }

    /// The size of the latest checkpoint stored, whether durable or not.
    pub(super) fn stored_size(&self) -> Result<u64, StoreError> {
        match self
            .main
            .range(tagged_key(CHECKPOINT, 0)..=tagged_key(CHECKPOINT, u64::MAX))
            .next_back()
        {
            Some(row) => {
                let (key, value) = row?;
                checkpoint_row(&key, &value).map(|(size, _)| size)
            }
            None => Ok(0),
        }
    }

    /// Drops the packs an interrupted commit left above the latest
    /// checkpoint: their answers were never released.
    pub(super) fn remove_uncommitted(&self) -> Result<(), StoreError> {
        let size = self.stored_size()?;
        let entries = remove_packs_from(&self.entries, size)?;
        remove_packs_from(&self.payloads, size)?;
        if entries > 0 {
            tracing::warn!(
                committed = size,
                discarded = entries,
                "ledger store: discarded entries of an interrupted commit (never acknowledged)"
            );
        }
        Ok(())
    }

    /// The `ledger` row `tag` with the greatest number at most `number`.
    pub(super) fn row_at_or_before(
        &self,
        tag: u8,
        number: u64,
    ) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        match self
            .main
            .get_lt(tagged_key(tag, number.saturating_add(1)))?
        {
            Some((key, value)) if key.first() == Some(&tag) && key.len() == 9 => {
                Ok(Some((be_u64(&key[1..])?, value)))
            }
            _ => Ok(None),
        }
    }

    pub(super) fn sync(&self, dir: &Path) -> Result<(), StoreError> {
        self.db.flush()?;
        // sled's flush is sync_file_range on Linux, which does not persist
        // the file's metadata (its size, when it grew); fdatasync does.
        self.data_file
            .sync_data()
            .map_err(|source| StoreError::Sync {
                path: dir.join("db"),
                source,
            })?;
        // Values too large for a segment go to files of their own in blobs/.
        let mut blobs = self
            .blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = dir.join("blobs");
        let sync_error = |source| StoreError::Sync {
            path: path.clone(),
            source,
        };
        if blobs.is_none() && path.exists() {
            *blobs = Some(File::open(&path).map_err(sync_error)?);
        }
        if let Some(handle) = blobs.as_ref() {
            handle.sync_all().map_err(sync_error)?;
        }
        Ok(())
    }
}
