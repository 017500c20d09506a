//! Human oversight on the request path: the policies judge each request
//! before it is forwarded and each answer before it is released.
//!
//! - deny: 403 `policy_denied` with the reasons (at the request stage the
//!   upstream is never called);
//! - hold: the answer is kept in the review queue; the client gets 202 with
//!   the decision id, the review id and a poll URL;
//! - flag: the answer is released and a post-hoc review is queued.
//!
//! The stronger of the two stages' actions applies. The decision records
//! both stages' verdicts and the policy set's seq.

use super::ProxyState;
use super::budget::{BodyBudget, BufferUse, Reservation};
use super::error::{ErrorShape, ProxyError};
use super::forward::{
    Forward, KpiCapture, buffer_reservation, decision_header, observe_kpi, read_whole,
    readable_kpi, refuse_forwarded, release_stream, release_whole, set_decision_headers,
};
use super::headers::REVIEW_ID_HEADER;
use super::recorder::{Draft, Ending, Forwarded};
use crate::decision::{Capture, Outcome, PolicyRecord};
use crate::review::{
    Action, Evaluation, InputDocument, LoadedPolicies, NewReview, PolicyGate, PolicyInput,
    QueueError, ReviewKind, ReviewQueue, Stage, StoredAnswer, StoredBody,
};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper::body::Incoming;
use serde_json::Value;
use std::sync::Arc;

/// The policy gate and the review queue, when the gateway runs with policies.
pub struct Oversight {
    /// The policies in force.
    pub gate: Arc<PolicyGate>,
    /// Where holds and flags go.
    pub queue: ReviewQueue,
    /// The largest answer that can be held.
    pub max_held_bytes: usize,
}

/// A request the request stage let through, and what the response stage needs.
pub(super) struct Judged {
    policies: Arc<LoadedPolicies>,
    /// Built once: the response stage reuses its converted request body.
    /// None when the policies have no rule for either stage.
    input: Option<InputDocument>,
    /// The body budget's bytes for `input`, given back when it goes.
    input_budget: Option<Reservation>,
    request: Evaluation,
    request_body: Bytes,
    request_type: Option<String>,
    version: String,
}

/// The body parsed as JSON, or null when it is not JSON.
fn parse_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Bodies above this many bytes are parsed and judged on a blocking
/// thread: a parse, its conversion and an evaluation over a large body take
/// milliseconds an async worker must not be held for (at or below it the
/// hand-over would cost more than the work).
const INLINE_JUDGING_BYTES: usize = 64 * 1024;

/// What the request stage reads, owned, so that it can be judged on a
/// blocking thread.
struct RequestFacts {
    model: String,
    version: String,
    risk_class: &'static str,
    caller: String,
    decision_id: String,
    claims: Option<Arc<serde_json::Map<String, Value>>>,
    /// What the policies read (a gRPC call's REST form).
    readable: Bytes,
    /// The body as forwarded.
    body: Bytes,
    request_type: Option<String>,
}

impl RequestFacts {
    fn of(draft: &Draft, forward: &Forward) -> Self {
        Self {
            model: draft.model.clone().unwrap_or_default(),
            version: forward.version.version.clone(),
            risk_class: forward.version.risk_class,
            caller: draft.caller.clone(),
            decision_id: draft.id.to_string(),
            claims: draft.claims.clone(),
            readable: forward.readable_body().clone(),
            body: forward.body.clone(),
            request_type: content_type(&forward.headers),
        }
    }
}

impl Oversight {
    /// The request stage, judged by `policies` (the set in force when the
    /// request began, from `PolicyGate::for_request`): records its verdict
    /// in the draft; a denial is the error. A large body is judged on a
    /// blocking thread.
    pub(super) async fn judge_request(
        &self,
        draft: &mut Draft,
        forward: &Forward,
        policies: Arc<LoadedPolicies>,
        budget: &Arc<BodyBudget>,
    ) -> Result<Judged, ProxyError> {
        let facts = RequestFacts::of(draft, forward);
        let (record, judged) = if facts.readable.len() > INLINE_JUDGING_BYTES {
            let (gate, budget) = (self.gate.clone(), budget.clone());
            tokio::task::spawn_blocking(move || judge_request(&gate, facts, policies, &budget))
                .await
                .map_err(|err| ProxyError::Internal(format!("the request stage failed: {err}")))?
        } else {
            judge_request(&self.gate, facts, policies, budget)
        };
        if record.is_some() {
            draft.policy = record;
        }
        judged
    }
}

/// The request stage: the verdict's record for the draft (none when the
/// document could not be kept), and what the response stage needs or the
/// refusal. The document the policies read is held until the answer is
/// judged, so its memory is reserved from `budget` (503 `overloaded` when
/// it is spent, like a request body).
fn judge_request(
    gate: &PolicyGate,
    facts: RequestFacts,
    policies: Arc<LoadedPolicies>,
    budget: &Arc<BodyBudget>,
) -> (Option<PolicyRecord>, Result<Judged, ProxyError>) {
    let judges = |stage| policies.set.judges(stage);
    // No document when neither stage has a rule: nothing reads it.
    let input = (judges(Stage::Request) || judges(Stage::Response)).then(|| {
        let input = PolicyInput::request(
            facts.model.clone(),
            facts.version.clone(),
            facts.risk_class,
            facts.caller,
            facts.decision_id,
            parse_json(&facts.readable),
        );
        InputDocument::new(match &facts.claims {
            Some(claims) => input.with_claims(claims.as_ref().clone()),
            None => input,
        })
    });
    let input_budget = match &input {
        Some(document) => match budget.reserve(document.held_bytes(), BufferUse::Policy) {
            Some(reservation) => Some(reservation),
            None => {
                let err = ProxyError::Overloaded {
                    what: "policy input",
                };
                return (None, Err(err));
            }
        },
        None => None,
    };
    let request = match &input {
        Some(document) if judges(Stage::Request) => gate.evaluate(&policies, document),
        _ => gate.unjudged(&facts.model, Stage::Request),
    };
    let record = PolicyRecord {
        set_seq: policies.set_seq,
        request: request.record.clone(),
        response: None,
    };
    if request.action == Action::Deny {
        let err = ProxyError::PolicyDenied {
            reasons: request.reasons,
        };
        return (Some(record), Err(err));
    }
    let judged = Judged {
        policies,
        input,
        input_budget,
        request,
        request_body: facts.body,
        request_type: facts.request_type,
        version: facts.version,
    };
    (Some(record), Ok(judged))
}

/// The response stage, then the answer the stronger verdict calls for.
/// A streamed answer (an event stream, or longer than the buffering limit)
/// is judged on its status alone (`input.response` is null); it is read
/// whole only if it must be held.
pub(super) async fn answer(
    state: &ProxyState,
    mut forwarded: Forwarded,
    judged: Judged,
    parts: http::response::Parts,
    body: Incoming,
    kpi: Option<KpiCapture>,
) -> Response {
    // INVARIANT: `judged` exists only when oversight is configured.
    let Some(oversight) = state.oversight.as_ref() else {
        let err = ProxyError::Internal("no oversight".into());
        return refuse_forwarded(state, forwarded.take(), err).await;
    };
    let model = forwarded.draft().model.clone().unwrap_or_default();
    let idle = state.timeouts.idle;
    let (mut whole, mut stream) = (None, None);
    if let Some(reservation) = buffer_reservation(state, &parts.headers) {
        match read_whole(body, idle, &model, usize::MAX, reservation).await {
            Ok(bytes) => whole = Some(bytes),
            Err(err) => return refuse_forwarded(state, forwarded.take(), err).await,
        }
        forwarded.draft().mark_upstream_done();
    } else {
        stream = Some(body);
    }
    let status = parts.status.as_u16();
    // A stage without rules is not evaluated and its answer not parsed.
    let judges_response = judged.policies.set.judges(Stage::Response);
    let response = match judged.input.filter(|_| judges_response) {
        Some(document) => {
            let (gate, policies, seen) = (
                oversight.gate.clone(),
                judged.policies.clone(),
                whole.clone(),
            );
            let judge = move || {
                let seen = seen.as_deref().map_or(Value::Null, parse_json);
                gate.evaluate(&policies, &document.into_response(status, seen))
            };
            // A large answer is parsed and judged on a blocking thread.
            if whole
                .as_ref()
                .is_some_and(|bytes| bytes.len() > INLINE_JUDGING_BYTES)
            {
                match tokio::task::spawn_blocking(judge).await {
                    Ok(evaluation) => evaluation,
                    Err(err) => {
                        let err = ProxyError::Internal(format!("the response stage failed: {err}"));
                        return refuse_forwarded(state, forwarded.take(), err).await;
                    }
                }
            } else {
                judge()
            }
        }
        None => oversight.gate.unjudged(&model, Stage::Response),
    };
    // The request's document is gone: its share of the budget too.
    drop(judged.input_budget);
    let draft = forwarded.draft();
    let shape = ErrorShape::of(draft.route);
    if let Some(policy) = &mut draft.policy {
        policy.response = Some(response.record.clone());
    }
    // The stronger action wins; on a tie the response stage, which saw more, gives the reasons.
    let (action, stage, reasons) = if response.action >= judged.request.action {
        (response.action, Stage::Response, response.reasons)
    } else {
        (
            judged.request.action,
            Stage::Request,
            judged.request.reasons.clone(),
        )
    };
    let (decision_id, caller) = (draft.id.to_string(), draft.caller.clone());
    let caller_token = crate::review::TokenIdentity::of(&draft.auth);
    let review = |answer: StoredAnswer, kind: ReviewKind| NewReview {
        decision_id: decision_id.clone(),
        kind,
        model: model.clone(),
        version: judged.version.clone(),
        caller: caller.clone(),
        caller_token: caller_token.clone(),
        stage,
        reasons: reasons.clone(),
        set_seq: judged.policies.set_seq,
        request: StoredBody {
            content_type: judged.request_type.clone(),
            bytes: judged.request_body.to_vec(),
        },
        answer,
    };
    match action {
        Action::Deny => {
            let err = ProxyError::PolicyDenied { reasons };
            refuse_forwarded(state, forwarded.take(), err).await
        }
        Action::Hold => {
            let bytes = match (whole, stream) {
                (Some(bytes), _) => bytes,
                (None, Some(body)) => {
                    let limit = oversight.max_held_bytes;
                    let Some(reservation) = state.budget.reserve(0, BufferUse::Hold) else {
                        let err = ProxyError::Overloaded {
                            what: "answer to hold",
                        };
                        return refuse_forwarded(state, forwarded.take(), err).await;
                    };
                    let bytes = match read_whole(body, idle, &model, limit, reservation).await {
                        Ok(bytes) => bytes,
                        Err(err) => return refuse_forwarded(state, forwarded.take(), err).await,
                    };
                    forwarded.draft().mark_upstream_done();
                    bytes
                }
                // INVARIANT: the body is either read or still streaming.
                (None, None) => Bytes::new(),
            };
            if bytes.len() > oversight.max_held_bytes {
                let err = ProxyError::HeldAnswerTooLarge {
                    model,
                    limit: oversight.max_held_bytes,
                };
                return refuse_forwarded(state, forwarded.take(), err).await;
            }
            let new = review(stored_answer(&parts, &bytes), ReviewKind::Hold);
            let kpi = readable_kpi(state, kpi, &parts);
            // Storing the answer, recording the decision and opening the
            // review run to the end even if the client leaves meanwhile:
            // a held decision without its review would be invisible.
            let (task_state, draft) = (state.clone(), forwarded.take());
            let held = state.recorder.backlog().spawn(async move {
                let queue = match &task_state.oversight {
                    Some(oversight) => oversight.queue.clone(),
                    None => unreachable!("oversight is configured (checked above)"),
                };
                hold(&task_state, &queue, draft, new, bytes, kpi).await
            });
            match held.await {
                Ok(response) => response,
                Err(err) => {
                    tracing::error!(error = %err, "hold task failed");
                    ProxyError::Internal("hold task failed".into()).response_as(shape)
                }
            }
        }
        Action::Flag | Action::Allow => {
            let flag = (action == Action::Flag)
                .then(|| review(stored_answer(&parts, &[]), ReviewKind::Flag));
            match (whole, stream) {
                (Some(bytes), _) => {
                    let answer = flag.map(|new| NewReview {
                        answer: StoredAnswer {
                            body: bytes.to_vec(),
                            ..new.answer.clone()
                        },
                        ..new
                    });
                    let draft = forwarded.take();
                    let id = draft.id;
                    let kpi = readable_kpi(state, kpi, &parts);
                    let (response, ack) = release_whole(state, draft, parts, bytes.clone()).await;
                    if let Some(ack) = ack {
                        if let Some(new) = answer {
                            // Shutdown waits for it, as for the records.
                            drop(
                                state
                                    .recorder
                                    .backlog()
                                    .spawn(oversight.queue.flag(new, ack.seq)),
                            );
                        }
                        observe_kpi(state, kpi, id, bytes);
                    }
                    response
                }
                (None, Some(body)) => {
                    let hook = flag.map(|new| {
                        let queue = oversight.queue.clone();
                        let backlog = state.recorder.backlog().clone();
                        Box::new(move |seq: u64, captured: Bytes| {
                            let mut new = new;
                            new.answer.body = captured.to_vec();
                            drop(backlog.spawn(queue.flag(new, Some(seq))));
                        }) as super::stream::OnRecorded
                    });
                    release_stream(state, forwarded, parts, body, hook, kpi).await
                }
                (None, None) => {
                    let err = ProxyError::Internal("no body".into());
                    refuse_forwarded(state, forwarded.take(), err).await
                }
            }
        }
    }
}

fn stored_answer(parts: &http::response::Parts, body: &[u8]) -> StoredAnswer {
    StoredAnswer {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    }
}

/// Keeps the answer for review and tells the client where to poll. The
/// held answer is on disk before the decision is recorded, and the
/// review is in the ledger before the client hears of it.
async fn hold(
    state: &ProxyState,
    queue: &ReviewQueue,
    draft: Draft,
    new: NewReview,
    bytes: Bytes,
    kpi: Option<KpiCapture>,
) -> Response {
    let reasons = new.reasons.clone();
    let prepared = match queue.prepare_hold(new).await {
        Ok(prepared) => prepared,
        Err(QueueError::Full(full)) => {
            return refuse_forwarded(state, draft, ProxyError::ReviewQueueFull(full)).await;
        }
        Err(err) => {
            return refuse_forwarded(state, draft, ProxyError::HoldFailed(err.to_string())).await;
        }
    };
    let review_id = prepared.review_id().to_owned();
    let decision_id = decision_header(&draft);
    let shape = ErrorShape::of(draft.route);
    let draft_id = draft.id;
    let id = draft_id.to_string();
    // A held response exists upstream: its id resolves once released (an
    // upstream's error answer carries none).
    let created = super::forward::created_response(&draft, StatusCode::OK);
    let kpi_answer = bytes.clone();
    let ending = Ending {
        outcome: Outcome::Held,
        status: StatusCode::ACCEPTED.as_u16(),
        error_code: None,
        // The decision commits to the answer that is held.
        response: Capture::of_complete(&bytes, state.limits.capture_bytes),
    };
    let mut response = match state.recorder.record_forwarded(draft, ending).await {
        Err(err) => {
            queue.abandon(prepared).await;
            err.response_as(shape)
        }
        Ok(ack) => match queue.open(prepared, ack.seq).await {
            Ok(_) => {
                super::forward::learn_answer(state, created, &kpi_answer);
                observe_kpi(state, kpi, draft_id, kpi_answer);
                pending_response(&id, &review_id, &reasons)
            }
            Err(err) => {
                let err = ProxyError::HoldFailed(err.to_string());
                err.log(&id);
                err.response_as(shape)
            }
        },
    };
    set_decision_headers(&mut response, decision_id);
    response
}

/// The poll URL of a held decision.
pub(super) fn poll_path(decision_id: &str) -> String {
    format!("/govgate/decisions/{decision_id}")
}

/// 202: the answer is held; where to poll for it.
pub(super) fn pending_response(decision_id: &str, review_id: &str, reasons: &[String]) -> Response {
    let poll = poll_path(decision_id);
    let body = serde_json::json!({
        "decision_id": decision_id,
        "review_id": review_id,
        "status": "pending",
        "poll": poll,
        "reasons": reasons,
    });
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&poll) {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(review) = HeaderValue::from_str(review_id) {
        headers.insert(REVIEW_ID_HEADER, review);
    }
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}
