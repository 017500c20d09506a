//! Built-in sample model servers for `govgate demo` (and anyone who wants a
//! quick upstream): a credit-scoring model speaking KServe V2 with batched
//! rows (also over KServe V2 gRPC), a small OpenAI-compatible chat model
//! that can stream (SSE), the same assistant over the OpenAI Responses and
//! Anthropic Messages APIs; and the sample applications the demo sends for
//! its KPIs.
//!
//! They are real HTTP servers on loopback, nothing more: the gateway treats
//! them like any other upstream. [`DEMO_POLICIES`] are the review policies
//! the demo enforces in front of them.

mod applicants;
mod assistants;
mod grpc;
mod policies;

pub use applicants::{AGE_GROUP_ATTRIBUTE, Applicant, PER_BATCH, SEX_ATTRIBUTE, batch};
pub use grpc::{CREDIT_GRPC_MODEL, credit_request};
pub use policies::{DEMO_POLICIES, LENDING_CALLER, write_policies};

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpListener;

/// Name of the sample credit-scoring model.
pub const CREDIT_MODEL: &str = "credit-scoring";
/// Name of the sample chat model (OpenAI chat completions and Responses).
pub const CHAT_MODEL: &str = "support-chat";
/// Name of the sample assistant over the Anthropic Messages API.
pub const ASSISTANT_MODEL: &str = "support-assistant";
/// Feature columns of the credit model's `features` input tensor, in order.
pub const CREDIT_FEATURES: [&str; 3] = ["age_years", "credit_amount", "duration_months"];

/// The sample servers' router.
pub fn router() -> Router {
    Router::new()
        .route("/v2/models/{name}", get(credit_metadata))
        .route("/v2/models/{name}/infer", post(credit_infer))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/responses", post(assistants::create_response))
        .route("/v1/responses/{id}", get(assistants::get_response))
        .route("/v1/messages", post(assistants::messages))
        .route(
            "/inference.GRPCInferenceService/ModelInfer",
            post(grpc::model_infer),
        )
        .with_state(assistants::Responses::default())
}

/// Serves the sample models on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

async fn credit_metadata(Path(name): Path<String>) -> Response {
    if name != CREDIT_MODEL {
        return error(StatusCode::NOT_FOUND, "unknown model");
    }
    json_response(
        StatusCode::OK,
        &json!({
            "name": CREDIT_MODEL,
            "versions": ["1"],
            "platform": "govgate-demo",
            "inputs": [{ "name": "features", "datatype": "FP32", "shape": [-1, CREDIT_FEATURES.len()] }],
            "outputs": [{ "name": "score", "datatype": "FP32", "shape": [-1, 1] }],
        }),
    )
}

/// Scores each row of the `features` tensor (`[N, 3]`, row-major): the
/// probability of good credit from a fixed logistic model.
async fn credit_infer(Path(name): Path<String>, body: Bytes) -> Response {
    if name != CREDIT_MODEL {
        return error(StatusCode::NOT_FOUND, "unknown model");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let Some(input) = request["inputs"]
        .as_array()
        .and_then(|inputs| inputs.iter().find(|input| input["name"] == "features"))
    else {
        return error(StatusCode::BAD_REQUEST, "missing input tensor `features`");
    };
    let columns = CREDIT_FEATURES.len();
    let shape: Vec<u64> = input["shape"]
        .as_array()
        .map(|dims| dims.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let data: Vec<f64> = input["data"]
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let rows = match shape.as_slice() {
        [rows, cols] if *cols as usize == columns && data.len() == *rows as usize * columns => {
            *rows as usize
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "`features` must have shape [N, 3] and N*3 values",
            );
        }
    };
    let scores: Vec<f64> = data.chunks_exact(columns).map(credit_score).collect();
    json_response(
        StatusCode::OK,
        &json!({
            "model_name": CREDIT_MODEL,
            "model_version": "1",
            "id": request["id"],
            "outputs": [{ "name": "score", "datatype": "FP32", "shape": [rows, 1], "data": scores }],
        }),
    )
}

/// The sample model's score of one row (`age_years`, `credit_amount`,
/// `duration_months`): the probability of good credit, to 4 decimals.
pub fn credit_score(row: &[f64]) -> f64 {
    let (age, amount, duration) = (row[0], row[1], row[2]);
    let logit =
        0.8 + 0.03 * (age - 35.0) - 0.000_15 * (amount - 3_000.0) - 0.03 * (duration - 20.0);
    let score = 1.0 / (1.0 + (-logit).exp());
    (score * 10_000.0).round() / 10_000.0
}

/// A chat model that answers by echoing the last user message; with
/// `"stream": true` it sends one SSE event per word, 100 ms apart.
async fn chat(body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let model = request["model"].as_str().unwrap_or(CHAT_MODEL).to_owned();
    let last_user = request["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|message| message["content"].as_str())
        .unwrap_or("")
        .to_owned();
    let answer = format!("Thanks for your message. You wrote: {last_user}");
    if request["stream"] == json!(true) {
        return stream_chat(model, answer);
    }
    json_response(
        StatusCode::OK,
        &json!({
            "id": "chatcmpl-demo",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": answer }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": last_user.split_whitespace().count(), "completion_tokens": answer.split_whitespace().count() },
        }),
    )
}

fn stream_chat(model: String, answer: String) -> Response {
    let words: Vec<String> = answer.split_inclusive(' ').map(str::to_owned).collect();
    let mut events: Vec<String> = words
        .into_iter()
        .map(|word| {
            let chunk = json!({
                "id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [{ "index": 0, "delta": { "content": word }, "finish_reason": null }],
            });
            format!("data: {chunk}\n\n")
        })
        .collect();
    events.push("data: [DONE]\n\n".to_owned());
    let stream =
        futures_util::stream::unfold(events.into_iter().enumerate(), |mut events| async move {
            let (index, event) = events.next()?;
            if index > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(event)),
                events,
            ))
        });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_applicants_with_small_loans_score_higher() {
        let safe = credit_score(&[50.0, 1_000.0, 12.0]);
        let risky = credit_score(&[22.0, 15_000.0, 48.0]);
        assert!(safe > 0.8 && risky < 0.2, "safe {safe}, risky {risky}");
    }
}
