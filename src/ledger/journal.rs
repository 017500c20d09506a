//! The decision journal: JSON lines appended by one writer thread.
//!
//! Requests enqueue their decision on a bounded channel and wait for the
//! writer's acknowledgement; the writer takes everything queued, writes it
//! in one `write` call (group commit), optionally fsyncs, then acknowledges
//! the whole batch. A full queue answers `Overloaded` at once (the proxy
//! turns that into 503 with Retry-After) instead of letting latency grow.

use crate::decision::{Ack, Decision, DecisionSink, RecordFuture, SinkError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};

/// Most decisions one group commit writes.
const MAX_BATCH: usize = 1024;

/// Errors opening or running the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal file or its directory could not be opened.
    #[error("cannot open decision journal {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

type Job = (Decision, oneshot::Sender<Result<Ack, SinkError>>);

/// The sink half: cheap to share between requests.
pub struct Journal {
    queue: mpsc::Sender<Job>,
}

/// The writer half: owns the thread; `close` flushes and joins it.
pub struct JournalWriter {
    thread: Option<JoinHandle<()>>,
}

impl Journal {
    /// Opens (creating if needed) `decisions.jsonl` in `dir` and starts the
    /// writer. `queue_len` bounds the decisions waiting to be written;
    /// `fsync` makes each batch durable before it is acknowledged.
    pub fn open(
        dir: &Path,
        queue_len: usize,
        fsync: bool,
    ) -> Result<(Journal, JournalWriter), JournalError> {
        let path = dir.join("decisions.jsonl");
        let open_error = |source| JournalError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(open_error)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(open_error)?;
        let (queue, jobs) = mpsc::channel(queue_len.max(1));
        let thread = std::thread::Builder::new()
            .name("govgate-journal".to_owned())
            .spawn(move || write_loop(file, jobs, fsync))
            .map_err(open_error)?;
        Ok((
            Journal { queue },
            JournalWriter {
                thread: Some(thread),
            },
        ))
    }
}

impl DecisionSink for Journal {
    fn record(&self, decision: Decision) -> RecordFuture {
        let (ack, acked) = oneshot::channel();
        let queued = self.queue.try_send((decision, ack));
        Box::pin(async move {
            match queued {
                Ok(()) => acked.await.unwrap_or_else(|_| {
                    Err(SinkError::Unavailable("journal writer stopped".to_owned()))
                }),
                Err(mpsc::error::TrySendError::Full(_)) => Err(SinkError::Overloaded),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    Err(SinkError::Unavailable("journal is closed".to_owned()))
                }
            }
        })
    }
}

impl JournalWriter {
    /// Waits until every queued decision is written. All [`Journal`]
    /// handles must be dropped first, or this waits for them.
    pub fn close(mut self) {
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("decision journal writer panicked");
            }
        }
    }
}

fn write_loop(mut file: File, mut jobs: mpsc::Receiver<Job>, fsync: bool) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(job) = jobs.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        buf.clear();
        for (decision, _) in &batch {
            // INVARIANT: a Decision holds only strings, numbers and enums, which always serialize.
            if serde_json::to_writer(&mut buf, decision).is_ok() {
                buf.push(b'\n');
            }
        }
        let written = file
            .write_all(&buf)
            .and_then(|()| if fsync { file.sync_data() } else { Ok(()) });
        let result = match written {
            Ok(()) => Ok(Ack::default()),
            Err(err) => {
                tracing::error!(error = %err, "decision journal write failed");
                Err(SinkError::Unavailable(err.to_string()))
            }
        };
        for (_, ack) in batch.drain(..) {
            // A requester that went away no longer needs its ack.
            let _ = ack.send(result.clone());
        }
    }
}
