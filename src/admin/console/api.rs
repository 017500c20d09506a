//! The console's calls of the admin API: in process, through the same
//! router as any client's, with the signed-in person's credential. Roles,
//! four-eyes rules and error codes are the API's own.

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

/// Answers larger than this are not read (a review's bodies are bounded
/// well below it).
const MAX_ANSWER: usize = 16 << 20;

/// An admin API answer.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    /// The body as JSON (`Null` when it is not JSON).
    pub(crate) json: Value,
    /// The body as text.
    pub(crate) text: String,
}

impl Answer {
    /// The API's error message (`error.message`), or the status.
    pub(crate) fn problem(&self) -> String {
        match self.json["error"]["message"].as_str() {
            Some(message) => format!(
                "{} ({})",
                message,
                self.json["error"]["code"].as_str().unwrap_or("error")
            ),
            None => format!("the admin API answered {}", self.status),
        }
    }
}

/// `method path` with `body` (JSON), as the holder of `credential`.
pub(crate) async fn call(
    api: &Router,
    credential: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {credential}"));
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
    let request = match request.body(body) {
        Ok(request) => request,
        Err(err) => return failed(format!("a console request: {err}")),
    };
    let response = match api.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    match axum::body::to_bytes(response.into_body(), MAX_ANSWER).await {
        Ok(bytes) => Answer {
            status,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        },
        Err(err) => failed(format!("reading the admin API's answer: {err}")),
    }
}

/// `GET path` as the holder of `credential`, the answer passed on as it
/// comes (a download: streamed, never held whole), saved by the browser as
/// `file` rather than shown.
pub(crate) async fn download(
    api: &Router,
    credential: &str,
    path: &str,
    file: &str,
) -> axum::response::Response {
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {credential}"))
        .body(Body::empty());
    let mut response = match request {
        Ok(request) => match api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    if response.status().is_success()
        && let Ok(value) = http::HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

fn failed(message: String) -> Answer {
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        json: serde_json::json!({ "error": { "code": "internal_error", "message": message } }),
        text: String::new(),
    }
}
