//! The decision journal: JSON lines appended by one writer task.
//!
//! Requests enqueue their decision on a bounded channel and wait for the
//! writer's acknowledgement; the writer takes everything queued, writes it
//! in one `write` call (group commit), then acknowledges the whole batch. A
//! full queue answers `Overloaded` at once (the proxy turns that into 503
//! with Retry-After) instead of letting latency grow.
//!
//! The writer is a task on the async runtime, not a thread of its own: a
//! `write` into the page cache takes microseconds, while handing every
//! small batch to another thread cost a context switch per request, which
//! measured as a third of the gateway's CPU under load. It does not fsync;
//! the durable ledger that replaces it does its fsync on a blocking thread.

use crate::decision::{Ack, Decision, DecisionSink, RecordFuture, SinkError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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

/// The writer half: owns the task; `close` waits until it has written everything.
pub struct JournalWriter {
    task: JoinHandle<()>,
}

impl Journal {
    /// Opens (creating if needed) `decisions.jsonl` in `dir` and starts the
    /// writer task (call from within the runtime). `queue_len` bounds the
    /// decisions waiting to be written.
    pub fn open(dir: &Path, queue_len: usize) -> Result<(Journal, JournalWriter), JournalError> {
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
        let task = tokio::spawn(write_loop(file, jobs));
        Ok((Journal { queue }, JournalWriter { task }))
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
    pub async fn close(self) {
        if self.task.await.is_err() {
            tracing::error!("decision journal writer panicked");
        }
    }
}

async fn write_loop(mut file: File, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut buf = Vec::with_capacity(64 * 1024);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Let the requests that are ready run first, so their decisions
        // join this batch: one write for many instead of one each. When
        // nothing else is ready this returns at once.
        tokio::task::yield_now().await;
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
        // A page-cache write: short enough to do on the runtime (see module docs).
        let result = match file.write_all(&buf) {
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
