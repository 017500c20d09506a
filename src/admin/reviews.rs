//! The reviewer workflow on the admin API: list and show reviews, decide
//! them (approve, reject, override); show and reload the policies.
//! docs/reviews.md shows every call.
//!
//! Reading needs the role reviewer, admin or auditor; deciding needs
//! reviewer; reloading needs admin. Errors are JSON
//! `{"error": {"code", "message"}}`: 401/403 auth, 403 `own_request`,
//! 404 `review_not_found`, 409 `already_decided` (with `current_state`) or
//! `override_not_allowed`, 400 `malformed_body`, 422 `invalid_body`,
//! `reason_required` or `policy_invalid` (with `kept_set_seq`), 503
//! `ledger_unavailable`. A refused call changes nothing.

use super::auth::{AuthError, Tokens};
use super::{BodyError, error_response, json_response, parse_body};
use crate::review::{
    DecideError, ListFilter, PolicyGate, ReloadError, Reloaded, ReviewItem, ReviewKind,
    ReviewQueue, ReviewVerdict, Reviewer, StoredAnswer, rfc3339,
};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const READERS: &[&str] = &["reviewer", "admin", "auditor"];

#[derive(Clone)]
struct Api {
    queue: ReviewQueue,
    gate: Arc<PolicyGate>,
    tokens: Tokens,
}

/// The routes, under `/admin/reviews` and `/admin/policies`.
pub fn routes(queue: ReviewQueue, gate: Arc<PolicyGate>, tokens: Tokens) -> Router {
    Router::new()
        .route("/admin/reviews", get(list))
        .route("/admin/reviews/{review_id}", get(show))
        .route("/admin/reviews/{review_id}/decide", post(decide))
        .route("/admin/policies", get(policies))
        .route("/admin/policies/reload", post(reload))
        .with_state(Api {
            queue,
            gate,
            tokens,
        })
}

/// A refused call.
#[derive(Debug)]
enum ApiError {
    Auth(AuthError),
    Body(BodyError),
    Decide(DecideError),
    Query(String),
    NotFound(String),
    Reload(ReloadError),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        ApiError::Auth(err)
    }
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        ApiError::Body(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, extra) = match self {
            ApiError::Auth(err) => return err.into_response(),
            ApiError::Body(BodyError::Syntax(message)) => {
                (StatusCode::BAD_REQUEST, "malformed_body", message, None)
            }
            ApiError::Body(BodyError::Fields(message)) | ApiError::Query(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                message,
                None,
            ),
            ApiError::NotFound(id) => (
                StatusCode::NOT_FOUND,
                "review_not_found",
                format!("no review {id}"),
                None,
            ),
            ApiError::Decide(err) => {
                let message = err.to_string();
                match err {
                    DecideError::NotFound(_) => {
                        (StatusCode::NOT_FOUND, "review_not_found", message, None)
                    }
                    DecideError::AlreadyDecided(state) => (
                        StatusCode::CONFLICT,
                        "already_decided",
                        message,
                        Some(("current_state", json!(state.as_str()))),
                    ),
                    DecideError::OwnRequest => {
                        (StatusCode::FORBIDDEN, "own_request", message, None)
                    }
                    DecideError::OverrideNotAllowed => {
                        (StatusCode::CONFLICT, "override_not_allowed", message, None)
                    }
                    DecideError::ReasonRequired(_) => (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "reason_required",
                        message,
                        None,
                    ),
                    DecideError::Fleet(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "control_plane_unavailable",
                        format!("{message}; nothing changed, call again"),
                        None,
                    ),
                    DecideError::NotYetApplied { owner } => (
                        StatusCode::ACCEPTED,
                        "verdict_not_yet_applied",
                        message,
                        Some(("owner_replica", json!(owner))),
                    ),
                    DecideError::Storage(_) | DecideError::Ledger(_) => {
                        tracing::error!(error = %message, "review verdict not recorded");
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "ledger_unavailable",
                            "the verdict could not be recorded; nothing changed".to_owned(),
                            None,
                        )
                    }
                }
            }
            ApiError::Reload(ReloadError::Invalid { error, kept_seq }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "policy_invalid",
                error.to_string(),
                Some(("kept_set_seq", json!(kept_seq))),
            ),
            ApiError::Reload(err @ ReloadError::Refused(_)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_policy_set",
                err.to_string(),
                None,
            ),
            ApiError::Reload(err @ ReloadError::Ledger(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                err.to_string(),
                None,
            ),
        };
        error_response(status, code, &message, extra)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    model: Option<String>,
    kind: Option<String>,
    older_than: Option<u64>,
    reason: Option<String>,
    limit: Option<usize>,
}

fn filter(query: ListQuery) -> Result<ListFilter, ApiError> {
    let pending = match query.status.as_deref() {
        None | Some("pending") => Some(true),
        Some("decided") => Some(false),
        Some("all") => None,
        Some(other) => {
            return Err(ApiError::Query(format!(
                "status `{other}` is not pending, decided or all"
            )));
        }
    };
    let kind = match query.kind.as_deref() {
        None => None,
        Some("hold") => Some(ReviewKind::Hold),
        Some("flag") => Some(ReviewKind::Flag),
        Some(other) => {
            return Err(ApiError::Query(format!(
                "kind `{other}` is not hold or flag"
            )));
        }
    };
    Ok(ListFilter {
        pending,
        model: query.model,
        kind,
        older_than: query.older_than.map(Duration::from_secs),
        reason: query.reason.filter(|text| !text.is_empty()),
        limit: query.limit.unwrap_or(100),
    })
}

async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    api.tokens.authenticate(&headers).await?.require(READERS)?;
    let Query(query) = query.map_err(|err| ApiError::Query(err.body_text()))?;
    let items = api.queue.list(&filter(query)?).await;
    let reviews: Vec<Value> = items.iter().map(summary).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "reviews": reviews }),
    ))
}

async fn show(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(review_id): Path<String>,
) -> Result<Response, ApiError> {
    api.tokens.authenticate(&headers).await?.require(READERS)?;
    let item = api
        .queue
        .get(&review_id)
        .await
        .ok_or(ApiError::NotFound(review_id))?;
    let mut value = summary(&item);
    // A flag queued again after a restart has no bodies: null, not empty.
    value["bodies_kept"] = json!(item.bodies_kept);
    if item.bodies_kept {
        value["request"] = body_json(
            item.request.content_type.as_deref(),
            &item.request.bytes,
            None,
        );
        value["response"] = answer_json(&item.answer);
    } else {
        value["request"] = Value::Null;
        value["response"] = Value::Null;
    }
    let current = api.gate.current();
    let files: Value = if current.set_seq == item.set_seq {
        files_json(&current.set.content_hashes())
    } else {
        // An earlier set: its files are in its policy_set_loaded entry (under
        // change control, in its proposal).
        Value::Null
    };
    value["policy"] = json!({ "set_seq": item.set_seq, "files": files });
    value["decision"] = item.closing.as_ref().map_or(Value::Null, |closing| {
        json!({
            "verdict": closing.verdict,
            "reviewer": closing.reviewer,
            "reviewer_issuer": closing.reviewer_issuer,
            "reason": closing.reason,
            "decided_at": rfc3339(closing.at_unix_ms),
            "entry_seq": closing.entry_seq,
            "override_sha256": closing.override_answer.as_ref().map(StoredAnswer::sha256),
            "override": closing.override_answer.as_ref().map(answer_json),
        })
    });
    Ok(json_response(StatusCode::OK, &value))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    verdict: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    answer: Option<AnswerBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    content_type: Option<String>,
    body: Value,
}

/// The overriding answer: a string body is sent as its text, any other
/// JSON value as compact JSON.
fn override_answer(answer: AnswerBody) -> Result<StoredAnswer, ApiError> {
    let status = answer.status.unwrap_or(200);
    if !(200..=599).contains(&status) {
        return Err(ApiError::Query(format!(
            "answer.status {status} is not an HTTP status"
        )));
    }
    let (body, default_type) = match answer.body {
        Value::String(text) => (text.into_bytes(), "text/plain; charset=utf-8"),
        value => (value.to_string().into_bytes(), "application/json"),
    };
    let content_type = answer
        .content_type
        .unwrap_or_else(|| default_type.to_owned());
    if http::HeaderValue::from_str(&content_type).is_err() {
        return Err(ApiError::Query(
            "answer.content_type is not a valid header value".to_owned(),
        ));
    }
    Ok(StoredAnswer {
        status,
        headers: vec![
            ("content-type".to_owned(), content_type),
            ("content-length".to_owned(), body.len().to_string()),
        ],
        body,
    })
}

async fn decide(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(review_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = api.tokens.authenticate(&headers).await?;
    caller.require(&["reviewer"])?;
    let body: DecideBody = parse_body(&body)?;
    let verdict = match (body.verdict.as_str(), body.answer) {
        ("approve", None) => ReviewVerdict::Approve,
        ("reject", None) => ReviewVerdict::Reject,
        ("override", Some(answer)) => ReviewVerdict::Override(override_answer(answer)?),
        ("override", None) => {
            return Err(ApiError::Query(
                "override needs `answer`: {\"status\", \"content_type\", \"body\"}".to_owned(),
            ));
        }
        ("approve" | "reject", Some(_)) => {
            return Err(ApiError::Query("`answer` is only for override".to_owned()));
        }
        (other, _) => {
            return Err(ApiError::Query(format!(
                "verdict `{other}` is not approve, reject or override"
            )));
        }
    };
    let item = api
        .queue
        .decide(
            &review_id,
            Reviewer {
                principal: caller.principal,
                issuer: caller.issuer,
                subject: caller.subject,
            },
            verdict,
            body.reason,
        )
        .await
        .map_err(ApiError::Decide)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "review_id": item.review_id,
            "decision_id": item.decision_id,
            "status": item.state.as_str(),
            "entry_seq": item.closing.as_ref().and_then(|closing| closing.entry_seq),
        }),
    ))
}

fn files_json(hashes: &[(String, String)]) -> Value {
    hashes
        .iter()
        .map(|(file, sha256)| json!({ "file": file, "sha256": sha256 }))
        .collect()
}

async fn policies(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    api.tokens.authenticate(&headers).await?.require(READERS)?;
    let current = api.gate.current();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "dir": api.gate.dir().display().to_string(),
            "set_seq": current.set_seq,
            "files": files_json(&current.set.content_hashes()),
        }),
    ))
}

async fn reload(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    api.tokens
        .authenticate(&headers)
        .await?
        .require(&["admin"])?;
    let body = match api.gate.reload().await.map_err(ApiError::Reload)? {
        Reloaded::Loaded(loaded) => json!({
            "set_seq": loaded.set_seq,
            "files": files_json(&loaded.set.content_hashes()),
        }),
        // Under change control the folder is proposed; the set in force
        // is unchanged and is what the answer shows.
        Reloaded::Proposed(done) => {
            let current = api.gate.current();
            json!({
                "set_seq": current.set_seq,
                "files": files_json(&current.set.content_hashes()),
                "proposed": {
                    "proposal_seq": done.proposal_seq,
                    "changed": done.entry_seq.is_some(),
                    "entry_seq": done.entry_seq,
                },
            })
        }
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// A review without its bodies, as lists show it.
fn summary(item: &ReviewItem) -> Value {
    let age_ms = crate::review::now_unix_ms().saturating_sub(item.opened_unix_ms);
    json!({
        "review_id": item.review_id,
        "decision_id": item.decision_id,
        "decision_seq": item.decision_seq,
        "review_kind": item.kind.as_str(),
        "status": item.state.as_str(),
        "model": item.model,
        "version": item.version,
        "caller": item.caller,
        "stage": item.stage.as_str(),
        "reasons": item.reasons,
        "opened_at": rfc3339(item.opened_unix_ms),
        "age_seconds": age_ms / 1000,
        "deadline": item.deadline_unix_ms.map(rfc3339),
        "on_timeout": item.on_timeout.map(|outcome| outcome.as_str()),
    })
}

fn answer_json(answer: &StoredAnswer) -> Value {
    body_json(answer.content_type(), &answer.body, Some(answer.status))
}

/// A body for reading: parsed JSON, else UTF-8 text, else hex.
fn body_json(content_type: Option<&str>, bytes: &[u8], status: Option<u16>) -> Value {
    let (format, body) = if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        ("json", value)
    } else if let Ok(text) = std::str::from_utf8(bytes) {
        ("text", json!(text))
    } else {
        ("hex", json!(crate::ledger::entry::hex(bytes)))
    };
    let mut value = json!({
        "length": bytes.len(),
        "content_type": content_type,
        "body_format": format,
        "body": body,
    });
    if let Some(status) = status {
        value["status"] = json!(status);
    }
    value
}
