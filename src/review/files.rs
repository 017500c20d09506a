//! Review items on disk: one JSON file per item in the reviews folder,
//! written whole to a temporary file, synced, then renamed over the old
//! one, so a crash leaves either the old or the new item, never half.
//! A pending hold's answer lives only here until it is released.

use super::item::ReviewItem;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The reviews folder.
#[derive(Debug, Clone)]
pub struct ReviewFiles {
    dir: PathBuf,
}

/// A file that could not be written, read or removed.
#[derive(Debug, thiserror::Error)]
#[error("review store {path}: {source}")]
pub struct FileError {
    /// The file or folder.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_path_buf(),
        source,
    }
}

impl ReviewFiles {
    /// Uses (and creates) `dir`.
    pub fn open(dir: &Path) -> Result<Self, FileError> {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path_of(&self, review_id: &str) -> PathBuf {
        self.dir.join(format!("{review_id}.json"))
    }

    /// Writes `item` durably (blocking; call from a blocking thread).
    pub fn save(&self, item: &ReviewItem) -> Result<(), FileError> {
        let path = self.path_of(&item.review_id);
        let tmp = self.dir.join(format!("{}.tmp", item.review_id));
        // INVARIANT: a ReviewItem holds only strings, numbers and enums.
        let bytes = serde_json::to_vec(item).unwrap_or_default();
        let mut file = std::fs::File::create(&tmp).map_err(at(&tmp))?;
        file.write_all(&bytes).map_err(at(&tmp))?;
        file.sync_data().map_err(at(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(at(&path))?;
        self.sync_dir()
    }

    /// Removes an item's file, if there is one.
    pub fn remove(&self, review_id: &str) -> Result<(), FileError> {
        let path = self.path_of(review_id);
        match std::fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(at(&path)(err)),
        }
    }

    fn sync_dir(&self) -> Result<(), FileError> {
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(at(&self.dir))
    }

    /// Every stored item. A file that does not parse is left in place
    /// and reported, never deleted: it may hold the only copy of an answer.
    pub fn load_all(&self) -> Result<(Vec<ReviewItem>, Vec<FileError>), FileError> {
        let mut items = Vec::new();
        let mut unreadable = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(at(&self.dir))? {
            let path = entry.map_err(at(&self.dir))?.path();
            if path.extension().is_some_and(|ext| ext == "tmp") {
                // A write that never got renamed: the old item (if any) stands.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let parsed = std::fs::read(&path).and_then(|bytes| {
                serde_json::from_slice::<ReviewItem>(&bytes).map_err(std::io::Error::other)
            });
            match parsed {
                Ok(item) => items.push(item),
                Err(source) => unreadable.push(FileError { path, source }),
            }
        }
        items.sort_by_key(|item| item.opened_unix_ms);
        Ok((items, unreadable))
    }
}
