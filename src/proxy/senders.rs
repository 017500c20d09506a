//! Who sends to the gateway's own public routes (`POST /govgate/feedback`):
//! the same methods and refusals as for a model request (callers.rs), so a
//! gateway that requires API keys, tokens or client certificates does not
//! take ground-truth labels from anyone. The sender found is handed to the
//! route as a [`Sender`] extension; a refused one gets the proxy's 401 (or
//! 400 `caller_missing`), not recorded: nothing reached a model.

use super::ProxyState;
use super::error::ProxyError;
use crate::decision::{Capped, MAX_NAME_BYTES, Sender};
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

/// `routes` with every call's sender established first.
pub fn with_senders(routes: Router, state: &ProxyState) -> Router {
    routes.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        identify,
    ))
}

async fn identify(
    State(state): State<ProxyState>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    // As the proxy's guard does: the token is checked off the handler.
    if let (Some(jwt), Some(token)) = (&state.jwt, super::jwt::bearer_jwt(request.headers())) {
        let checked = super::jwt::TokenChecked(jwt.verify_request(token).await);
        request.extensions_mut().insert(checked);
    }
    let identified = super::ingress::identify(&state, request.headers(), request.extensions());
    if let Some(refusal) = identified.refusal {
        return ProxyError::CallerUnauthenticated(refusal).into_response();
    }
    let caller = Capped::new(
        identified.caller.as_deref().unwrap_or("anonymous"),
        MAX_NAME_BYTES,
    )
    .kept;
    if state.require_caller && caller == "anonymous" {
        return ProxyError::CallerMissing(state.caller_header.to_string()).into_response();
    }
    request.extensions_mut().insert(Sender {
        caller,
        auth: identified.auth,
    });
    next.run(request).await
}
