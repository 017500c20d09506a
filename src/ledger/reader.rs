//! Reading the ledger: receipts for decisions, entries, checkpoints and
//! proofs, and the HTTP routes that serve them (receipts on the public
//! listener, the rest on the admin listener).

use super::checkpoint::{NoteVerifier, TlogProof};
use super::store::{LedgerStore, StoreError, StoreNodes};
use super::tree::{ProofError, consistency_proof, inclusion_proof};
use crate::decision::DecisionId;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{StatusCode, header};
use serde::Deserialize;
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::sync::Semaphore;

mod keys;

/// Most entries one `/ledger/entries` call returns.
const MAX_ENTRIES_PER_CALL: u64 = 1000;

/// Store reads of the routes here that run at once (on blocking threads);
/// more wait their turn. Receipts are on the public listener, so callers
/// cannot take every blocking thread with them.
const MAX_READS: usize = 8;

/// Read access to a ledger store; cheap to clone.
#[derive(Clone)]
pub struct LedgerReader {
    store: Arc<dyn LedgerStore>,
    /// The key in force now (an online rotation changes it).
    key: Arc<dyn Fn() -> NoteVerifier + Send + Sync>,
    keys: Arc<keys::KeyCache>,
    reads: Arc<Semaphore>,
}

/// A decision's receipt.
pub struct Receipt {
    /// The entry's seq (its leaf index).
    pub seq: u64,
    /// The entry's canonical bytes (the leaf input).
    pub entry: Vec<u8>,
    /// Checkpoint plus inclusion proof.
    pub proof: TlogProof,
}

impl LedgerReader {
    /// A reader over `store`, whose checkpoints `verifier`'s key signs.
    pub fn new(store: Arc<dyn LedgerStore>, verifier: NoteVerifier) -> Self {
        Self::following(store, move || verifier.clone())
    }

    /// A reader over `store` whose signing key may change while it runs
    /// (an online key rotation): `key` says which one is in force.
    pub fn following(
        store: Arc<dyn LedgerStore>,
        key: impl Fn() -> NoteVerifier + Send + Sync + 'static,
    ) -> Self {
        Self {
            store,
            key: Arc::new(key),
            keys: Arc::default(),
            reads: Arc::new(Semaphore::new(MAX_READS)),
        }
    }

    /// Runs `read` on a blocking thread, at most [`MAX_READS`] at once:
    /// an index lookup and a proof's node reads are store work a request
    /// must not hold an async worker for. `None` if the thread was lost.
    /// Cancel-safe: a dropped caller leaves the read to finish.
    async fn blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&LedgerReader) -> T + Send + 'static,
    ) -> Option<T> {
        // INVARIANT: the semaphore is never closed.
        let permit = self.reads.clone().acquire_owned().await.ok()?;
        let reader = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            read(&reader)
        })
        .await
        .ok()
    }

    /// The receipt of a decision, if it is in the log.
    pub fn receipt(&self, id: &DecisionId) -> Result<Option<Receipt>, StoreError> {
        let Some(seq) = self.store.decision_seq(id.as_bytes())? else {
            return Ok(None);
        };
        let entry = self
            .store
            .entry(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} indexed but missing")))?;
        let (size, note) = self
            .store
            .checkpoint_covering(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("no checkpoint covers entry {seq}")))?;
        let path =
            inclusion_proof(&StoreNodes(self.store.as_ref()), seq, size).map_err(proof_error)?;
        Ok(Some(Receipt {
            seq,
            entry,
            proof: TlogProof {
                index: seq,
                path,
                signed_checkpoint: note,
            },
        }))
    }
}

fn proof_error(err: ProofError<StoreError>) -> StoreError {
    match err {
        ProofError::Source(err) => err,
        ProofError::Invalid(why) => StoreError::Corrupt(why.to_owned()),
    }
}

/// A JSON error answer `{"error": {"code", "message"}}`.
pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// 503 `ledger_unavailable`, the cause logged (never sent).
pub(super) fn store_failure(err: StoreError) -> Response {
    tracing::error!(error = %err, "ledger read failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ledger_unavailable",
        "the ledger cannot be read",
    )
}

fn read_stopped() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ledger_unavailable",
        "the ledger read stopped",
    )
}

/// Public routes: `GET /govgate/receipts/{id}` (tlog-proof text),
/// `GET /govgate/receipts/{id}/entry` (the entry's canonical JSON) and
/// `GET /govgate/receipts/{id}/signature` (its own signature, if any).
pub fn public_routes(reader: LedgerReader) -> Router {
    Router::new()
        .route("/govgate/receipts/{id}", get(receipt))
        .route("/govgate/receipts/{id}/entry", get(receipt_entry))
        .route("/govgate/receipts/{id}/signature", get(receipt_signature))
        .with_state(reader)
}

/// Why a receipt lookup failed, as the HTTP answer it becomes.
enum Lookup {
    NotFound,
    Store(StoreError),
    /// The blocking thread of the read was lost.
    Stopped,
}

impl IntoResponse for Lookup {
    fn into_response(self) -> Response {
        match self {
            Lookup::NotFound => error(
                StatusCode::NOT_FOUND,
                "unknown_decision",
                "no decision with this id",
            ),
            Lookup::Store(err) => store_failure(err),
            Lookup::Stopped => read_stopped(),
        }
    }
}

/// The receipt of decision `id`, and with `signature` the entry's own
/// signature, read off the async workers.
async fn find_receipt(
    reader: &LedgerReader,
    id: &str,
    signature: bool,
) -> Result<(Receipt, Option<[u8; 64]>), Lookup> {
    let id = DecisionId::parse(id).ok_or(Lookup::NotFound)?;
    reader
        .blocking(move |reader| -> Result<_, Lookup> {
            let receipt = reader.receipt(&id)?.ok_or(Lookup::NotFound)?;
            let own = match signature {
                true => reader.store.entry_signature(receipt.seq)?,
                false => None,
            };
            Ok((receipt, own))
        })
        .await
        .unwrap_or(Err(Lookup::Stopped))
}

impl From<StoreError> for Lookup {
    fn from(err: StoreError) -> Self {
        Lookup::Store(err)
    }
}

async fn receipt(State(reader): State<LedgerReader>, Path(id): Path<String>) -> Response {
    match find_receipt(&reader, &id, false)
        .await
        .map(|(receipt, _)| receipt)
    {
        Ok(receipt) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            receipt.proof.to_text(),
        )
            .into_response(),
        Err(lookup) => lookup.into_response(),
    }
}

async fn receipt_entry(State(reader): State<LedgerReader>, Path(id): Path<String>) -> Response {
    match find_receipt(&reader, &id, false)
        .await
        .map(|(receipt, _)| receipt)
    {
        Ok(receipt) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            receipt.entry,
        )
            .into_response(),
        Err(lookup) => lookup.into_response(),
    }
}

/// The entry's own signature (base64), when per-entry signing was on.
async fn receipt_signature(State(reader): State<LedgerReader>, Path(id): Path<String>) -> Response {
    match find_receipt(&reader, &id, true).await {
        Ok((_, Some(signature))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", BASE64.encode(signature)),
        )
            .into_response(),
        Ok((_, None)) => error(
            StatusCode::NOT_FOUND,
            "no_entry_signature",
            "this entry has no signature of its own",
        ),
        Err(lookup) => lookup.into_response(),
    }
}

/// Admin routes: latest checkpoint, entries by range, inclusion and consistency proofs.
pub fn admin_routes(reader: LedgerReader) -> Router {
    Router::new()
        .route("/ledger/checkpoint", get(latest_checkpoint))
        .route("/ledger/key", get(public_key))
        .route("/ledger/keys", get(keys::list))
        .route("/ledger/entries", get(entries))
        .route("/ledger/proofs/inclusion", get(inclusion))
        .route("/ledger/proofs/consistency", get(consistency))
        .with_state(reader)
}

/// The signed-note verifier key of the checkpoint signer (one line).
async fn public_key(State(reader): State<LedgerReader>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", (reader.key)().vkey()),
    )
        .into_response()
}

async fn latest_checkpoint(State(reader): State<LedgerReader>) -> Response {
    let Some(read) = reader
        .blocking(|reader| reader.store.latest_checkpoint())
        .await
    else {
        return read_stopped();
    };
    match read {
        Ok(Some((_, note))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            note,
        )
            .into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "empty_ledger",
            "the ledger has no checkpoint yet",
        ),
        Err(err) => store_failure(err),
    }
}

#[derive(Deserialize)]
struct Range {
    from: u64,
    #[serde(default)]
    count: Option<u64>,
}

/// Entries `from..from+count` as JSON lines of canonical bytes, up to the
/// first seq not stored. One range read, off the async workers: up to a
/// thousand entries is store work a request must not hold a worker for.
async fn entries(State(reader): State<LedgerReader>, Query(range): Query<Range>) -> Response {
    let count = range.count.unwrap_or(100).min(MAX_ENTRIES_PER_CALL);
    let to = range.from.saturating_add(count);
    let store = reader.store.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut body = Vec::new();
        let mut next = range.from;
        store
            .entries_in(range.from, to, &mut |seq, entry| {
                if seq != next {
                    return ControlFlow::Break(());
                }
                next += 1;
                body.extend_from_slice(entry);
                body.push(b'\n');
                ControlFlow::Continue(())
            })
            .map(|()| body)
    })
    .await;
    match read {
        Ok(Ok(body)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/jsonl")],
            body,
        )
            .into_response(),
        Ok(Err(err)) => store_failure(err),
        Err(_) => read_stopped(),
    }
}

#[derive(Deserialize)]
struct InclusionQuery {
    seq: u64,
    size: u64,
}

async fn inclusion(
    State(reader): State<LedgerReader>,
    Query(q): Query<InclusionQuery>,
) -> Response {
    proof_response(&reader, q.size, move |nodes| {
        inclusion_proof(nodes, q.seq, q.size)
    })
    .await
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    old: u64,
    new: u64,
}

async fn consistency(
    State(reader): State<LedgerReader>,
    Query(q): Query<ConsistencyQuery>,
) -> Response {
    proof_response(&reader, q.new, move |nodes| {
        consistency_proof(nodes, q.old, q.new)
    })
    .await
}

type ProofResult = Result<Vec<super::tree::Hash>, ProofError<StoreError>>;

/// Why no proof was made before proving.
enum Unproven {
    BeyondLog,
    Store(StoreError),
}

/// A proof as base64 hashes, one per line; sizes beyond the log are
/// refused. Its node reads run off the async workers.
async fn proof_response(
    reader: &LedgerReader,
    size: u64,
    prove: impl FnOnce(&StoreNodes<'_, dyn LedgerStore>) -> ProofResult + Send + 'static,
) -> Response {
    let read = reader
        .blocking(move |reader| match reader.store.size() {
            Ok(stored) if size > stored => Err(Unproven::BeyondLog),
            Err(err) => Err(Unproven::Store(err)),
            Ok(_) => Ok(prove(&StoreNodes(reader.store.as_ref()))),
        })
        .await;
    let proved = match read {
        None => return read_stopped(),
        Some(Err(Unproven::BeyondLog)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "beyond_log",
                "the log is not that large",
            );
        }
        Some(Err(Unproven::Store(err))) => return store_failure(err),
        Some(Ok(proved)) => proved,
    };
    match proved {
        Ok(hashes) => {
            let text: String = hashes
                .iter()
                .map(|h| format!("{}\n", BASE64.encode(h)))
                .collect();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text,
            )
                .into_response()
        }
        Err(ProofError::Invalid(why)) => {
            error(StatusCode::BAD_REQUEST, "invalid_proof_request", why)
        }
        Err(ProofError::Source(err)) => store_failure(err),
    }
}

#[cfg(test)]
mod blocking_tests {
    use super::*;
    use crate::ledger::checkpoint::NoteSigner;
    use crate::ledger::memstore::MemStore;
    use std::time::Duration;
    use tower::ServiceExt;

    /// A receipt whose index lookup is slow leaves the only async worker
    /// free: a request that needs no store read, sent after it on the same
    /// current-thread runtime, is answered first.
    #[test]
    fn a_slow_receipt_lookup_does_not_hold_the_async_worker() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = Arc::new(MemStore::new());
            store.slow_lookups(Duration::from_millis(300));
            let signer = NoteSigner::new(
                "test.example/reader",
                ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
            )
            .unwrap();
            let reader = LedgerReader::new(store, signer.verifier());
            let routes = public_routes(reader.clone()).merge(admin_routes(reader));
            let get = |uri: &str| {
                http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .unwrap()
            };
            let order = std::sync::Mutex::new(Vec::new());
            let receipt = async {
                let answer = routes
                    .clone()
                    .oneshot(get(&format!("/govgate/receipts/{}", "ab".repeat(16))))
                    .await
                    .unwrap();
                order.lock().unwrap().push(("receipt", answer.status()));
            };
            let key = async {
                let answer = routes.clone().oneshot(get("/ledger/key")).await.unwrap();
                order.lock().unwrap().push(("key", answer.status()));
            };
            tokio::join!(receipt, key);
            assert_eq!(
                order.into_inner().unwrap(),
                [("key", StatusCode::OK), ("receipt", StatusCode::NOT_FOUND)]
            );
        });
    }
}
