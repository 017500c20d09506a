//! The admin listener's router: `/metrics` and the admin health checks.
//! It never shares a port with proxy traffic. Every error it answers is
//! JSON (`errors.rs` rewrites axum's own plain-text answers).

use crate::metrics::Metrics;
pub mod auth;
pub mod console;
pub mod decisions;
pub mod erasure;
mod errors;
pub mod export;
pub mod kpi;
pub mod kpi_history;
pub mod kpi_report;
pub mod models;
pub mod overview;
mod people;
pub mod policy_sets;
pub mod reports;
pub mod reviews;
pub mod rotation;
pub mod verification;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};

pub use errors::{json_rejections, with_json_errors};

/// The admin router.
pub fn router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .with_state(metrics)
}

/// `GET /readyz`: 200 `{"status":"ok"}`, or 503 `{"status":"unavailable",
/// "reason"}` while `readiness` says decisions cannot be recorded.
pub fn readiness_route(readiness: crate::decision::Readiness) -> Router {
    Router::new().route(
        "/readyz",
        get(move || async move {
            match readiness() {
                Ok(()) => json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
                Err(reason) => json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({ "status": "unavailable", "reason": reason.to_string() }),
                ),
            }
        }),
    )
}

async fn render_metrics(State(metrics): State<Metrics>) -> Response {
    match metrics.render() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "metrics rendering failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "metrics unavailable",
                None,
            )
        }
    }
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The message of a change the fleet's control plane did not confirm
/// (503 `control_plane_unavailable`, registry and policy sets alike).
pub(crate) fn unconfirmed_change(err: &dyn std::fmt::Display) -> String {
    format!(
        "{err}; the change was not confirmed by the fleet: call again \
         (a repeated call never makes a change twice)"
    )
}

/// The admin API's error body, `{"error": {"code", "message", ...extra}}`.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    extra: Option<(&str, serde_json::Value)>,
) -> Response {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some((name, value)) = extra {
        error[name] = value;
    }
    json_response(status, &serde_json::json!({ "error": error }))
}

/// A request body that is not JSON, or not the expected fields.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Not JSON (400 `malformed_body`).
    Syntax(String),
    /// JSON with wrong or missing fields (422 `invalid_body`).
    Fields(String),
}

/// The body of a change that carries nothing but its reason (approve,
/// activate, roll back, ...).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// The body as `T`; an empty body reads as `{}`.
pub(crate) fn parse_body<T: for<'de> serde::Deserialize<'de>>(
    body: &bytes::Bytes,
) -> Result<T, BodyError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|err| {
        if err.is_data() {
            BodyError::Fields(err.to_string())
        } else {
            BodyError::Syntax(format!("the body is not JSON: {err}"))
        }
    })
}
