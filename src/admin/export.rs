//! `GET /admin/ledger/export` (role auditor or admin): an export bundle of
//! the running gateway's ledger, streamed as a tar archive while requests
//! keep being recorded.
//!
//! The bundle is cut at the latest signed checkpoint when the request
//! starts (a [`Pinned`] view of the store), so it holds exactly what the
//! offline export of the same selection would write on a stopped gateway
//! of that size. The work runs on a blocking thread owned by [`Exports`],
//! paced to at most a quarter of a core ([`crate::ledger::export::stream`]
//! describes its two passes). The archive goes through a bounded channel
//! into the answer's body, so a slow client slows the export instead of
//! making the gateway hold the bundle; a client that goes away stops it at
//! its next chunk. At most [`MAX_EXPORTS`] run at once; one more is
//! answered 429 `export_busy`.

use super::auth::Tokens;
use super::error_response;
use crate::ledger::export::stream::Prepared;
use crate::ledger::export::{ExportError, ExportRequest, Filter, UtcTime};
use crate::ledger::pace::Pace;
use crate::ledger::sequencer::KeyInForce;
use crate::ledger::store::{LedgerStore, Pinned, StoreError};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Who may export.
const ROLES: &[&str] = &["auditor", "admin"];

/// Exports that may run at once: each reads the whole selection twice.
pub const MAX_EXPORTS: usize = 1;

/// Seconds a refused export is told to wait (`Retry-After`).
const RETRY_AFTER_SECS: u64 = 10;

/// Time slept per unit of work: at most a quarter of a core, as the
/// background verification.
const REST_PER_BUSY: u32 = 3;

/// Entries read between rests.
const PACE_EVERY: u64 = 1024;

/// How often the log says how far an export is.
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Bytes gathered before they are handed to the answer's body.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks waiting for the client at most: with [`CHUNK_BYTES`], what the
/// gateway holds of an export whatever the client's speed.
const QUEUED_CHUNKS: usize = 4;

/// The online exports: their threads, their limit, their stop.
#[derive(Clone)]
pub struct Exports {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: ExportMetrics,
    store: Arc<dyn LedgerStore>,
    witnesses: Option<crate::witness::Witnesses>,
    keys: KeyInForce,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    stop: CancellationToken,
    next_id: AtomicU64,
}

/// The metric families of the online exports.
#[derive(Clone)]
struct ExportMetrics {
    exports: IntCounterVec,
    running: IntGauge,
    bytes: IntCounter,
}

/// The `result` label values of `govgate_ledger_exports_total`.
const RESULTS: [&str; 5] = ["sent", "client_left", "cut", "refused", "busy"];

impl ExportMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            exports: IntCounterVec::new(
                Opts::new(
                    "govgate_ledger_exports_total",
                    "Online exports (GET /admin/ledger/export) by result.",
                ),
                &["result"],
            )?,
            running: IntGauge::new(
                "govgate_ledger_exports_running",
                "Online exports running now.",
            )?,
            bytes: IntCounter::new(
                "govgate_ledger_export_bytes_total",
                "Archive bytes the online exports handed to their clients.",
            )?,
        };
        registry.register(Box::new(metrics.exports.clone()))?;
        registry.register(Box::new(metrics.running.clone()))?;
        registry.register(Box::new(metrics.bytes.clone()))?;
        for result in RESULTS {
            metrics.exports.with_label_values(&[result]);
        }
        Ok(metrics)
    }

    fn count(&self, result: &str) {
        self.exports.with_label_values(&[result]).inc();
    }
}

impl Exports {
    /// Exports of `store`, whose key in force `keys` tells, with the
    /// cosigned checkpoint `witnesses` keep (when configured), their metric
    /// families registered in `registry`.
    pub fn new(
        store: Arc<dyn LedgerStore>,
        keys: KeyInForce,
        witnesses: Option<crate::witness::Witnesses>,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            inner: Arc::new(Inner {
                metrics: ExportMetrics::register(registry)?,
                store,
                witnesses,
                keys,
                slots: Arc::new(Semaphore::new(MAX_EXPORTS)),
                tracker: TaskTracker::new(),
                stop: CancellationToken::new(),
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// Refuses new exports and stops those running at their next chunk
    /// (their answers break off: a client sees an incomplete archive).
    pub fn stop(&self) {
        self.inner.stop.cancel();
        self.inner.tracker.close();
    }

    /// Resolves when every export's thread has ended (after [`Exports::stop`]).
    pub async fn drained(&self) {
        self.inner.tracker.wait().await;
    }
}

/// The export route, on the admin listener.
pub fn routes(tokens: Tokens, exports: Exports) -> Router {
    Router::new()
        .route("/admin/ledger/export", get(export))
        .with_state(Api { tokens, exports })
}

#[derive(Clone)]
struct Api {
    tokens: Tokens,
    exports: Exports,
}

/// The query: the selections of `govgate export`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    from: Option<u64>,
    to: Option<u64>,
    since: Option<String>,
    until: Option<String>,
    model: Option<String>,
    payloads: Option<bool>,
    checkpoints_every: Option<u64>,
}

impl Params {
    fn request(self) -> Result<ExportRequest, String> {
        for (name, time) in [("since", &self.since), ("until", &self.until)] {
            if let Some(time) = time {
                UtcTime::parse(time).map_err(|err| format!("{name}: {err}"))?;
            }
        }
        if self.checkpoints_every == Some(0) {
            return Err("checkpoints_every: must be at least 1".to_owned());
        }
        Ok(ExportRequest {
            from: self.from.unwrap_or(0),
            to: self.to,
            filter: Filter {
                since: self.since,
                until: self.until,
                model: self.model,
            },
            payloads: self.payloads.unwrap_or(false),
            checkpoints_every: self.checkpoints_every.unwrap_or(1),
        })
    }
}

/// What the first pass tells the handler.
struct Ready {
    archive_len: u64,
    headers: Vec<(&'static str, String)>,
}

/// Why no archive is sent.
enum Refusal {
    /// The selection is not in the log (400 `export_range`).
    Range(String),
    /// The store could not be read (503 `ledger_unavailable`).
    Store(StoreError),
    /// The gateway is stopping (503 `shutting_down`).
    Stopping,
}

async fn export(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let caller = match api
        .tokens
        .authenticate(&headers)
        .and_then(|caller| caller.require(ROLES).map(|()| caller))
    {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    let request = match query {
        Ok(Query(params)) => params.request(),
        Err(rejection) => Err(rejection.body_text()),
    };
    let request = match request {
        Ok(request) => request,
        Err(why) => return error_response(StatusCode::BAD_REQUEST, "invalid_query", &why, None),
    };
    let inner = &api.exports.inner;
    if inner.stop.is_cancelled() {
        return stopping();
    }
    let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
        let mut refused = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "export_busy",
            &format!("{MAX_EXPORTS} export(s) already running; retry when it has finished"),
            None,
        );
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        inner.metrics.count("busy");
        return refused;
    };
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (body_tx, body_rx) = mpsc::channel(QUEUED_CHUNKS);
    let job = Job {
        id,
        principal: caller.principal,
        store: inner.store.clone(),
        keys: inner.keys.clone(),
        cosigned: inner
            .witnesses
            .as_ref()
            .and_then(crate::witness::Witnesses::cosigned),
        request,
        stop: inner.stop.clone(),
        handle: tokio::runtime::Handle::current(),
        metrics: inner.metrics.clone(),
    };
    inner.tracker.spawn_blocking(move || {
        let _permit = permit;
        job.metrics.running.inc();
        let result = job.run(ready_tx, body_tx);
        job.metrics.running.dec();
        job.metrics.count(result);
    });
    // Dropping this future (the client left) drops `ready_rx`: the first
    // pass sees it at its next chunk and stops.
    let ready = match ready_rx.await {
        Ok(Ok(ready)) => ready,
        Ok(Err(Refusal::Range(why))) => {
            return error_response(StatusCode::BAD_REQUEST, "export_range", &why, None);
        }
        Ok(Err(Refusal::Store(err))) => {
            tracing::error!(error = %err, "export: the ledger could not be read");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                "the ledger could not be read",
                None,
            );
        }
        Ok(Err(Refusal::Stopping)) | Err(_) => return stopping(),
    };
    let body = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut response = Response::new(Body::from_stream(body));
    let set = response.headers_mut();
    set.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    set.insert(header::CONTENT_LENGTH, HeaderValue::from(ready.archive_len));
    for (name, value) in ready.headers {
        if let Ok(value) = HeaderValue::try_from(value) {
            set.insert(name, value);
        }
    }
    response
}

fn stopping() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "the gateway is shutting down",
        None,
    )
}

/// One export, on its blocking thread.
struct Job {
    id: u64,
    principal: String,
    store: Arc<dyn LedgerStore>,
    keys: KeyInForce,
    /// The latest cosigned checkpoint when the export started.
    cosigned: Option<String>,
    request: ExportRequest,
    stop: CancellationToken,
    handle: tokio::runtime::Handle,
    metrics: ExportMetrics,
}

type BodyChunk = Result<Bytes, std::io::Error>;

impl Job {
    /// Runs the export; its `result` label.
    fn run(
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
                // before the declared length, never looking complete.
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
