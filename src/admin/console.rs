//! The governance console (docs/console.md): web pages on the admin
//! listener under `/console/` for the people who govern. Every page and
//! every change is an admin API call made in process as the signed-in
//! person ([`api`]), so roles, four-eyes rules and errors are the API's
//! own and every change is recorded under that person's name. Sessions
//! are cookies (`HttpOnly`, `SameSite=Strict`, `Secure` with TLS); every
//! change carries the session's CSRF token and must come from the
//! console's own origin. Assets are embedded; the content rules allow no
//! inline script or style and no framing.

mod access;
mod api;
mod ledger_pages;
mod model_pages;
mod oidc;
mod overview;
mod pages;
mod review_pages;
mod session;

use crate::admin::auth::Tokens;
use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::{HeaderValue, Method, StatusCode, header};
use pages::Notice;
use serde::Deserialize;
use serde_json::Value;
use session::{Session, Sessions};
use std::sync::Arc;

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    /// The admin API, called in process.
    api: Router,
    /// The public listener's receipt routes (`/govgate/receipts/...`).
    receipts: Router,
    tokens: Tokens,
    sessions: Arc<Sessions>,
    /// The admin listener speaks TLS: cookies are `Secure`.
    secure: bool,
    /// Sign-in at the identity provider (`[admin.jwt.sign_in]`).
    provider: Option<Arc<oidc::Provider>>,
}

impl Console {
    /// The console over `api` (the admin router without the console) and
    /// `receipts` (the public receipt routes), signing people in with
    /// `tokens`.
    pub fn new(api: Router, receipts: Router, tokens: Tokens, secure: bool) -> Self {
        Self {
            api,
            receipts,
            tokens,
            sessions: Arc::new(Sessions::default()),
            secure,
            provider: None,
        }
    }

    /// The console, signing people in at the identity provider too.
    pub fn with_sign_in(mut self, sign_in: Option<crate::config::SignInConfig>) -> Self {
        self.provider = sign_in.map(|config| Arc::new(oidc::Provider::new(config)));
        self
    }
}

/// The console's routes, with its security headers on every answer.
pub fn routes(console: Console) -> Router {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(model_pages::overview))
        .route(
            "/console/sign-in",
            get(access::sign_in_page).post(access::sign_in),
        )
        .route(
            "/console/sign-in/provider",
            get(access::sign_in_at_provider),
        )
        .route("/console/sign-in/callback", get(access::sign_in_callback))
        .route("/console/sign-out", post(access::sign_out))
        .route("/console/models", get(model_pages::models))
        .route("/console/models/{model}", get(model_pages::model))
        .route(
            "/console/models/{model}/propose",
            post(model_pages::propose),
        )
        .route(
            "/console/models/{model}/rollback",
            post(model_pages::roll_back),
        )
        .route(
            "/console/models/{model}/versions/{version}",
            get(model_pages::version),
        )
        .route(
            "/console/models/{model}/versions/{version}/{action}",
            post(model_pages::change_version),
        )
        .route("/console/reviews", get(review_pages::reviews))
        .route("/console/reviews/state", get(review_pages::queue_state))
        .route("/console/reviews/{review_id}", get(review_pages::review))
        .route(
            "/console/reviews/{review_id}/decide",
            post(review_pages::decide),
        )
        .route("/console/kpis", get(ledger_pages::kpis))
        .route("/console/kpis/{model}", get(ledger_pages::kpi_model))
        .route("/console/evidence", get(ledger_pages::evidence))
        .route(
            "/console/evidence/reports",
            post(ledger_pages::start_report),
        )
        .route(
            "/console/evidence/reports/{id}",
            get(ledger_pages::report_job),
        )
        .route(
            "/console/evidence/reports/{id}/files/{name}",
            get(ledger_pages::report_file),
        )
        .route(
            "/console/evidence/reports/{id}/bundle",
            get(ledger_pages::report_bundle),
        )
        .route("/console/evidence/export", get(ledger_pages::export_bundle))
        .route("/console/decisions", get(ledger_pages::find_decision))
        .route(
            "/console/decisions/{decision_id}",
            get(ledger_pages::decision),
        )
        .route("/console/ledger/{seq}", get(ledger_pages::entry))
        .route("/console/assets/{name}", get(asset))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// No inline script or style, nothing from elsewhere, no framing, no
/// referrer to other sites (decision ids are in URLs; `no-referrer` would
/// also make browsers send `Origin: null` on the console's own forms).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn html(status: StatusCode, page: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

#[derive(Deserialize, Default)]
struct NoticeQuery {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    problem: Option<String>,
}

impl NoticeQuery {
    fn notice(&self) -> Option<Notice> {
        match (&self.done, &self.problem) {
            (_, Some(problem)) => Some(Notice::Problem(problem.clone())),
            (Some(done), None) => Some(Notice::Done(done.clone())),
            _ => None,
        }
    }
}

/// Back to `path` with what happened.
fn back(path: &str, notice: Notice) -> Response {
    let (name, text) = match &notice {
        Notice::Done(text) => ("done", text),
        Notice::Problem(text) => ("problem", text),
    };
    let query = serde_urlencoded::to_string([(name, text)]).unwrap_or_default();
    Redirect::to(&format!("{path}?{query}")).into_response()
}

/// An admin API GET as the session's person.
/// A change through the admin API (`POST path` with `body`) as the
/// session's person.
async fn change(console: &Console, session: &Session, path: &str, body: &Value) -> api::Answer {
    api::call(
        &console.api,
        &session.credential,
        Method::POST,
        path,
        Some(body),
    )
    .await
}

/// The body of a change that carries only its reason (none when empty).
fn reason_body(reason: &str) -> Value {
    match reason.trim() {
        "" => serde_json::json!({}),
        reason => serde_json::json!({ "reason": reason }),
    }
}

async fn read(console: &Console, session: &Session, path: &str) -> api::Answer {
    api::call(&console.api, &session.credential, Method::GET, path, None).await
}

fn api_problem(session: &Session, title: &str, answer: &api::Answer) -> Response {
    let status = if answer.status.is_client_error() || answer.status.is_server_error() {
        answer.status
    } else {
        StatusCode::BAD_GATEWAY
    };
    html(
        status,
        pages::page(
            title,
            Some(session),
            Some(&Notice::Problem(answer.problem())),
            "",
        ),
    )
}

/// The embedded assets.
async fn asset(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "console.css" => (
            include_str!("console/assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("console/assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
