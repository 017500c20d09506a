//! `POST /govgate/feedback` on the public listener: ground-truth labels
//! for the rows of earlier decisions, joined to their predicted outcomes
//! by the aggregator and recorded in the ledger (`feedback_received`).
//!
//! Body: one label `{"decision_id", "row", "label"}` or a batch
//! `{"feedback": [...]}`; `row` is the row's index within its request (0
//! for a single-row request), `label` `true` for an actual positive.
//! Answer 200 `{"results": [{"decision_id", "row", "result"}]}` with
//! `applied`, `already_labeled`, `unknown_decision` or `unknown_row`; a
//! single label for an unknown decision answers 404 `decision_not_found`.
//! Decisions are kept for labels for the last two windows of rows. On a
//! replica of a fleet, a label for a decision another replica served is
//! joined through the fleet's windows and shared with the fleet
//! (docs/kpis.md "Fleet KPIs").
//!
//! The sender is established as a model request's caller is (the public
//! listener's `[auth]`, proxy/senders.rs) and named in the entry
//! (`caller`, `auth`), so labels that move the fairness figures are as
//! accountable as the decisions they label.

use super::aggregator::{Feedback, FeedbackResult, KpiRecorder};
use crate::decision::{DecisionId, Sender};
use crate::ledger::entry::EntryBody;
use crate::ledger::sequencer::Ledger;
use axum::Router;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

/// Labels accepted in one call.
const MAX_BATCH: usize = 10_000;

#[derive(Clone)]
struct Api {
    recorder: KpiRecorder,
    ledger: Ledger,
}

/// The feedback route, for the public listener.
pub fn routes(recorder: KpiRecorder, ledger: Ledger) -> Router {
    Router::new()
        .route("/govgate/feedback", post(feedback))
        .with_state(Api { recorder, ledger })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    decision_id: String,
    row: usize,
    label: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Body {
    Batch { feedback: Vec<Item> },
    One(Item),
}

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    answer(status, json!({"error": {"code": code, "message": message}}))
}

async fn feedback(
    State(api): State<Api>,
    sender: Option<Extension<Sender>>,
    body: Bytes,
) -> Response {
    let (items, single) = match serde_json::from_slice::<Body>(&body) {
        Ok(Body::Batch { feedback }) => (feedback, false),
        Ok(Body::One(item)) => (vec![item], true),
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                &format!(
                    "expected {{\"decision_id\", \"row\", \"label\"}} or {{\"feedback\": [...]}}: {err}"
                ),
            );
        }
    };
    if items.len() > MAX_BATCH {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &format!("at most {MAX_BATCH} labels per call"),
        );
    }
    let mut labels = Vec::with_capacity(items.len());
    for item in items {
        let Some(id) = DecisionId::parse(&item.decision_id) else {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "decision_id must be 32 hex digits",
            );
        };
        labels.push(Feedback {
            decision_id: id.to_string(),
            row: item.row,
            label: item.label,
        });
    }
    let results = api.recorder.feedback(labels.clone()).await;
    if single
        && results
            .first()
            .is_some_and(|(_, r)| *r == FeedbackResult::UnknownDecision)
    {
        return error(
            StatusCode::NOT_FOUND,
            "decision_not_found",
            "no recent decision of a model with KPIs has this id",
        );
    }
    let recorded: Vec<Value> = labels
        .iter()
        .zip(&results)
        .filter(|(_, (model, _))| model.is_some())
        .map(|(label, (model, result))| {
            json!({"decision_id": label.decision_id, "row": label.row, "label": label.label,
                   "model": model, "result": result.as_str()})
        })
        .collect();
    if !recorded.is_empty() {
        let mut members = serde_json::Map::new();
        members.insert("labels".to_owned(), Value::Array(recorded));
        if let Some(Extension(sender)) = &sender {
            members.insert("caller".to_owned(), json!(sender.caller));
            members.insert("auth".to_owned(), sender.auth.to_json());
        }
        let entry = EntryBody::Governance {
            kind: "feedback_received",
            members,
        };
        if let Err(err) = api.ledger.append(entry).await {
            tracing::error!(error = %err, "feedback applied but not recorded in the ledger");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                "the ledger could not record the feedback",
            );
        }
    }
    let results: Vec<Value> = labels
        .iter()
        .zip(results)
        .map(|(label, (_, result))| json!({"decision_id": label.decision_id, "row": label.row, "result": result.as_str()}))
        .collect();
    answer(StatusCode::OK, json!({ "results": results }))
}
