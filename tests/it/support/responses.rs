//! A model server speaking the OpenAI Responses API for tests:
//! `POST /v1/responses` creates a response (`resp_<name>_<n>`) answered
//! as JSON, or with `"stream": true` as server-sent events spaced in time
//! (the rest held until the test releases it), or endless events for a
//! client that leaves; `GET`/`DELETE /v1/responses/{id}`,
//! `POST /v1/responses/{id}/cancel` and `GET .../input_items` answer for
//! the responses it created, 404 for others. Records what it receives.

use super::sse;
use super::upstream::Seen;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The events a stream of response `id` sends before it pauses.
pub fn stream_head(id: &str) -> String {
    format!(
        "event: response.created\n\
data: {{\"type\":\"response.created\",\"sequence_number\":0,\"response\":{{\"id\":\"{id}\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-upstream\",\"output\":[]}}}}\n\n\
event: response.output_text.delta\n\
data: {{\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hel\"}}\n\n"
    )
}

/// The events a stream of response `id` sends once released, each its own write.
pub fn stream_tail(id: &str) -> [String; 3] {
    [
        "event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"lo \\u00fc\"}\n\n"
            .to_owned(),
        "event: response.output_text.done\n\
data: {\"type\":\"response.output_text.done\",\"sequence_number\":3,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"text\":\"Hello \\u00fc\"}\n\n"
            .to_owned(),
        format!(
            "event: response.completed\n\
data: {{\"type\":\"response.completed\",\"sequence_number\":4,\"response\":{{\"id\":\"{id}\",\"object\":\"response\",\"status\":\"completed\"}}}}\n\n"
        ),
    ]
}

/// The JSON answer creating response `id` whose output text is `text`
/// (odd spacing and escapes on purpose: nothing may re-serialize it).
pub fn response_answer(id: &str, text: &str) -> String {
    let text = serde_json::Value::String(text.to_owned());
    format!(
        "{{\"id\": \"{id}\",\"object\":\"response\", \"status\":\"completed\",\"model\":\"gpt-upstream\",\
\"output\":[{{\"type\":\"message\",\"id\":\"msg_1\",\"role\":\"assistant\",\"content\":[{{\"type\":\"output_text\",\"text\":{text},\"annotations\":[]}}]}}],\
\"usage\":{{\"input_tokens\":12,\"output_tokens\":3 }} ,\"note\":\"gr\\u00fc\\u00df\"}}"
    )
}

/// What this server answers to `GET /v1/responses/{id}`.
pub fn retrieved(server: &str, id: &str) -> String {
    format!(
        "{{\"id\":\"{id}\",\"object\":\"response\",\"status\":\"completed\",\"server\":\"{server}\"}}"
    )
}

pub struct ResponsesState {
    /// Names the ids this server creates and its answers.
    pub name: String,
    pub seen: Mutex<Vec<Seen>>,
    pub created: Mutex<Vec<String>>,
    next: AtomicU64,
    /// Lets a paused stream send the rest of its events.
    pub release: Notify,
    /// Set when an endless stream's body is dropped (its connection closed).
    pub stream_dropped: AtomicBool,
}

pub struct ResponsesUpstream {
    pub addr: SocketAddr,
    pub state: Arc<ResponsesState>,
    _task: tokio::task::JoinHandle<()>,
}

impl ResponsesUpstream {
    pub async fn start(name: &str) -> ResponsesUpstream {
        let state = Arc::new(ResponsesState {
            name: name.to_owned(),
            seen: Mutex::default(),
            created: Mutex::default(),
            next: AtomicU64::new(1),
            release: Notify::new(),
            stream_dropped: AtomicBool::new(false),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ResponsesUpstream {
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

    /// The last request received.
    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream received a request")
    }
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn handle(State(state): State<Arc<ResponsesState>>, request: Request) -> Response {
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
    let path = parts.uri.path();
    if path == "/v1/responses" && parts.method == Method::POST {
        let id = format!(
            "resp_{}_{}",
            state.name,
            state.next.fetch_add(1, Ordering::SeqCst)
        );
        state.created.lock().unwrap().push(id.clone());
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if request["stream"] == serde_json::json!(true) {
            if parts.headers.contains_key("x-test-endless") {
                return endless_stream(state);
            }
            return paused_stream(state, id);
        }
        let text = match &request["input"] {
            serde_json::Value::String(text) => text.clone(),
            items => items
                .as_array()
                .and_then(|items| items.last())
                .and_then(|item| item["content"].as_str())
                .unwrap_or("")
                .to_owned(),
        };
        let mut response = json(StatusCode::OK, response_answer(&id, &text));
        let headers = response.headers_mut();
        headers.insert("x-request-id", HeaderValue::from_static("req_test_01"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("x-hop-only"));
        headers.insert("x-hop-only", HeaderValue::from_static("1"));
        return response;
    }
    let rest = path.strip_prefix("/v1/responses/").unwrap_or_default();
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    if !state
        .created
        .lock()
        .unwrap()
        .iter()
        .any(|known| known == id)
    {
        return json(
            StatusCode::NOT_FOUND,
            format!(
                "{{\"error\":{{\"message\":\"No response found with id '{id}'.\",\"type\":\"invalid_request_error\"}}}}"
            ),
        );
    }
    let name = &state.name;
    match (&parts.method, action) {
        (&Method::GET, "") => json(StatusCode::OK, retrieved(name, id)),
        (&Method::DELETE, "") => json(
            StatusCode::OK,
            format!(
                "{{\"id\":\"{id}\",\"object\":\"response.deleted\",\"deleted\":true,\"server\":\"{name}\"}}"
            ),
        ),
        (&Method::POST, "cancel") => json(
            StatusCode::OK,
            format!(
                "{{\"id\":\"{id}\",\"object\":\"response\",\"status\":\"cancelled\",\"server\":\"{name}\"}}"
            ),
        ),
        (&Method::GET, "input_items") => json(
            StatusCode::OK,
            format!("{{\"object\":\"list\",\"data\":[],\"server\":\"{name}\"}}"),
        ),
        _ => json(StatusCode::NOT_FOUND, "{}".to_owned()),
    }
}

/// [`stream_head`] now (in two writes), [`stream_tail`] only once the
/// test releases it, 20 ms between its events.
fn paused_stream(state: Arc<ResponsesState>, id: String) -> Response {
    let head = stream_head(&id);
    let split = head.find("event: response.output_text.delta").unwrap();
    sse::paused(state, head, split, stream_tail(&id).to_vec())
}

/// A delta every 50 ms until the connection goes away.
fn endless_stream(state: Arc<ResponsesState>) -> Response {
    sse::endless(state, |n| {
        format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{n},\"delta\":\"{n}\"}}\n\n"
        )
    })
}

impl sse::StreamControl for ResponsesState {
    fn release(&self) -> &Notify {
        &self.release
    }
    fn stream_dropped(&self) -> &AtomicBool {
        &self.stream_dropped
    }
}
