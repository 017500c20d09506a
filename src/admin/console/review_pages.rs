//! The review queue and a review's page with its verdict forms.

use super::access::{SignedIn, change_session, cookie};
use super::pages::{self, Notice, seg};
use super::{Console, NoticeQuery, api_problem, back, change, html, read};
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, Default)]
pub(super) struct QueueQuery {
    #[serde(default)]
    model: String,
    #[serde(default)]
    kind: String,
    /// Text one of the policies' reasons holds.
    #[serde(default)]
    reason: String,
    /// Waiting at least this many seconds.
    #[serde(default)]
    older_than: String,
}

impl QueueQuery {
    fn api_path(&self) -> String {
        let mut pairs = vec![("status", "pending")];
        for (name, value) in [
            ("model", &self.model),
            ("kind", &self.kind),
            ("reason", &self.reason),
            ("older_than", &self.older_than),
        ] {
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        format!(
            "/admin/reviews?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }
}

/// What changes when the queue changes: its review ids, in order.
pub(super) fn fingerprint(items: &[Value]) -> String {
    let ids: Vec<&str> = items
        .iter()
        .filter_map(|item| item["review_id"].as_str())
        .collect();
    crate::ledger::entry::hex(&<sha2::Sha256 as sha2::Digest>::digest(ids.join(",")))[..16]
        .to_owned()
}

pub(super) async fn reviews(
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
    let body = pages::reviews(
        &items,
        &pages::QueueFilters {
            model: &query.model,
            kind: &query.kind,
            reason: &query.reason,
            older_than: &query.older_than,
        },
        &fingerprint(&items),
    );
    html(
        StatusCode::OK,
        pages::page("Reviews", Some(&session), None, &body),
    )
}

/// `{"fingerprint"}` of the pending queue: the queue page polls it and
/// reloads when it changes.
pub(super) async fn queue_state(
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

pub(super) async fn review(
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
pub(super) struct VerdictForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    verdict: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    answer: String,
}

pub(super) async fn decide(
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
    let answer = change(&console, &session, &path, &body).await;
    if answer.status.is_success() {
        back(&page, Notice::Done(format!("{}: recorded", form.verdict)))
    } else {
        back(&page, Notice::Problem(answer.problem()))
    }
}
