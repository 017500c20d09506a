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
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

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
    let checked = match (&state.jwt, super::jwt::bearer_jwt(request.headers())) {
        (Some(jwt), Some(token)) => Some(super::jwt::TokenChecked(jwt.verify_request(token).await)),
        _ => None,
    };
    let identified = super::callers::identify(
        &state.auth,
        &state.caller_header,
        request.headers(),
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip()),
        request
            .extensions()
            .get::<crate::listener::ClientCertificate>()
            .map(|certificate| certificate.0.as_ref()),
        state.jwt.as_ref().map(|auth| super::jwt::RequestToken {
            auth,
            checked: checked.as_ref(),
        }),
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs() as i64)
        },
    );
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
