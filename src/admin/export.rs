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

mod job;

use super::auth::Tokens;
use super::error_response;
use crate::ledger::export::{ExportRequest, Filter, UtcTime};
use crate::ledger::sequencer::KeyInForce;
use crate::ledger::store::LedgerStore;
use crate::listener::ConnectionAbort;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use job::{Job, Refusal};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
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

/// Chunks waiting for the client at most: with `job::CHUNK_BYTES` (64
/// KiB), what the gateway holds of an export whatever the client's speed.
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

async fn export(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
    connection: Option<axum::Extension<ConnectionAbort>>,
) -> Response {
    let caller = match api
        .tokens
        .authenticate(&headers)
        .await
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
    api.exports
        .answer(caller.principal, request, connection.map(|c| c.0))
        .await
}

impl Exports {
    /// Exports `request` for `principal` (already allowed to): the tar
    /// archive as the answer's body, or the refusal. Also serves the
    /// bundle of a report made on the admin API (reports.rs). With the
    /// client's `connection`, shutdown resets it (a client that stopped
    /// reading cannot hold the drain).
    pub(crate) async fn answer(
        &self,
        principal: String,
        request: ExportRequest,
        connection: Option<ConnectionAbort>,
    ) -> Response {
        answer(&self.inner, principal, request, connection).await
    }
}

async fn answer(
    inner: &Inner,
    principal: String,
    request: ExportRequest,
    connection: Option<ConnectionAbort>,
) -> Response {
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
        principal,
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
        connection: connection.clone(),
    };
    // The slot is freed by whichever comes first: the job's end, or the
    // answer's last byte leaving (the client, knowing the length, may ask
    // for the next export before the job has quite ended).
    let slot = Arc::new(std::sync::Mutex::new(Some(permit)));
    let job_slot = slot.clone();
    let job = inner.tracker.spawn_blocking(move || {
        job.metrics.running.inc();
        let result = job.run(ready_tx, body_tx);
        job.metrics.running.dec();
        job.metrics.count(result);
        free(&job_slot);
    });
    // Dropping this future (the client left) drops `ready_rx`: the first
    // pass sees it at its next chunk and stops.
    let refused = match ready_rx.await {
        Ok(Ok(ready)) => Ok(ready),
        Ok(Err(Refusal::Range(why))) => Err(error_response(
            StatusCode::BAD_REQUEST,
            "export_range",
            &why,
            None,
        )),
        Ok(Err(Refusal::Store(err))) => {
            tracing::error!(error = %err, "export: the ledger could not be read");
            Err(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                "the ledger could not be read",
                None,
            ))
        }
        Ok(Err(Refusal::Stopping)) | Err(_) => Err(stopping()),
    };
    let ready = match refused {
        Ok(ready) => ready,
        Err(answer) => {
            // A refused job ends at once: its slot is free again before
            // the client hears why (a retry right after is not `busy`).
            let _ = job.await;
            return answer;
        }
    };
    // At shutdown the body breaks off at once, chunks still queued or not:
    // the job's own error chunk cannot reach a queue a client that stopped
    // reading has filled, and the connection would hold the drain.
    let stop = inner.stop.clone();
    let body = futures_util::stream::unfold(
        Some((body_rx, ready.archive_len, slot)),
        move |state| {
            let (stop, connection) = (stop.clone(), connection.clone());
            async move {
                let (mut rx, mut left, slot) = state?;
                let chunk = tokio::select! {
                    biased;
                    () = stop.cancelled() => {
                        if let Some(connection) = &connection {
                            connection.abort();
                        }
                        return Some((Err(std::io::Error::other("the gateway is shutting down")), None));
                    }
                    chunk = rx.recv() => chunk?,
                };
                if let Ok(bytes) = &chunk {
                    left = left.saturating_sub(bytes.len() as u64);
                    if left == 0 {
                        free(&slot);
                    }
                }
                Some((chunk, Some((rx, left, slot))))
            }
        },
    );
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

/// Frees an export's slot (once; later calls find it free).
fn free(slot: &std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>) {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take();
}

fn stopping() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "the gateway is shutting down",
        None,
    )
}
