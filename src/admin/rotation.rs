//! `POST /admin/ledger/rotate-key` (role admin): the running gateway
//! switches its ledger to a new signing key between two batches. The work
//! (a new key, the `key_rotated` entry, the key file, its history record)
//! is the wiring's ([`Rotate`]); this file checks the caller and answers.

use super::auth::Tokens;
use super::{error_response, json_response};
use crate::ledger::entry::ActedBy;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Why a rotation did not happen (or did not complete).
#[derive(Debug)]
pub struct RotationFailure {
    /// The answer's status.
    pub status: StatusCode,
    /// The machine-readable code.
    pub code: &'static str,
    /// What happened, for the operator.
    pub message: String,
}

/// Rotates the key on behalf of the principal given (recorded in the
/// `key_rotated` entry); the JSON answer (seq, old and new verifier keys).
pub type Rotate = Arc<
    dyn Fn(
            ActedBy,
        )
            -> Pin<Box<dyn Future<Output = Result<serde_json::Value, RotationFailure>> + Send>>
        + Send
        + Sync,
>;

#[derive(Clone)]
struct Api {
    tokens: Tokens,
    rotate: Rotate,
}

/// The key rotation route, on the admin listener.
pub fn routes(tokens: Tokens, rotate: Rotate) -> Router {
    Router::new()
        .route("/admin/ledger/rotate-key", post(rotate_key))
        .with_state(Api { tokens, rotate })
}

async fn rotate_key(State(api): State<Api>, headers: HeaderMap) -> Response {
    let caller = match api.tokens.authenticate(&headers).await {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    if let Err(err) = caller.require(&["admin"]) {
        return err.into_response();
    }
    match (api.rotate)(caller.acted_by()).await {
        Ok(answer) => json_response(StatusCode::OK, &answer),
        Err(failure) => error_response(failure.status, failure.code, &failure.message, None),
    }
}
