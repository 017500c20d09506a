//! The sample chat model over two more wire formats: the OpenAI Responses
//! API (`POST /v1/responses`, and `GET /v1/responses/{id}` of a response
//! it made) and the Anthropic Messages API (`POST /v1/messages`). Both
//! answer as the chat model does, by echoing the last user message.

use super::{error, json_response};
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many responses the sample server keeps for `GET`; the oldest go first.
const KEPT_RESPONSES: usize = 1_000;

/// The responses made so far, newest last, at most [`KEPT_RESPONSES`].
#[derive(Clone, Default)]
pub(super) struct Responses {
    kept: Arc<Mutex<Kept>>,
}

#[derive(Default)]
struct Kept {
    made: u64,
    responses: VecDeque<Value>,
}

/// The echo every sample assistant answers with.
fn echo(last_user: &str) -> String {
    format!("Thanks for your message. You wrote: {last_user}")
}

/// The text of a message's `content`: a string, or the `text` of its
/// first text part (`input_text` for Responses, `text` for Anthropic).
fn text_of(content: &Value) -> &str {
    content.as_str().unwrap_or_else(|| {
        content
            .as_array()
            .and_then(|parts| parts.iter().find_map(|part| part["text"].as_str()))
            .unwrap_or("")
    })
}

/// The last user message's text among `messages`.
fn last_user(messages: &Value) -> &str {
    messages
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .map_or("", |message| text_of(&message["content"]))
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// `POST /v1/responses`: a completed response to `input` (a string or a
/// list of messages), kept for `GET /v1/responses/{id}`.
pub(super) async fn create_response(State(responses): State<Responses>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let asked = match &request["input"] {
        Value::String(text) => text.as_str(),
        messages => last_user(messages),
    };
    let answer = echo(asked);
    let Ok(mut kept) = responses.kept.lock() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sample server state lost",
        );
    };
    kept.made += 1;
    let response = json!({
        "id": format!("resp_demo_{:06}", kept.made),
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "model": request["model"],
        "output": [{
            "type": "message", "id": format!("msg_demo_{:06}", kept.made), "status": "completed",
            "role": "assistant",
            "content": [{ "type": "output_text", "text": answer, "annotations": [] }],
        }],
        "usage": { "input_tokens": words(asked), "output_tokens": words(&answer),
                   "total_tokens": words(asked) + words(&answer) },
    });
    if kept.responses.len() == KEPT_RESPONSES {
        kept.responses.pop_front();
    }
    kept.responses.push_back(response.clone());
    json_response(StatusCode::OK, &response)
}

/// `GET /v1/responses/{id}`: a response made before, or 404.
pub(super) async fn get_response(
    State(responses): State<Responses>,
    Path(id): Path<String>,
) -> Response {
    let found = responses.kept.lock().ok().and_then(|kept| {
        kept.responses
            .iter()
            .find(|response| response["id"] == id.as_str())
            .cloned()
    });
    match found {
        Some(response) => json_response(StatusCode::OK, &response),
        None => error(StatusCode::NOT_FOUND, "no such response"),
    }
}

/// `POST /v1/messages`: an Anthropic Messages answer.
pub(super) async fn messages(body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let asked = last_user(&request["messages"]);
    let answer = echo(asked);
    json_response(
        StatusCode::OK,
        &json!({
            "id": "msg_demo",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": [{ "type": "text", "text": answer }],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": { "input_tokens": words(asked), "output_tokens": words(&answer) },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_user_message_is_read_from_strings_and_parts() {
        let messages = json!([
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ]);
        assert_eq!(last_user(&messages), "second");
        assert_eq!(last_user(&json!([])), "");
        assert_eq!(text_of(&json!("plain")), "plain");
    }
}
