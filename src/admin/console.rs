//! The governance console (docs/console.md): web pages on the admin
//! listener under `/console/` for the people who govern. Every page and
//! every change is an admin API call made in process as the signed-in
//! person ([`api`]), so roles, four-eyes rules and errors are the API's
//! own and every change is recorded under that person's name. Sessions
//! are cookies (`HttpOnly`, `SameSite=Strict`, `Secure` with TLS); every
//! change carries the session's CSRF token and must come from the
//! console's own origin. Assets are embedded; the content rules allow no
//! inline script or style and no framing.

mod api;
mod oidc;
mod pages;
mod session;

use crate::admin::auth::Tokens;
use crate::registry::{Action, roles_allow};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use pages::{Notice, Offer, seg};
use serde::Deserialize;
use serde_json::{Value, json};
use session::{COOKIE, Session, Sessions};
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
        .route("/console/", get(overview))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-in/provider", get(sign_in_at_provider))
        .route("/console/sign-in/callback", get(sign_in_callback))
        .route("/console/sign-out", post(sign_out))
        .route("/console/models", get(models))
        .route("/console/models/{model}", get(model))
        .route("/console/models/{model}/propose", post(propose))
        .route("/console/models/{model}/rollback", post(roll_back))
        .route("/console/models/{model}/versions/{version}", get(version))
        .route(
            "/console/models/{model}/versions/{version}/{action}",
            post(change_version),
        )
        .route("/console/reviews", get(reviews))
        .route("/console/reviews/state", get(queue_state))
        .route("/console/reviews/{review_id}", get(review))
        .route("/console/reviews/{review_id}/decide", post(decide))
        .route("/console/kpis", get(kpis))
        .route("/console/kpis/{model}", get(kpi_model))
        .route("/console/evidence", get(evidence))
        .route("/console/evidence/reports", post(start_report))
        .route("/console/evidence/reports/{id}", get(report_job))
        .route(
            "/console/evidence/reports/{id}/files/{name}",
            get(report_file),
        )
        .route("/console/evidence/reports/{id}/bundle", get(report_bundle))
        .route("/console/evidence/export", get(export_bundle))
        .route("/console/decisions", get(find_decision))
        .route("/console/decisions/{decision_id}", get(decision))
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

/// The session cookie's value in `headers`.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_owned())
        })
}

/// Why a page or change was not served.
enum Refusal {
    /// No live session: to the sign-in page.
    NotSignedIn,
    /// A change from elsewhere than a console page of this gateway.
    CrossSite,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotSignedIn => Redirect::to("/console/sign-in").into_response(),
            Refusal::CrossSite => forbidden_change(),
        }
    }
}

/// The signed-in session.
fn signed_in(console: &Console, headers: &HeaderMap) -> Result<Session, Refusal> {
    cookie(headers)
        .and_then(|cookie| console.sessions.find(&cookie))
        .ok_or(Refusal::NotSignedIn)
}

/// The person a page is for: without a live session, the page is the
/// sign-in page.
struct SignedIn(Session);

impl axum::extract::FromRequestParts<Console> for SignedIn {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        console: &Console,
    ) -> Result<Self, Self::Rejection> {
        signed_in(console, &parts.headers).map(SignedIn)
    }
}

/// A change is refused unless it comes from the console's own origin
/// (the `Origin` and `Sec-Fetch-Site` headers browsers send) and, once
/// signed in, carries the session's CSRF token.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().unwrap_or("");
    host.is_some_and(|host| {
        origin == format!("http://{host}") || origin == format!("https://{host}")
    })
}

fn forbidden_change() -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::page(
            "Refused",
            None,
            Some(&Notice::Problem(
                "This change did not come from a console page of this gateway (cross-site request refused)."
                    .to_owned(),
            )),
            "<p><a href=\"/console/\">Back to the console</a></p>",
        ),
    )
}

/// The session a change may act in: signed in, same origin, its token.
fn change_session(console: &Console, headers: &HeaderMap, csrf: &str) -> Result<Session, Refusal> {
    if !same_origin(headers) {
        return Err(Refusal::CrossSite);
    }
    let session = signed_in(console, headers)?;
    if !session.csrf_matches(csrf) {
        return Err(Refusal::CrossSite);
    }
    Ok(session)
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

async fn sign_in_page(State(console): State<Console>) -> Response {
    html(
        StatusCode::OK,
        pages::sign_in(None, console.provider.is_some()),
    )
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

/// The sign-in page again, saying why.
fn sign_in_refused(console: &Console, why: &str) -> Response {
    html(
        StatusCode::UNAUTHORIZED,
        pages::sign_in(Some(why), console.provider.is_some()),
    )
}

async fn sign_in(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden_change();
    }
    open_session(&console, form.token.trim().to_owned()).await
}

/// A session for the holder of `token`, if the admin API accepts it; then
/// to the overview.
async fn open_session(console: &Console, token: String) -> Response {
    open_session_then(console, token, Redirect::to("/console/").into_response()).await
}

/// [`open_session`] answering `then` with the session's cookie.
async fn open_session_then(console: &Console, token: String, then: Response) -> Response {
    let mut bearer = HeaderMap::new();
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return sign_in_refused(console, "That is not a token.");
    };
    bearer.insert(header::AUTHORIZATION, value);
    let caller = match console.tokens.authenticate(&bearer).await {
        Ok(caller) => caller,
        Err(err) => {
            tracing::info!(code = err.code(), "console sign-in refused");
            return sign_in_refused(console, "The admin API does not accept that token.");
        }
    };
    tracing::info!(principal = %caller.principal, "console sign-in");
    let cookie = console.sessions.open(token, caller);
    let secure = if console.secure { "; Secure" } else { "" };
    let set = format!(
        "{COOKIE}={cookie}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session::ABSOLUTE.as_secs()
    );
    let mut response = then;
    if let Ok(value) = HeaderValue::from_str(&set) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// To the identity provider's sign-in page.
async fn sign_in_at_provider(State(console): State<Console>) -> Response {
    match &console.provider {
        Some(provider) => Redirect::to(&provider.start()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize, Default)]
struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: Option<String>,
}

/// Back from the identity provider: the code exchanged for tokens, the
/// access token checked as the admin API checks it, then a session.
async fn sign_in_callback(
    State(console): State<Console>,
    Query(callback): Query<Callback>,
) -> Response {
    let Some(provider) = console.provider.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(error) = callback.error {
        let why = oidc::SignInError::Refused(error).to_string();
        return sign_in_refused(&console, &why);
    }
    match provider.finish(&callback.state, &callback.code).await {
        // The way here began at the provider's site: a browser does not
        // send a SameSite=Strict cookie on a redirect from there, so the
        // console's own page takes the next step.
        Ok(access_token) => {
            open_session_then(
                &console,
                access_token,
                html(StatusCode::OK, pages::signed_in()),
            )
            .await
        }
        Err(err) => {
            tracing::info!(error = %err, "console sign-in at the identity provider failed");
            sign_in_refused(&console, &err.to_string())
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(refused) = change_session(&console, &headers, &form.csrf) {
        return refused.into_response();
    }
    if let Some(cookie) = cookie(&headers) {
        console.sessions.close(&cookie);
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "govgate_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

/// An admin API GET as the session's person.
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

async fn overview(State(console): State<Console>, SignedIn(session): SignedIn) -> Response {
    let models = read(&console, &session, "/admin/models").await;
    if !models.status.is_success() {
        return api_problem(&session, "Overview", &models);
    }
    let reviews = read(&console, &session, "/admin/reviews?status=pending").await;
    let checkpoint = read(&console, &session, "/ledger/checkpoint").await;
    let verification = read(&console, &session, "/admin/ledger/verification").await;
    // Entries recorded in the last hour and day: the seq ranges the
    // decision search finds by binary search over the entries' times
    // (`limit=1`: only the newest block of each is read).
    let now = std::time::SystemTime::now();
    let mut recent = Vec::new();
    for (label, seconds) in [("hour", 3600), ("day", 86_400)] {
        let since =
            crate::ledger::entry::rfc3339_millis(now - std::time::Duration::from_secs(seconds));
        let query = serde_urlencoded::to_string([("from", since.as_str()), ("limit", "1")])
            .unwrap_or_default();
        let found = read(&console, &session, &format!("/admin/decisions?{query}")).await;
        let range = &found.json["range"];
        if let (Some(from), Some(to)) = (range["from_seq"].as_u64(), range["to_seq"].as_u64()) {
            recent.push((label, to - from));
        }
    }
    let body = pages::overview(
        &models.json,
        reviews.status.is_success().then_some(&reviews.json),
        checkpoint
            .status
            .is_success()
            .then_some(checkpoint.text.as_str()),
        verification
            .status
            .is_success()
            .then_some(&verification.json),
        &recent,
    );
    html(
        StatusCode::OK,
        pages::page("Overview", Some(&session), None, &body),
    )
}

async fn models(State(console): State<Console>, SignedIn(session): SignedIn) -> Response {
    let answer = read(&console, &session, "/admin/models").await;
    if !answer.status.is_success() {
        return api_problem(&session, "Models", &answer);
    }
    let body = pages::models(&answer.json);
    html(
        StatusCode::OK,
        pages::page("Models", Some(&session), None, &body),
    )
}

async fn model(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(name): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let answer = read(&console, &session, &format!("/admin/models/{}", seg(&name))).await;
    if !answer.status.is_success() {
        return api_problem(&session, &name, &answer);
    }
    let roles = &session.caller.roles;
    let may_roll_back = roles_allow(Action::RollBack, roles)
        && answer.json["activation_history"]
            .as_array()
            .is_some_and(|history| !history.is_empty());
    let body = pages::model(
        &name,
        &answer.json,
        &session,
        roles_allow(Action::Propose, roles),
        may_roll_back,
    );
    html(
        StatusCode::OK,
        pages::page(&name, Some(&session), query.notice().as_ref(), &body),
    )
}

#[derive(Deserialize)]
struct ProposeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    risk_class: String,
    #[serde(default)]
    change_ref: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    reason: String,
}

/// Proposes a version of `model` (the API's body, from the form).
async fn propose(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(model): Path<String>,
    Form(form): Form<ProposeForm>,
) -> Response {
    let session = match change_session(&console, &headers, &form.csrf) {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let page = format!("/console/models/{}", seg(&model));
    let mut body = json!({
        "version": form.version.trim(),
        "upstream": form.upstream.trim(),
        "risk_class": form.risk_class.trim(),
        "change_ref": form.change_ref.trim(),
    });
    for (name, value) in [("description", &form.description), ("reason", &form.reason)] {
        if !value.trim().is_empty() {
            body[name] = value.trim().into();
        }
    }
    let path = format!("/admin/models/{}/versions", seg(&model));
    let answer = api::call(
        &console.api,
        &session.credential,
        Method::POST,
        &path,
        Some(&body),
    )
    .await;
    outcome(&page, "propose", &answer)
}

/// Rolls `model` back to its previously active version.
async fn roll_back(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(model): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let session = match change_session(&console, &headers, &form.csrf) {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let page = format!("/console/models/{}", seg(&model));
    let reason = form.reason.trim();
    let body = if reason.is_empty() {
        json!({})
    } else {
        json!({ "reason": reason })
    };
    let path = format!("/admin/models/{}/rollback", seg(&model));
    let answer = api::call(
        &console.api,
        &session.credential,
        Method::POST,
        &path,
        Some(&body),
    )
    .await;
    outcome(&page, "roll back", &answer)
}

/// Back to `page` saying what the API did with the change `what`.
fn outcome(page: &str, what: &str, answer: &api::Answer) -> Response {
    if answer.status.is_success() {
        let seq = &answer.json["entry_seq"];
        let done = if seq.is_u64() {
            format!("{what}: recorded as ledger entry {seq}")
        } else {
            format!("{what}: nothing changed")
        };
        back(page, Notice::Done(done))
    } else {
        back(page, Notice::Problem(answer.problem()))
    }
}

/// The version changes a page may offer, each shown only to roles the
/// registry's role rules allow it (the API still decides).
const VERSION_ACTIONS: [(Action, &str, &str, bool); 5] = [
    (Action::Approve, "approve", "Approve", false),
    (Action::Reject, "reject", "Reject", true),
    (Action::Activate, "activate", "Activate", false),
    (Action::Retire, "retire", "Retire", false),
    (Action::Revoke, "revoke", "Revoke", true),
];

/// Which actions fit a version in `state`.
fn fits(action: Action, state: &str) -> bool {
    match action {
        Action::Approve | Action::Reject => state == "proposed",
        Action::Activate => state == "approved",
        Action::Retire => state == "approved" || state == "active",
        Action::Revoke => state != "revoked" && state != "rejected" && state != "retired",
        Action::Propose | Action::RollBack => false,
    }
}

async fn version(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path((model, label)): Path<(String, String)>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let path = format!("/admin/models/{}/versions/{}", seg(&model), seg(&label));
    let answer = read(&console, &session, &path).await;
    if !answer.status.is_success() {
        return api_problem(&session, &format!("{model} {label}"), &answer);
    }
    let state = answer.json["state"].as_str().unwrap_or("");
    let offers: Vec<Offer> = VERSION_ACTIONS
        .iter()
        .filter(|(action, ..)| fits(*action, state) && roles_allow(*action, &session.caller.roles))
        .map(|(_, action, label, reason_required)| Offer {
            action,
            label,
            reason_required: *reason_required,
        })
        .collect();
    let body = pages::version(&answer.json, &session, &offers);
    html(
        StatusCode::OK,
        pages::page(
            &format!("{model} version {label}"),
            Some(&session),
            query.notice().as_ref(),
            &body,
        ),
    )
}

#[derive(Deserialize)]
struct ReasonForm {
    // Missing reads as empty, refused as a wrong token (not 422).
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn change_version(
    State(console): State<Console>,
    headers: HeaderMap,
    Path((model, label, action)): Path<(String, String, String)>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let session = match change_session(&console, &headers, &form.csrf) {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let page = format!("/console/models/{}/versions/{}", seg(&model), seg(&label));
    if !VERSION_ACTIONS.iter().any(|(_, name, ..)| *name == action) {
        return back(&page, Notice::Problem(format!("no such change: {action}")));
    }
    let reason = form.reason.trim();
    let body = if reason.is_empty() {
        json!({})
    } else {
        json!({ "reason": reason })
    };
    let path = format!(
        "/admin/models/{}/versions/{}/{}",
        seg(&model),
        seg(&label),
        action
    );
    let answer = api::call(
        &console.api,
        &session.credential,
        Method::POST,
        &path,
        Some(&body),
    )
    .await;
    outcome(&page, &action, &answer)
}

#[derive(Deserialize, Default)]
struct QueueQuery {
    #[serde(default)]
    model: String,
    #[serde(default)]
    kind: String,
}

impl QueueQuery {
    fn api_path(&self) -> String {
        let mut pairs = vec![("status", "pending")];
        if !self.model.is_empty() {
            pairs.push(("model", &self.model));
        }
        if !self.kind.is_empty() {
            pairs.push(("kind", &self.kind));
        }
        format!(
            "/admin/reviews?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }
}

/// What changes when the queue changes: its review ids, in order.
fn fingerprint(items: &[Value]) -> String {
    let ids: Vec<&str> = items
        .iter()
        .filter_map(|item| item["review_id"].as_str())
        .collect();
    crate::ledger::entry::hex(&<sha2::Sha256 as sha2::Digest>::digest(ids.join(",")))[..16]
        .to_owned()
}

async fn reviews(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Query(query): Query<QueueQuery>,
) -> Response {
    let answer = read(&console, &session, &query.api_path()).await;
    if !answer.status.is_success() {
        return api_problem(&session, "Reviews", &answer);
    }
    let items = answer.json["reviews"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let body = pages::reviews(&items, &query.model, &query.kind, &fingerprint(&items));
    html(
        StatusCode::OK,
        pages::page("Reviews", Some(&session), None, &body),
    )
}

/// `{"fingerprint"}` of the pending queue: the queue page polls it and
/// reloads when it changes.
async fn queue_state(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(query): Query<QueueQuery>,
) -> Response {
    let Some(session) = cookie(&headers).and_then(|cookie| console.sessions.find(&cookie)) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let answer = read(&console, &session, &query.api_path()).await;
    let items = answer.json["reviews"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    crate::admin::json_response(
        answer.status,
        &json!({ "fingerprint": fingerprint(&items), "waiting": items.len() }),
    )
}

async fn review(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(review_id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let answer = read(
        &console,
        &session,
        &format!("/admin/reviews/{}", seg(&review_id)),
    )
    .await;
    if !answer.status.is_success() {
        return api_problem(&session, "Review", &answer);
    }
    let may_decide = session.caller.has_any(&["reviewer"]);
    let body = pages::review(&answer.json, &session, may_decide);
    html(
        StatusCode::OK,
        pages::page("Review", Some(&session), query.notice().as_ref(), &body),
    )
}

#[derive(Deserialize)]
struct VerdictForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    verdict: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    answer: String,
}

async fn decide(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(review_id): Path<String>,
    Form(form): Form<VerdictForm>,
) -> Response {
    let session = match change_session(&console, &headers, &form.csrf) {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let page = format!("/console/reviews/{}", seg(&review_id));
    let mut body = json!({ "verdict": form.verdict });
    if !form.reason.trim().is_empty() {
        body["reason"] = form.reason.trim().into();
    }
    if form.verdict == "override" {
        match serde_json::from_str::<Value>(&form.answer) {
            Ok(answer) => body["answer"] = json!({ "body": answer }),
            Err(err) => {
                return back(
                    &page,
                    Notice::Problem(format!("the answer to send is not JSON: {err}")),
                );
            }
        }
    }
    let path = format!("/admin/reviews/{}/decide", seg(&review_id));
    let answer = api::call(
        &console.api,
        &session.credential,
        Method::POST,
        &path,
        Some(&body),
    )
    .await;
    if answer.status.is_success() {
        back(&page, Notice::Done(format!("{}: recorded", form.verdict)))
    } else {
        back(&page, Notice::Problem(answer.problem()))
    }
}

async fn kpis(State(console): State<Console>, SignedIn(session): SignedIn) -> Response {
    let answer = read(&console, &session, "/admin/kpis").await;
    if !answer.status.is_success() {
        return api_problem(&session, "KPIs", &answer);
    }
    let body = pages::kpi_models(&answer.json);
    html(
        StatusCode::OK,
        pages::page("KPIs", Some(&session), None, &body),
    )
}

/// A model's fairness and drift: the charts of its snapshots since the
/// gateway started, drawn as the period report draws them, and the
/// current window's figures with their counts.
async fn kpi_model(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(model): Path<String>,
) -> Response {
    let current = read(&console, &session, &format!("/admin/kpis/{}", seg(&model))).await;
    if !current.status.is_success() {
        return api_problem(&session, &model, &current);
    }
    let history = read(
        &console,
        &session,
        &format!("/admin/kpis/{}/history", seg(&model)),
    )
    .await;
    let snapshots = history.json["snapshots"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Computing the series of up to 500 snapshots is CPU work: off the
    // async workers.
    let charts = tokio::task::spawn_blocking(move || {
        crate::report::html::trends_charts(&crate::report::trends_of(&snapshots))
    })
    .await
    .unwrap_or_default();
    let body = pages::kpi_model(&charts, &current.json);
    html(
        StatusCode::OK,
        pages::page(&format!("KPIs of {model}"), Some(&session), None, &body),
    )
}

#[derive(Deserialize, Default)]
struct FindQuery {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    caller: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: Option<u64>,
}

impl FindQuery {
    /// The search's members that are set, as query pairs.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs: Vec<(&'static str, String)> = [
            ("model", &self.model),
            ("version", &self.version),
            ("caller", &self.caller),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (name, value.trim().to_owned()))
        .collect();
        if let Some(before) = self.before {
            pairs.push(("before", before.to_string()));
        }
        pairs
    }
}

/// The look-up and search forms; with `?id=`, to that decision's page;
/// with search members, the newest matching decisions a page at a time.
async fn find_decision(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Query(query): Query<FindQuery>,
) -> Response {
    let id = query.id.trim();
    if !id.is_empty() {
        return Redirect::to(&format!("/console/decisions/{}", seg(id))).into_response();
    }
    let pairs = query.pairs();
    let mut body = pages::find_decision(&pairs);
    if !pairs.is_empty() {
        let path = format!(
            "/admin/decisions?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        );
        let answer = read(&console, &session, &path).await;
        if !answer.status.is_success() {
            return api_problem(&session, "Decisions", &answer);
        }
        let mut next = pairs.clone();
        next.retain(|(name, _)| *name != "before");
        let more = answer.json["more_before"].as_u64().map(|before| {
            next.push(("before", before.to_string()));
            format!(
                "/console/decisions?{}",
                serde_urlencoded::to_string(&next).unwrap_or_default()
            )
        });
        body.push_str(&pages::found_decisions(&answer.json, more.as_deref()));
    }
    html(
        StatusCode::OK,
        pages::page("Decisions", Some(&session), None, &body),
    )
}

/// A decision: its entry, what it cites, and its receipt with the check
/// the browser makes itself.
async fn decision(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(decision_id): Path<String>,
) -> Response {
    let id = seg(&decision_id);
    let entry = api::call(
        &console.receipts,
        &session.credential,
        Method::GET,
        &format!("/govgate/receipts/{id}/entry"),
        None,
    )
    .await;
    if !entry.status.is_success() {
        return api_problem(&session, "Decision", &entry);
    }
    let proof = api::call(
        &console.receipts,
        &session.credential,
        Method::GET,
        &format!("/govgate/receipts/{id}"),
        None,
    )
    .await;
    let key = read(&console, &session, "/ledger/key").await;
    let body = pages::decision(
        &decision_id,
        &entry.text,
        &entry.json,
        proof.status.is_success().then_some(proof.text.as_str()),
        key.text.trim(),
    );
    html(
        StatusCode::OK,
        pages::page("Decision", Some(&session), None, &body),
    )
}

/// Evidence: the period reports made on this gateway, forms to make one
/// and to export a bundle.
async fn evidence(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let jobs = read(&console, &session, "/admin/reports").await;
    let body = pages::evidence(
        &session,
        jobs.status.is_success().then_some(&jobs.json),
        (!jobs.status.is_success())
            .then(|| jobs.problem())
            .as_deref(),
    );
    html(
        StatusCode::OK,
        pages::page("Evidence", Some(&session), query.notice().as_ref(), &body),
    )
}

#[derive(Deserialize)]
struct PeriodForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// Starts a period report (`POST /admin/reports`) and goes to its job.
async fn start_report(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<PeriodForm>,
) -> Response {
    let session = match change_session(&console, &headers, &form.csrf) {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let body = json!({ "from": form.from.trim(), "to": form.to.trim() });
    let answer = api::call(
        &console.api,
        &session.credential,
        Method::POST,
        "/admin/reports",
        Some(&body),
    )
    .await;
    match answer.json["id"].as_u64() {
        Some(id) if answer.status.is_success() => {
            Redirect::to(&format!("/console/evidence/reports/{id}")).into_response()
        }
        _ => back("/console/evidence", Notice::Problem(answer.problem())),
    }
}

/// A report job: its progress (the page reloads itself while it runs)
/// and, once done, its files and bundle to download.
async fn report_job(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(id): Path<u64>,
) -> Response {
    let answer = read(&console, &session, &format!("/admin/reports/{id}")).await;
    if !answer.status.is_success() {
        return api_problem(&session, "Report", &answer);
    }
    let body = pages::report_job(&answer.json);
    html(
        StatusCode::OK,
        pages::page(&format!("Report {id}"), Some(&session), None, &body),
    )
}

async fn report_file(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path((id, name)): Path<(u64, String)>,
) -> Response {
    let path = format!("/admin/reports/{id}/files/{}", seg(&name));
    api::download(&console.api, &session.credential, &path, &seg(&name)).await
}

async fn report_bundle(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Path(id): Path<u64>,
) -> Response {
    let path = format!("/admin/reports/{id}/bundle");
    let file = format!("report-{id}-bundle.tar");
    api::download(&console.api, &session.credential, &path, &file).await
}

#[derive(Deserialize, Default)]
struct ExportQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    payloads: Option<String>,
}

/// A bundle of the ledger (`GET /admin/ledger/export`), downloaded.
async fn export_bundle(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
    Query(query): Query<ExportQuery>,
) -> Response {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("from", &query.from),
        ("to", &query.to),
        ("model", &query.model),
    ] {
        if !value.trim().is_empty() {
            pairs.push((name, value.trim().to_owned()));
        }
    }
    if query.payloads.is_some() {
        pairs.push(("payloads", "true".to_owned()));
    }
    let path = format!(
        "/admin/ledger/export?{}",
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    );
    api::download(&console.api, &session.credential, &path, "bundle.tar").await
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
