//! `POST /admin/reports` (role auditor, admin or approver:ai_officer): the
//! period report of the running gateway's ledger, made as a job that
//! `GET /admin/reports/{id}` follows (state, phase, done/total, error); its
//! files are then read at `GET /admin/reports/{id}/files/{name}` and its
//! bundle at `GET /admin/reports/{id}/bundle` (a tar archive, produced by
//! the online export's machinery). `govgate report --admin-url` is the
//! client; docs/evidence.md says what the report holds.
//!
//! A job pins the store at its latest signed checkpoint, verifies the log
//! up to there, folds the period's entries into report.json and
//! report.html (the offline command's code, [`crate::report::from_store`]),
//! appends the `report_issued` entry through the live ledger with the
//! caller as its principal, and derives report.oscal.json. The work runs
//! on a blocking thread owned by [`Reports`], paced to a quarter of a core
//! as the online export; at most one runs at a time (another asked for is
//! answered 409 `report_running`), and the last [`MAX_KEPT`] jobs are kept
//! in memory with their three files (bounded: every list in a report is
//! capped), until the gateway stops.

mod board;
mod job;
mod stopping;

use super::auth::{Caller, Tokens};
use super::export::Exports;
use super::{BodyError, error_response, json_response, parse_body};
use crate::ledger::export::{ExportRequest, Filter};
use crate::ledger::sequencer::{KeyInForce, Ledger};
use crate::ledger::store::LedgerStore;
use crate::report::Period;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use board::{Board, Started};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::task::TaskTracker;

/// Who may make and read reports: the auditors and the AI officers who
/// read them, and the administrators.
pub const ROLES: &[&str] = &["auditor", "admin", "approver:ai_officer"];

/// Jobs kept (running or ended), the oldest ended one forgotten first.
pub const MAX_KEPT: usize = 8;

/// The files of a report, as `govgate report` names them.
pub const FILES: [&str; 3] = ["report.json", "report.html", "report.oscal.json"];

/// The report jobs: their threads, their records, their stop.
#[derive(Clone)]
pub struct Reports {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn LedgerStore>,
    /// Taken at [`Reports::stop`]: a job holds its own clone until it
    /// ends, so the ledger closes once they are drained.
    ledger: Mutex<Option<Ledger>>,
    keys: KeyInForce,
    exports: Exports,
    board: Arc<Board>,
    tracker: TaskTracker,
    stop: Arc<AtomicBool>,
}

impl Reports {
    /// Reports on `store`, recorded through `ledger` (whose key in force
    /// `keys` tells); bundles served by `exports`.
    pub fn new(
        store: Arc<dyn LedgerStore>,
        ledger: Ledger,
        keys: KeyInForce,
        exports: Exports,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                ledger: Mutex::new(Some(ledger)),
                keys,
                exports,
                board: Arc::new(Board::new(MAX_KEPT)),
                tracker: TaskTracker::new(),
                stop: Arc::new(AtomicBool::new(false)),
            }),
        }
    }

    /// Refuses new jobs and stops the running one at its next chunk (it
    /// ends `failed`, `shutting_down`, and records nothing).
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Release);
        self.inner.tracker.close();
        self.inner
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// Resolves when the job's thread has ended (after [`Reports::stop`]).
    pub async fn drained(&self) {
        self.inner.tracker.wait().await;
    }
}

/// The report routes, on the admin listener.
pub fn routes(tokens: Tokens, reports: Reports) -> Router {
    Router::new()
        .route("/admin/reports", post(start).get(list))
        .route("/admin/reports/{id}", get(show))
        .route("/admin/reports/{id}/files/{name}", get(file))
        .route("/admin/reports/{id}/bundle", get(bundle))
        .with_state(Api { tokens, reports })
}

#[derive(Clone)]
struct Api {
    tokens: Tokens,
    reports: Reports,
}

/// `POST /admin/reports`'s body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    from: String,
    to: String,
}

async fn allowed(api: &Api, headers: &HeaderMap) -> Result<Caller, Response> {
    let caller = api
        .tokens
        .authenticate(headers)
        .await
        .map_err(IntoResponse::into_response)?;
    caller.require(ROLES).map_err(IntoResponse::into_response)?;
    Ok(caller)
}

async fn start(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match allowed(&api, &headers).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let body: Body = match parse_body(&body) {
        Ok(body) => body,
        Err(BodyError::Syntax(message)) => {
            return error_response(StatusCode::BAD_REQUEST, "malformed_body", &message, None);
        }
        Err(BodyError::Fields(message)) => {
            return error_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                &message,
                None,
            );
        }
    };
    let period = match Period::new(&body.from, &body.to) {
        Ok(period) => period,
        Err(err) => {
            let message = err
                .to_string()
                .replace("--from", "from")
                .replace("--to", "to");
            return error_response(StatusCode::BAD_REQUEST, "invalid_period", &message, None);
        }
    };
    let inner = &api.reports.inner;
    let ledger = inner
        .ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let Some(ledger) = ledger.filter(|_| !inner.stop.load(Ordering::Acquire)) else {
        return stopping();
    };
    let by = caller.acted_by();
    let id = match inner.board.start(&by, &period) {
        Started::Yes(id) => id,
        Started::Busy(running) => {
            return error_response(
                StatusCode::CONFLICT,
                "report_running",
                &format!(
                    "report {running} is being made; one report is made at a time, \
                     retry when it has ended"
                ),
                Some(("running", json!(running))),
            );
        }
    };
    tracing::info!(
        id,
        principal = %by.principal,
        from = %period.from,
        to = %period.to,
        "report asked for"
    );
    let job = job::Job {
        id,
        by,
        period,
        store: inner.store.clone(),
        ledger,
        keys: inner.keys.clone(),
        board: inner.board.clone(),
        stop: inner.stop.clone(),
        handle: tokio::runtime::Handle::current(),
    };
    inner.tracker.spawn_blocking(move || job.run());
    let location = format!("/admin/reports/{id}");
    let mut response = json_response(
        StatusCode::ACCEPTED,
        &json!({ "id": id, "status": location }),
    );
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn list(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(refused) = allowed(&api, &headers).await {
        return refused;
    }
    json_response(
        StatusCode::OK,
        &json!({ "reports": api.reports.inner.board.list() }),
    )
}

/// Why a call on a job is refused after its caller was allowed.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// 404 `report_not_found`.
    #[error("no report job {0} (the last {MAX_KEPT} are kept, until the gateway stops)")]
    NotFound(String),
    /// 409 `report_not_ready`.
    #[error("report {id} is {state}: it has no files")]
    NotReady { id: u64, state: &'static str },
    /// 404 `report_file_not_found`.
    #[error("a report has the files {files} (and its bundle at /admin/reports/{id}/bundle)", files = FILES.join(", "))]
    NoSuchFile { id: u64 },
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Refused::NotFound(_) => (StatusCode::NOT_FOUND, "report_not_found"),
            Refused::NotReady { .. } => (StatusCode::CONFLICT, "report_not_ready"),
            Refused::NoSuchFile { .. } => (StatusCode::NOT_FOUND, "report_file_not_found"),
        };
        error_response(status, code, &self.to_string(), None)
    }
}

/// The job `id` names.
fn record(api: &Api, id: &str) -> Result<board::Record, Refused> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| api.reports.inner.board.get(id))
        // A path segment is the client's: echoed only as far as an id goes.
        .ok_or_else(|| Refused::NotFound(id.chars().take(20).collect()))
}

async fn show(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(refused) = allowed(&api, &headers).await {
        return refused;
    }
    match record(&api, &id) {
        Ok(record) => json_response(StatusCode::OK, &record.to_json()),
        Err(refused) => refused.into_response(),
    }
}

/// The report job `id` names, once made.
fn made(api: &Api, id: &str) -> Result<(u64, Arc<board::Made>), Refused> {
    let record = record(api, id)?;
    match &record.made {
        Some(made) => Ok((record.id, made.clone())),
        None => Err(Refused::NotReady {
            id: record.id,
            state: record.state(),
        }),
    }
}

async fn file(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    if let Err(refused) = allowed(&api, &headers).await {
        return refused;
    }
    let (id, made) = match made(&api, &id) {
        Ok(made) => made,
        Err(refused) => return refused.into_response(),
    };
    let (bytes, kind) = match name.as_str() {
        "report.json" => (&made.json, "application/json"),
        "report.html" => (&made.html, "text/html; charset=utf-8"),
        "report.oscal.json" => (&made.oscal, "application/json"),
        _ => return Refused::NoSuchFile { id }.into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], bytes.clone()).into_response()
}

/// The report's bundle: from the period's first entry to the first
/// checkpoint holding its `report_issued` entry, every checkpoint in
/// between, no payloads (as `govgate report` writes `bundle/`).
async fn bundle(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
    connection: Option<axum::Extension<crate::listener::ConnectionAbort>>,
) -> Response {
    let caller = match allowed(&api, &headers).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let (_, made) = match made(&api, &id) {
        Ok(made) => made,
        Err(refused) => return refused.into_response(),
    };
    let request = ExportRequest {
        from: made.first_seq,
        to: Some(made.issued_seq + 1),
        filter: Filter::default(),
        payloads: false,
        checkpoints_every: 1,
    };
    api.reports
        .inner
        .exports
        .answer(caller.principal, request, connection.map(|c| c.0))
        .await
}

fn stopping() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "the gateway is shutting down",
        None,
    )
}
