//! Who is at the console: session cookies, the signed-in person as an
//! extractor, the checks every change passes (same origin, CSRF token),
//! signing in with a token or at the identity provider, signing out.

use super::pages::{self, Notice};
use super::session::{COOKIE, Session};
use super::{Console, html};
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

/// The session cookie's value in `headers`.
pub(super) fn cookie(headers: &HeaderMap) -> Option<String> {
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
pub(super) enum Refusal {
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
pub(super) fn signed_in(console: &Console, headers: &HeaderMap) -> Result<Session, Refusal> {
    cookie(headers)
        .and_then(|cookie| console.sessions.find(&cookie))
        .ok_or(Refusal::NotSignedIn)
}

/// The person a page is for: without a live session, the page is the
/// sign-in page.
pub(super) struct SignedIn(pub(super) Session);

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
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
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

pub(super) fn forbidden_change() -> Response {
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
pub(super) fn change_session(
    console: &Console,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Session, Refusal> {
    if !same_origin(headers) {
        return Err(Refusal::CrossSite);
    }
    let session = signed_in(console, headers)?;
    if !session.csrf_matches(csrf) {
        return Err(Refusal::CrossSite);
    }
    Ok(session)
}

pub(super) async fn sign_in_page(State(console): State<Console>) -> Response {
    html(
        StatusCode::OK,
        pages::sign_in(None, console.provider.is_some()),
    )
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    token: String,
}

/// The sign-in page again, saying why.
pub(super) fn sign_in_refused(console: &Console, why: &str) -> Response {
    html(
        StatusCode::UNAUTHORIZED,
        pages::sign_in(Some(why), console.provider.is_some()),
    )
}

pub(super) async fn sign_in(
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
pub(super) async fn open_session(console: &Console, token: String) -> Response {
    open_session_then(console, token, Redirect::to("/console/").into_response()).await
}

/// [`open_session`] answering `then` with the session's cookie.
pub(super) async fn open_session_then(
    console: &Console,
    token: String,
    then: Response,
) -> Response {
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
        super::session::ABSOLUTE.as_secs()
    );
    let mut response = then;
    if let Ok(value) = HeaderValue::from_str(&set) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// To the identity provider's sign-in page.
pub(super) async fn sign_in_at_provider(State(console): State<Console>) -> Response {
    match &console.provider {
        Some(provider) => Redirect::to(&provider.start()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize, Default)]
pub(super) struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: Option<String>,
}

/// Back from the identity provider: the code exchanged for tokens, the
/// access token checked as the admin API checks it, then a session.
pub(super) async fn sign_in_callback(
    State(console): State<Console>,
    Query(callback): Query<Callback>,
) -> Response {
    let Some(provider) = console.provider.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(error) = callback.error {
        let why = super::oidc::SignInError::Refused(error).to_string();
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
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn sign_out(
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
