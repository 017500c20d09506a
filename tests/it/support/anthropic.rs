//! A model server speaking the Anthropic Messages API for tests:
//! `POST /v1/messages` answers a message as JSON, or with `"stream": true`
//! as server-sent events spaced in time (the rest held until the test
//! releases it), or endless events for a client that leaves. Records
//! what it receives.

use super::sse;
use super::upstream::Seen;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The events a stream sends before it pauses.
pub const STREAM_HEAD: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-upstream\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n";

/// The events a stream sends once released, each its own write.
pub const STREAM_TAIL: [&str; 4] = [
    "event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo \\u00fc\"}}\n\n",
    "event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":4}}\n\n",
    "event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n",
];

/// Anthropic's own overload answer, sent with status 529 when a request
/// has `x-test-overloaded`.
pub const OVERLOADED: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;

/// The JSON answer to a non-streaming request whose last message's
/// content is the string `text` (odd spacing and escapes on purpose:
/// nothing may re-serialize it).
pub fn message_answer(text: &str) -> String {
    let text = serde_json::Value::String(text.to_owned());
    format!(
        "{{\"id\": \"msg_01\",\"type\":\"message\", \"role\":\"assistant\",\"model\":\"claude-upstream\",\
\"content\":[{{\"type\":\"text\",\"text\":{text}}}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\
\"usage\":{{\"input_tokens\":12,\"output_tokens\":3}} ,\"note\":\"gr\\u00fc\\u00df\"}}"
    )
}

#[derive(Default)]
pub struct AnthropicState {
    pub seen: Mutex<Vec<Seen>>,
    /// Lets a paused stream send the rest of its events.
    pub release: Notify,
    /// Set when an endless stream's body is dropped (its connection closed).
    pub stream_dropped: AtomicBool,
}

pub struct AnthropicUpstream {
    pub addr: SocketAddr,
    pub state: Arc<AnthropicState>,
    _task: tokio::task::JoinHandle<()>,
}

impl AnthropicUpstream {
    pub async fn start() -> AnthropicUpstream {
        let state = Arc::new(AnthropicState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        AnthropicUpstream {
            addr,
            state,
            _task: task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The only request received (panics otherwise).
    pub fn only_request(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "upstream saw {} requests", seen.len());
        seen.into_iter().next().unwrap()
    }
}

async fn handle(State(state): State<Arc<AnthropicState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    state.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers.clone(),
        body: body.clone(),
        version: parts.version,
    });
    if parts.uri.path() != "/v1/messages" {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"type":"error","error":{"type":"not_found_error","message":"Not found"}}"#,
        )
            .into_response();
    }
    if parts.headers.contains_key("x-test-overloaded") {
        return (
            StatusCode::from_u16(529).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            OVERLOADED,
        )
            .into_response();
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if request["stream"] == serde_json::json!(true) {
        if parts.headers.contains_key("x-test-endless") {
            return endless_stream(state);
        }
        return paused_stream(state);
    }
    let text = request["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|message| message["content"].as_str())
        .unwrap_or("")
        .to_owned();
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        message_answer(&text),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("request-id", HeaderValue::from_static("req_test_01"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("x-hop-only"));
    headers.insert("x-hop-only", HeaderValue::from_static("1"));
    // A careless upstream echoing the key it received.
    if let Some(key) = parts.headers.get("x-api-key") {
        headers.insert("x-api-key", key.clone());
    }
    response
}

/// [`STREAM_HEAD`] now (in two writes), [`STREAM_TAIL`] only once the
/// test releases it, 20 ms between its events.
fn paused_stream(state: Arc<AnthropicState>) -> Response {
    let split = STREAM_HEAD.find("event: ping").unwrap();
    let tail = STREAM_TAIL
        .iter()
        .map(|event| (*event).to_owned())
        .collect();
    sse::paused(state, STREAM_HEAD.to_owned(), split, tail)
}

/// A delta every 50 ms until the connection goes away.
fn endless_stream(state: Arc<AnthropicState>) -> Response {
    sse::endless(state, |n| {
        format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{n}\"}}}}\n\n"
        )
    })
}

impl sse::StreamControl for AnthropicState {
    fn release(&self) -> &Notify {
        &self.release
    }
    fn stream_dropped(&self) -> &AtomicBool {
        &self.stream_dropped
    }
}
