//! The overview (gathered in `overview.rs`) and the model pages: versions, their history and the
//! changes the person's roles allow (approve, reject, activate, retire,
//! revoke, propose, roll back), each an admin API call as that person.

use super::access::{SignedIn, change_session};
use super::api;
use super::overview::{Overview, alerts};
use super::pages::{self, Notice, Offer, seg};
use super::{Console, NoticeQuery, api_problem, back, change, html, read, reason_body};
use crate::registry::{Action, roles_allow};
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

pub(super) async fn overview(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
) -> Response {
    let models = read(&console, &session, "/admin/models").await;
    if !models.status.is_success() {
        return api_problem(&session, "Overview", &models);
    }
    let overview = Overview::gather(&console, &session, models.json).await;
    let body = pages::overview(&overview, &alerts(&overview));
    html(
        StatusCode::OK,
        pages::page("Overview", Some(&session), None, &body),
    )
}

pub(super) async fn models(
    State(console): State<Console>,
    SignedIn(session): SignedIn,
) -> Response {
    let answer = read(&console, &session, "/admin/models").await;
    if !answer.status.is_success() {
        return api_problem(&session, "Models", &answer);
    }
    let register = risk_register(&console, &session).await;
    let body = pages::models(&answer.json, &register);
    html(
        StatusCode::OK,
        pages::page("Models", Some(&session), None, &body),
    )
}

pub(super) async fn model(
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
    let register = risk_register(&console, &session).await;
    let body = pages::model(
        &name,
        &answer.json,
        &register,
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
pub(super) struct ProposeForm {
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
pub(super) async fn propose(
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
    let answer = change(&console, &session, &path, &body).await;
    outcome(&page, "propose", &answer)
}

/// Rolls `model` back to its previously active version.
pub(super) async fn roll_back(
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
    let body = reason_body(&form.reason);
    let path = format!("/admin/models/{}/rollback", seg(&model));
    let answer = change(&console, &session, &path, &body).await;
    outcome(&page, "roll back", &answer)
}

/// The risk register in force (`GET /admin/risks`); null when it cannot
/// be read, so the pages show no linked risks rather than fail.
async fn risk_register(console: &Console, session: &super::session::Session) -> serde_json::Value {
    let answer = read(console, session, "/admin/risks").await;
    if answer.status.is_success() {
        answer.json
    } else {
        serde_json::Value::Null
    }
}

/// Which actions fit a version in `state`.
pub(super) fn fits(action: Action, state: &str) -> bool {
    match action {
        Action::Approve | Action::Reject => state == "proposed",
        Action::Activate => state == "approved",
        Action::Retire => state == "approved" || state == "active",
        Action::Revoke => state != "revoked" && state != "rejected" && state != "retired",
        Action::Propose | Action::RollBack => false,
    }
}

pub(super) async fn version(
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
    let register = risk_register(&console, &session).await;
    let body = pages::version(&answer.json, &register, &session, &offers);
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
pub(super) struct ReasonForm {
    // Missing reads as empty, refused as a wrong token (not 422).
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub(super) async fn change_version(
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
    let body = reason_body(&form.reason);
    let path = format!(
        "/admin/models/{}/versions/{}/{}",
        seg(&model),
        seg(&label),
        action
    );
    let answer = change(&console, &session, &path, &body).await;
    outcome(&page, &action, &answer)
}

/// The version changes a page may offer, each shown only to roles the
/// registry's role rules allow it (the API still decides).
pub(super) const VERSION_ACTIONS: [(Action, &str, &str, bool); 5] = [
    (Action::Approve, "approve", "Approve", false),
    (Action::Reject, "reject", "Reject", true),
    (Action::Activate, "activate", "Activate", false),
    (Action::Retire, "retire", "Retire", false),
    (Action::Revoke, "revoke", "Revoke", true),
];

/// Back to `page` saying what the API did with the change `what`.
pub(super) fn outcome(page: &str, what: &str, answer: &api::Answer) -> Response {
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
