//! The response index kept across restarts: `responses.jsonl` in the data
//! directory, one JSON line per id learnt (`id`, `model`, `version`,
//! `caller`), appended by one blocking writer off the request path.
//!
//! At start the file is read back into the index (the last
//! [`MAX_RESPONSE_IDS`](super::MAX_RESPONSE_IDS) ids win, as in memory);
//! a torn last line (a crash mid-write) is skipped. When the file holds
//! more than twice the index's capacity, the writer rewrites it with its
//! newest lines (a new file renamed over the old one), so it stays
//! bounded.
//!
//! The file is a convenience, not evidence: each id's creating decision
//! is in the ledger. Lines are written (not synced) as soon as the writer
//! gets them; a full queue drops the line (the id still resolves until
//! the gateway stops).

use super::{ResponseIndex, StoredResponse};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// The journal's file name, in the data directory.
const JOURNAL_FILE: &str = "responses.jsonl";

/// Lines waiting for the writer; beyond, new ids are not journaled.
const QUEUE: usize = 4096;

/// The journal cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct JournalError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// One id as the file keeps it.
#[derive(Serialize, Deserialize)]
pub(super) struct Line {
    id: String,
    model: String,
    version: String,
    caller: String,
}

impl Line {
    pub(super) fn new(id: &str, stored: &StoredResponse) -> Self {
        Self {
            id: id.to_owned(),
            model: stored.model.clone(),
            version: stored.version.clone(),
            caller: stored.caller.clone(),
        }
    }

    fn into_parts(self) -> (String, StoredResponse) {
        (
            self.id,
            StoredResponse {
                model: self.model,
                version: self.version,
                caller: self.caller,
            },
        )
    }
}

/// Appends the lines the index sends; owned by the app, which runs it
/// on a blocking thread until the index closes the journal.
pub(crate) struct JournalWriter {
    path: PathBuf,
    lines: mpsc::Receiver<Line>,
    file: Option<BufWriter<File>>,
    lines_in_file: usize,
    /// The index's capacity: how many lines a compaction keeps.
    capacity: usize,
}

impl ResponseIndex {
    /// Reads `data_dir`'s journal into the index and starts journaling
    /// the ids learnt from now on, through the writer returned. Blocking
    /// file I/O: call it off the async workers.
    pub(crate) fn open_journal(&self, data_dir: &Path) -> Result<JournalWriter, JournalError> {
        let path = data_dir.join(JOURNAL_FILE);
        let at = |source| JournalError {
            path: path.clone(),
            source,
        };
        let lines_in_file = match File::open(&path) {
            Ok(file) => self.read_back(file).map_err(at)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => 0,
            Err(err) => return Err(at(err)),
        };
        let (sender, lines) = mpsc::channel(QUEUE);
        let mut writer = JournalWriter {
            // Opened (created) at the first id: a gateway that never sees
            // the Responses API leaves no file.
            file: None,
            path: path.clone(),
            lines,
            lines_in_file,
            capacity: self.capacity,
        };
        writer.compact_if_due().map_err(at)?;
        if let Ok(mut inner) = self.inner.lock() {
            inner.journal = Some(sender);
        }
        Ok(writer)
    }

    /// Learns every line of `file`, in order; the number of lines read.
    fn read_back(&self, file: File) -> std::io::Result<usize> {
        let mut read = 0;
        for line in BufReader::new(file).lines() {
            let line = line?;
            read += 1;
            // A torn or foreign line is skipped, not fatal: the file is a
            // cache of what the ledger holds.
            if let Ok(line) = serde_json::from_str::<Line>(&line) {
                let (id, stored) = line.into_parts();
                self.learn(&id, stored);
            }
        }
        Ok(read)
    }

    /// Stops journaling: the writer writes what is queued and ends.
    pub(crate) fn close_journal(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.journal = None;
        }
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl JournalWriter {
    /// Writes lines as they come until the journal is closed; each burst
    /// is flushed to the file once the queue is empty.
    pub(crate) fn run(mut self) {
        while let Some(line) = self.lines.blocking_recv() {
            let mut next = Some(line);
            while let Some(line) = next {
                if let Err(err) = self.write(&line) {
                    tracing::warn!(path = %self.path.display(), error = %err, "a response id was not journaled");
                }
                next = self.lines.try_recv().ok();
            }
            if let Err(err) = self.flush().and_then(|()| self.compact_if_due()) {
                tracing::warn!(path = %self.path.display(), error = %err, "the response id journal could not be written");
            }
        }
        if let Err(err) = self.flush() {
            tracing::warn!(path = %self.path.display(), error = %err, "the response id journal could not be written");
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }

    fn write(&mut self, line: &Line) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                self.file.insert(BufWriter::new(append(&self.path)?))
            }
        };
        serde_json::to_writer(&mut *file, line)?;
        file.write_all(b"\n")?;
        self.lines_in_file += 1;
        Ok(())
    }

    /// Past twice the capacity, rewrites the file with its newest
    /// `capacity` lines (what a restart would read back into the index),
    /// into a new file renamed over the old. It reads the file, not the
    /// index: the request path takes the index's lock for every id, and
    /// copying a hundred thousand ids out of it would hold that lock for
    /// milliseconds.
    fn compact_if_due(&mut self) -> std::io::Result<()> {
        if self.lines_in_file <= self.capacity.saturating_mul(2) {
            return Ok(());
        }
        let mut kept: VecDeque<String> = VecDeque::with_capacity(self.capacity);
        for line in BufReader::new(File::open(&self.path)?).lines() {
            let line = line?;
            // A torn or foreign line is left behind, as at start.
            if serde_json::from_str::<Line>(&line).is_err() {
                continue;
            }
            if kept.len() == self.capacity {
                kept.pop_front();
            }
            kept.push_back(line);
        }
        let fresh = self.path.with_extension("jsonl.new");
        let mut out = BufWriter::new(File::create(&fresh)?);
        for line in &kept {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.into_inner()
            .map_err(|err| err.into_error())?
            .sync_all()?;
        std::fs::rename(&fresh, &self.path)?;
        self.file = Some(BufWriter::new(append(&self.path)?));
        self.lines_in_file = kept.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::stored;
    use super::*;

    /// Writes what `index` learns until the journal closes.
    fn journaled(index: &ResponseIndex, dir: &Path, learn: &[(&str, &str)]) {
        let writer = index.open_journal(dir).unwrap();
        let running = std::thread::spawn(move || writer.run());
        for (id, model) in learn {
            index.learn(id, stored(model));
        }
        index.close_journal();
        running.join().unwrap();
    }

    #[test]
    fn ids_learnt_before_a_restart_resolve_after_it() {
        let dir = tempfile::tempdir().unwrap();
        journaled(
            &ResponseIndex::new(10),
            dir.path(),
            &[("resp_a", "a"), ("resp_b", "b")],
        );
        // A torn last line, as a crash mid-write leaves it.
        let path = dir.path().join(JOURNAL_FILE);
        let mut file = append(&path).unwrap();
        file.write_all(br#"{"id":"resp_c","mod"#).unwrap();
        drop(file);

        let restarted = ResponseIndex::new(10);
        journaled(&restarted, dir.path(), &[("resp_d", "d")]);
        assert_eq!(restarted.find("resp_a"), Some(stored("a")));
        assert_eq!(restarted.find("resp_b"), Some(stored("b")));
        assert_eq!(restarted.find("resp_c"), None);
        assert_eq!(restarted.find("resp_d"), Some(stored("d")));
    }

    #[test]
    fn no_file_is_made_until_an_id_is_learnt() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        journaled(&ResponseIndex::new(10), &data, &[]);
        assert!(!data.exists(), "nothing written, nothing made");
        journaled(&ResponseIndex::new(10), &data, &[("resp_a", "a")]);
        assert!(data.join(JOURNAL_FILE).exists());
    }

    #[test]
    fn the_file_is_rewritten_past_twice_the_capacity_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..9).map(|n| format!("resp_{n}")).collect();
        let learn: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "m")).collect();
        journaled(&ResponseIndex::new(3), dir.path(), &learn);
        let text = std::fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        let lines = text.lines().count();
        assert!(lines <= 6, "{lines} lines:\n{text}");
        assert!(text.contains("\"resp_8\""), "{text}");
        assert!(!text.contains("\"resp_0\""), "{text}");

        let restarted = ResponseIndex::new(3);
        journaled(&restarted, dir.path(), &[]);
        for n in 0..9 {
            let expected = (n >= 6).then(|| stored("m"));
            assert_eq!(restarted.find(&format!("resp_{n}")), expected, "resp_{n}");
        }
    }

    #[test]
    fn a_compaction_does_not_wait_for_the_index_the_request_path_uses() {
        let dir = tempfile::tempdir().unwrap();
        let index = ResponseIndex::new(3);
        let mut writer = index.open_journal(dir.path()).unwrap();
        for n in 0..7 {
            writer
                .write(&Line::new(&format!("resp_{n}"), &stored("m")))
                .unwrap();
        }
        writer.flush().unwrap();
        // The request path holds the index while the writer compacts.
        let held = index.inner.lock().unwrap();
        let (done, compacted) = std::sync::mpsc::channel();
        let compacting = std::thread::spawn(move || {
            done.send(writer.compact_if_due().map(|()| writer.lines_in_file))
                .unwrap();
        });
        let lines = compacted
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the compaction finishes while the index is held")
            .unwrap();
        drop(held);
        compacting.join().unwrap();
        assert_eq!(lines, 3);
        let text = std::fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        let kept: Vec<&str> = text.lines().collect();
        assert_eq!(kept.len(), 3, "{text}");
        assert!(
            kept[0].contains("\"resp_4\"") && kept[2].contains("\"resp_6\""),
            "{text}"
        );
    }
}
