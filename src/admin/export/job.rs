//! One online export on its blocking thread: pins the store, runs the two
//! passes of [`Prepared`] (paced, stopped when the client leaves or the
//! gateway stops, logged), and hands the archive to the answer's body
//! through a bounded channel.

use super::ExportMetrics;
use crate::ledger::export::stream::Prepared;
use crate::ledger::export::{ExportError, ExportRequest};
use crate::ledger::pace::Pace;
use crate::ledger::sequencer::KeyInForce;
use crate::ledger::store::{LedgerStore, Pinned, StoreError};
use bytes::Bytes;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Time slept per unit of work: at most a quarter of a core, as the
/// background verification.
const REST_PER_BUSY: u32 = 3;

/// Entries read between rests.
const PACE_EVERY: u64 = 1024;

/// How often the log says how far an export is.
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Bytes gathered before they are handed to the answer's body.
const CHUNK_BYTES: usize = 64 * 1024;

/// What the first pass tells the handler.
pub(super) struct Ready {
    pub(super) archive_len: u64,
    pub(super) headers: Vec<(&'static str, String)>,
}

/// Why no archive is sent.
pub(super) enum Refusal {
    /// The selection is not in the log (400 `export_range`).
    Range(String),
    /// The store could not be read (503 `ledger_unavailable`).
    Store(StoreError),
    /// The gateway is stopping (503 `shutting_down`).
    Stopping,
}

/// One export, on its blocking thread.
pub(super) struct Job {
    pub(super) id: u64,
    pub(super) principal: String,
    pub(super) store: Arc<dyn LedgerStore>,
    pub(super) keys: KeyInForce,
    /// The latest cosigned checkpoint when the export started.
    pub(super) cosigned: Option<String>,
    pub(super) request: ExportRequest,
    pub(super) stop: CancellationToken,
    pub(super) handle: tokio::runtime::Handle,
    pub(super) metrics: ExportMetrics,
    /// The client's connection, when the request came over a listener.
    pub(super) connection: Option<crate::listener::ConnectionAbort>,
}

pub(super) type BodyChunk = Result<Bytes, std::io::Error>;

impl Job {
    /// Runs the export; its `result` label.
    pub(super) fn run(
        &self,
        ready: oneshot::Sender<Result<Ready, Refusal>>,
        body: mpsc::Sender<BodyChunk>,
    ) -> &'static str {
        let span = tracing::info_span!("export", id = self.id, principal = %self.principal);
        let _entered = span.enter();
        let started = std::time::Instant::now();
        let (pinned, verifier) = match self.pin() {
            Ok(Some(pinned)) => pinned,
            Ok(None) => {
                let _ = ready.send(Err(Refusal::Range("the log is empty".to_owned())));
                return "refused";
            }
            Err(err) => {
                let _ = ready.send(Err(Refusal::Store(err)));
                return "refused";
            }
        };
        tracing::info!(
            request = ?self.request,
            "export: started at the checkpoint of size {}",
            pinned.size_pinned()
        );
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let prepared = {
            let stop = || self.stop.is_cancelled() || ready.is_closed();
            let mut paced = Paced::new("reading", &stop);
            Prepared::prepare(
                &pinned,
                &verifier,
                &self.request,
                mtime,
                &mut |done, total| paced.step(done, total),
            )
        };
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                let refusal = match err {
                    ExportError::Range(why) => Refusal::Range(why),
                    ExportError::Store(err) => Refusal::Store(err),
                    ExportError::Stopped | ExportError::Write { .. } => Refusal::Stopping,
                };
                let result = match refusal {
                    Refusal::Stopping if ready.is_closed() => "client_left",
                    Refusal::Stopping => "cut",
                    _ => "refused",
                };
                if result != "refused" {
                    tracing::info!("export: stopped before it was sent ({result})");
                }
                let _ = ready.send(Err(refusal));
                return result;
            }
        };
        let mut prepared = prepared;
        let cosigned_size = self.add_cosigned(&mut prepared, &verifier);
        let exported = prepared.exported().clone();
        let archive_len = prepared.archive_len();
        let form = if prepared.is_sparse() {
            "sparse"
        } else {
            "contiguous"
        };
        let mut headers = vec![
            ("govgate-export-form", form.to_owned()),
            ("govgate-export-from", exported.from.to_string()),
            ("govgate-export-to", exported.to.to_string()),
            ("govgate-export-size", exported.size.to_string()),
            ("govgate-export-entries", prepared.entry_lines().to_string()),
            ("govgate-export-selected", exported.entries.to_string()),
            ("govgate-export-payloads", exported.payloads.to_string()),
            (
                "content-disposition",
                format!(
                    "attachment; filename=\"govgate-export-{}-{}.tar\"",
                    exported.from, exported.to
                ),
            ),
        ];
        if let Some(size) = cosigned_size {
            headers.push(("govgate-export-cosigned-size", size.to_string()));
        }
        if ready
            .send(Ok(Ready {
                archive_len,
                headers,
            }))
            .is_err()
        {
            tracing::info!("export: the client went away before the archive started");
            return "client_left";
        }
        let mut sink = ChannelWriter {
            tx: body.clone(),
            buf: Vec::with_capacity(CHUNK_BYTES),
            handle: self.handle.clone(),
            stop: self.stop.clone(),
            sent: 0,
        };
        let streamed = {
            let stop = || self.stop.is_cancelled() || body.is_closed();
            let mut paced = Paced::new("sending", &stop);
            prepared.stream(&pinned, &mut sink, &mut |done, total| {
                paced.step(done, total)
            })
        };
        let sent = sink.sent;
        self.metrics.bytes.inc_by(sent);
        let seconds = started.elapsed().as_secs_f64();
        match streamed {
            Ok(()) => {
                tracing::info!(
                    bytes = sent,
                    seconds,
                    "export: sent entries {}..{} (checkpoint of size {})",
                    exported.from,
                    exported.to,
                    exported.size
                );
                "sent"
            }
            Err(_) if body.is_closed() => {
                tracing::info!(bytes = sent, "export: the client went away; stopped");
                "client_left"
            }
            Err(err) => {
                if self.stop.is_cancelled() {
                    tracing::warn!(
                        bytes = sent,
                        "export: cut short, the gateway is shutting down"
                    );
                } else {
                    tracing::error!(error = %err, bytes = sent, "export: failed midway; the answer is cut");
                }
                // The body ends in an error: the connection is closed
                // before the declared length, never looking complete. The
                // queue may be full (a client that stopped reading): the
                // connection is reset then, which also ends a write waiting
                // on its full socket.
                if let Some(connection) = &self.connection {
                    connection.abort();
                }
                let _ = body.try_send(Err(std::io::Error::other("export failed")));
                "cut"
            }
        }
    }

    /// Adds the cosigned checkpoint and its consistency proof to the
    /// bundle's, as the offline export does; its size. The proof is read
    /// from the whole store: the cosigned checkpoint may be newer than the
    /// bundle's. One that does not link is left out, with a warning.
    fn add_cosigned(
        &self,
        prepared: &mut Prepared,
        verifier: &crate::ledger::checkpoint::NoteVerifier,
    ) -> Option<u64> {
        use crate::witness::bundle::{COSIGNED_FILE, PROOF_FILE, contents};
        let cosigned = self.cosigned.as_deref()?;
        let note = prepared.checkpoint_note().to_owned();
        match contents(self.store.as_ref(), verifier, &note, cosigned) {
            Ok((size, proof)) => {
                prepared.add_member(COSIGNED_FILE, cosigned.as_bytes().to_vec());
                prepared.add_member(PROOF_FILE, proof.into_bytes());
                Some(size)
            }
            Err(err) => {
                tracing::warn!(error = %err, "export: no cosigned checkpoint added");
                None
            }
        }
    }

    /// The store at its latest checkpoint and the key that signed it (read
    /// before and after, so a rotation in between is seen and retried).
    fn pin(&self) -> Result<Option<(Pinned, crate::ledger::checkpoint::NoteVerifier)>, StoreError> {
        for _ in 0..3 {
            let before = self.keys.get();
            let Some(pinned) = Pinned::at_latest(self.store.clone())? else {
                return Ok(None);
            };
            if self.keys.get().vkey() == before.vkey() {
                return Ok(Some((pinned, before)));
            }
        }
        Err(StoreError::Engine(
            "the signing key kept rotating while the export started".to_owned(),
        ))
    }
}

/// Hands the archive to the answer's body in chunks of [`CHUNK_BYTES`],
/// waiting while [`QUEUED_CHUNKS`] are queued (a slow client slows the
/// export). Fails when the client is gone or the gateway stops.
struct ChannelWriter {
    tx: mpsc::Sender<BodyChunk>,
    buf: Vec<u8>,
    handle: tokio::runtime::Handle,
    stop: CancellationToken,
    sent: u64,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        let len = chunk.len() as u64;
        let (tx, stop) = (&self.tx, &self.stop);
        // A blocking thread may wait on the runtime's futures this way.
        self.handle.block_on(async {
            tokio::select! {
                sent = tx.send(Ok(chunk)) => sent.map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
                }),
                () = stop.cancelled() => Err(std::io::Error::other("the gateway is shutting down")),
            }
        })?;
        self.sent += len;
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The progress callback of one pass: stops it when `stop` says so, rests
/// every [`PACE_EVERY`] entries, and logs how far it is every [`LOG_EVERY`].
struct Paced<'s> {
    what: &'static str,
    pace: Pace,
    stop: &'s dyn Fn() -> bool,
    logged: std::time::Instant,
}

impl<'s> Paced<'s> {
    fn new(what: &'static str, stop: &'s dyn Fn() -> bool) -> Self {
        Self {
            what,
            pace: Pace::new(REST_PER_BUSY),
            stop,
            logged: std::time::Instant::now(),
        }
    }

    fn step(&mut self, done: u64, total: u64) -> Result<(), ExportError> {
        if (self.stop)() {
            return Err(ExportError::Stopped);
        }
        if done.is_multiple_of(PACE_EVERY) {
            self.pace.rest(self.stop);
            if self.logged.elapsed() >= LOG_EVERY {
                tracing::info!("export: {} entries, {done} of {total}", self.what);
                self.logged = std::time::Instant::now();
            }
        }
        Ok(())
    }
}
