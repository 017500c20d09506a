//! Continuous verification on the admin API: `GET
//! /admin/ledger/verification` (the last rounds, the one running) and
//! `POST /admin/ledger/verify` (ask for a full round now; 202 with its
//! number, to follow on the GET). Both need the role auditor or admin.

use super::auth::{AuthError, Tokens};
use super::json_response;
use crate::ledger::monitor::Monitor;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use serde_json::json;

/// Who may read and start verifications.
const ROLES: &[&str] = &["auditor", "admin"];

#[derive(Clone)]
struct Api {
    tokens: Tokens,
    monitor: Monitor,
}

/// The verification routes, on the admin listener.
pub fn routes(tokens: Tokens, monitor: Monitor) -> Router {
    Router::new()
        .route("/admin/ledger/verification", get(show))
        .route("/admin/ledger/verify", post(start))
        .with_state(Api { tokens, monitor })
}

async fn allowed(api: &Api, headers: &HeaderMap) -> Result<(), AuthError> {
    api.tokens.authenticate(headers).await?.require(ROLES)
}

async fn show(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(refused) = allowed(&api, &headers).await {
        return refused.into_response();
    }
    match serde_json::to_value(api.monitor.status()) {
        Ok(status) => json_response(StatusCode::OK, &status),
        Err(err) => {
            tracing::error!(error = %err, "verification status not serialised");
            super::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the verification status could not be written",
                None,
            )
        }
    }
}

async fn start(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(refused) = allowed(&api, &headers).await {
        return refused.into_response();
    }
    let run = api.monitor.request_full();
    json_response(
        StatusCode::ACCEPTED,
        &json!({
            "run": run,
            "mode": "full",
            "status": "/admin/ledger/verification",
        }),
    )
}
