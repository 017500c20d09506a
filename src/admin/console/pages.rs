//! The console's pages as HTML: server-rendered from the admin API's
//! answers, no inline script or style (the content rules forbid both), a
//! stable URL per page.

mod decisions;
mod evidence;
mod kpis;
mod models;
mod overview;
mod reviews;

use super::session::Session;
pub(crate) use crate::report::html::esc;
pub(crate) use decisions::{decision, entry, find_decision, found_decisions};
pub(crate) use evidence::{evidence, report_job};
pub(crate) use kpis::{Over, kpi_model, kpi_models};
pub(crate) use models::{Offer, model, models, version};
pub(crate) use overview::overview;
pub(crate) use reviews::{QueueFilters, review, reviews};
use serde_json::Value;
use std::fmt::Write;

/// A path segment made safe for a URL (percent-encoded).
pub(crate) fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A link to the ledger entry `seq` names ("-" when it names none).
pub(crate) fn entry_link(seq: &Value) -> String {
    match seq.as_u64() {
        Some(seq) => format!("<a href=\"/console/ledger/{seq}\">seq {seq}</a>"),
        None => "-".to_owned(),
    }
}

/// The members of an array as text (none when it is no array).
pub(crate) fn texts(array: &Value) -> Vec<String> {
    array.as_array().into_iter().flatten().map(text).collect()
}

/// A whole page: `title`, the navigation for `session`, a notice, `body`.
pub(crate) fn page(
    title: &str,
    session: Option<&Session>,
    notice: Option<&Notice>,
    body: &str,
) -> String {
    let mut html = String::with_capacity(body.len() + 2048);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · govgate console</title><link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script src=\"/console/assets/console.js\" defer></script></head><body>",
        esc(title)
    );
    html.push_str("<header><a class=\"brand\" href=\"/console/\">govgate</a>");
    if let Some(session) = session {
        html.push_str(
            "<nav aria-label=\"Sections\"><a href=\"/console/\">Overview</a>\
             <a href=\"/console/models\">Models</a><a href=\"/console/reviews\">Reviews</a>\
             <a href=\"/console/kpis\">KPIs</a><a href=\"/console/decisions\">Decisions</a>\
             <a href=\"/console/evidence\">Evidence</a></nav>",
        );
        let _ = write!(
            html,
            "<form class=\"who\" method=\"post\" action=\"/console/sign-out\">\
             <span id=\"principal\">{} ({})</span>{}<button type=\"submit\">Sign out</button></form>",
            esc(&session.caller.principal),
            esc(&session.caller.roles.join(", ")),
            csrf_field(session)
        );
    }
    html.push_str("</header><main>");
    if let Some(notice) = notice {
        let (class, role) = match notice {
            Notice::Done(_) => ("notice done", "status"),
            Notice::Problem(_) => ("notice problem", "alert"),
        };
        let _ = write!(
            html,
            "<p class=\"{class}\" role=\"{role}\" id=\"notice\">{}</p>",
            esc(notice.text())
        );
    }
    let _ = writeln!(html, "<h1>{}</h1>{body}</main></body></html>", esc(title));
    html
}

/// What a change led to, shown on the page it returns to.
pub(crate) enum Notice {
    Done(String),
    Problem(String),
}

impl Notice {
    fn text(&self) -> &str {
        match self {
            Notice::Done(text) | Notice::Problem(text) => text,
        }
    }
}

/// The hidden field every form of `session` carries.
pub(crate) fn csrf_field(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&session.csrf)
    )
}

/// The sign-in form; with `provider`, the way to the identity provider.
pub(crate) fn sign_in(problem: Option<&str>, provider: bool) -> String {
    let notice = problem.map(|problem| Notice::Problem(problem.to_owned()));
    let mut body = String::new();
    if provider {
        body.push_str(
            "<p><a class=\"button\" id=\"sign-in-provider\" href=\"/console/sign-in/provider\">\
             Sign in with your organisation's account</a></p><p class=\"hint\">Or with an admin token:</p>",
        );
    }
    body.push_str(
        "<form method=\"post\" action=\"/console/sign-in\" class=\"card\">\
         <label for=\"token\">Admin token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
         <p class=\"hint\">The token the gateway's <code>[[admin.tokens]]</code> (or its identity \
         provider) gave you. Everything you do here is an admin API call made as you, recorded \
         in the ledger under your name.</p>",
    );
    page("Sign in", None, notice.as_ref(), &body)
}

/// Signed in at the identity provider: on to the overview from this page
/// (a same-site step, so the session cookie goes along).
pub(crate) fn signed_in() -> String {
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
     <meta http-equiv=\"refresh\" content=\"0; url=/console/\">\
     <title>Signed in · govgate console</title><link rel=\"icon\" href=\"data:,\"></head>\
     <body><p>Signed in. <a id=\"continue\" href=\"/console/\">Continue to the console</a>.</p></body></html>\n"
        .to_owned()
}
