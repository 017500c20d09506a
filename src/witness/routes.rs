//! The witnessing routes on the admin listener:
//! `GET /ledger/checkpoint/cosigned` (the cosigned checkpoint, a signed
//! note with the witnesses' cosignature lines), `GET /ledger/witnesses`
//! (each witness's state) and `POST /ledger/witnesses/submit` (a round
//! now; role `admin`).

use super::Witnesses;
use crate::admin::auth::Tokens;
use crate::admin::{error_response, json_response};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};

#[derive(Clone)]
struct Api {
    witnesses: Witnesses,
    tokens: Tokens,
}

/// The routes, over a running [`Witnesses`].
pub fn routes(witnesses: Witnesses, tokens: Tokens) -> Router {
    Router::new()
        .route("/ledger/checkpoint/cosigned", get(cosigned))
        .route("/ledger/witnesses", get(status))
        .route("/ledger/witnesses/submit", post(submit))
        .with_state(Api { witnesses, tokens })
}

async fn cosigned(State(api): State<Api>) -> Response {
    match api.witnesses.cosigned() {
        Some(note) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            note,
        )
            .into_response(),
        None => error_response(
            StatusCode::NOT_FOUND,
            "not_cosigned",
            "no checkpoint has the cosignatures ledger.witness_threshold asks for yet",
            None,
        ),
    }
}

async fn status(State(api): State<Api>) -> Response {
    json_response(StatusCode::OK, &api.witnesses.status())
}

async fn submit(State(api): State<Api>, headers: HeaderMap) -> Response {
    let caller = match api.tokens.authenticate(&headers).await {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    if let Err(err) = caller.require(&["admin"]) {
        return err.into_response();
    }
    match api.witnesses.submit_now().await {
        Some(reports) => json_response(
            StatusCode::OK,
            &serde_json::json!({
                "witnesses": reports,
                "cosigned_size": api.witnesses.status()["cosigned_size"],
            }),
        ),
        None => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "witnessing_busy",
            "witnessing is stopping or has rounds waiting; try again",
            None,
        ),
    }
}
