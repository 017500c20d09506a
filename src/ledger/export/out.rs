//! Where a bundle's files go while they are produced ([`BundleOut`]): a
//! directory (the offline export), a tally of each file's length, lines
//! and SHA-256 with nothing kept (the first pass of an online export), or
//! one file's bytes into a writer (its second pass, one file at a time).
//! Every one keeps the tally the manifest's `files` is made of, so both
//! forms describe their files the same way.

use super::ExportError;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the files of a bundle being produced go. A producer appends to a
/// file only when [`BundleOut::wants`] it, so it can skip the reads of the
/// files that are not wanted.
pub(crate) trait BundleOut {
    /// Whether `file`'s bytes are wanted.
    fn wants(&self, file: &str) -> bool;
    /// Appends `bytes` to `file` (created by its first append).
    fn append(&mut self, file: &'static str, bytes: &[u8]) -> Result<(), ExportError>;
    /// Makes `file` exist even when it gets no bytes.
    fn touch(&mut self, file: &'static str) -> Result<(), ExportError>;
}

/// One file's length, line count and SHA-256.
#[derive(Clone, Default)]
pub(crate) struct Tally {
    pub(crate) bytes: u64,
    pub(crate) lines: u64,
    sha: Sha256,
}

impl Tally {
    fn add(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        self.lines += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        self.sha.update(bytes);
    }

    /// The SHA-256 of what was added, in hex.
    pub(crate) fn sha256_hex(&self) -> String {
        crate::ledger::entry::hex(&self.sha.clone().finalize())
    }
}

/// The tally of every file a bundle has, by name.
#[derive(Clone, Default)]
pub(crate) struct Tallies(pub(crate) BTreeMap<&'static str, Tally>);

impl Tallies {
    fn add(&mut self, file: &'static str, bytes: &[u8]) {
        self.0.entry(file).or_default().add(bytes);
    }

    /// The manifest's `files`: each file's line count and SHA-256.
    pub(crate) fn file_list(&self) -> serde_json::Value {
        let files = self
            .0
            .iter()
            .map(|(name, tally)| {
                (
                    (*name).to_owned(),
                    serde_json::json!({ "lines": tally.lines, "sha256": tally.sha256_hex() }),
                )
            })
            .collect();
        serde_json::Value::Object(files)
    }

    /// As [`Tallies::file_list`], each file with its length too
    /// (`govgate-bundle/3`).
    pub(crate) fn file_list_with_bytes(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0
            .iter()
            .map(|(name, tally)| {
                (
                    (*name).to_owned(),
                    serde_json::json!({
                        "lines": tally.lines,
                        "sha256": tally.sha256_hex(),
                        "bytes": tally.bytes,
                    }),
                )
            })
            .collect()
    }
}

/// The files written into a directory.
pub(crate) struct DirOut {
    dir: PathBuf,
    files: BTreeMap<&'static str, std::io::BufWriter<std::fs::File>>,
    tallies: Tallies,
}

impl DirOut {
    /// Files in `dir`, which exists.
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
            tallies: Tallies::default(),
        }
    }

    /// The directory the files go into.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn fail(&self, file: &str, source: std::io::Error) -> ExportError {
        ExportError::Write {
            path: self.dir.join(file).display().to_string(),
            source,
        }
    }

    fn open(&mut self, file: &'static str) -> Result<(), ExportError> {
        if !self.files.contains_key(file) {
            let created =
                std::fs::File::create(self.dir.join(file)).map_err(|err| self.fail(file, err))?;
            self.files.insert(file, std::io::BufWriter::new(created));
            self.tallies.0.entry(file).or_default();
        }
        Ok(())
    }

    /// Flushes every file; their tallies.
    pub(crate) fn finish(mut self) -> Result<Tallies, ExportError> {
        let files = std::mem::take(&mut self.files);
        for (name, mut file) in files {
            file.flush().map_err(|err| self.fail(name, err))?;
        }
        Ok(self.tallies)
    }
}

impl BundleOut for DirOut {
    fn wants(&self, _file: &str) -> bool {
        true
    }

    fn append(&mut self, file: &'static str, bytes: &[u8]) -> Result<(), ExportError> {
        self.open(file)?;
        self.tallies.add(file, bytes);
        let written = match self.files.get_mut(file) {
            Some(out) => out.write_all(bytes),
            None => Ok(()),
        };
        written.map_err(|err| self.fail(file, err))
    }

    fn touch(&mut self, file: &'static str) -> Result<(), ExportError> {
        self.open(file)
    }
}

/// Nothing kept: only each file's tally.
#[derive(Default)]
pub(crate) struct TallyOut {
    pub(crate) tallies: Tallies,
}

impl BundleOut for TallyOut {
    fn wants(&self, _file: &str) -> bool {
        true
    }

    fn append(&mut self, file: &'static str, bytes: &[u8]) -> Result<(), ExportError> {
        self.tallies.add(file, bytes);
        Ok(())
    }

    fn touch(&mut self, file: &'static str) -> Result<(), ExportError> {
        self.tallies.0.entry(file).or_default();
        Ok(())
    }
}

/// One file's bytes into a writer; every other file is not wanted.
pub(crate) struct OneFile<'w> {
    pub(crate) name: &'static str,
    pub(crate) writer: &'w mut dyn Write,
    pub(crate) tally: Tally,
}

impl BundleOut for OneFile<'_> {
    fn wants(&self, file: &str) -> bool {
        file == self.name
    }

    fn append(&mut self, file: &'static str, bytes: &[u8]) -> Result<(), ExportError> {
        if file != self.name {
            return Ok(());
        }
        self.tally.add(bytes);
        self.writer
            .write_all(bytes)
            .map_err(|source| ExportError::Write {
                path: self.name.to_owned(),
                source,
            })
    }

    fn touch(&mut self, _file: &'static str) -> Result<(), ExportError> {
        Ok(())
    }
}
