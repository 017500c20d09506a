//! `GET /govgate/decisions/{id}`: a client's poll for a held answer.
//!
//! - pending: 202 with the review id and the poll URL again;
//! - released (approved, overridden, or timed out with `release`): the
//!   answer, byte for byte, with its status and headers;
//! - rejected: 403 `review_rejected`; timed out with `reject`: 403
//!   `review_timed_out`;
//! - unknown id (or no held answer, or forgotten after its retention):
//!   404 `decision_not_found`.
//!
//! `Prefer: wait=N` (RFC 7240) waits up to N seconds (at most
//! `review.max_wait_secs`) for a pending review to close. Decision ids
//! carry 96 random bits, so only the client that got one can poll it.

use super::headers::{DECISION_ID_HEADER, REVIEW_ID_HEADER, REVIEW_STATE_HEADER};
use super::oversight::pending_response;
use crate::decision::DecisionId;
use crate::review::{ReviewItem, ReviewKind, ReviewQueue, ReviewState};
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use std::time::Duration;

/// The poll route, on the public listener.
pub fn routes(queue: ReviewQueue) -> Router {
    Router::new()
        .route("/govgate/decisions/{id}", get(poll))
        .with_state(queue)
}

/// The `wait` preference in seconds, if any (`Prefer: respond-async, wait=10`).
fn preferred_wait(headers: &HeaderMap) -> Option<u64> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|preference| {
            let token = preference.split(';').next()?.trim();
            let (name, value) = token.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("wait")
                .then(|| value.trim().trim_matches('"').parse().ok())?
        })
        .next()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn poll(
    State(queue): State<ReviewQueue>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            "decision_not_found",
            "no held answer for this decision id",
        )
    };
    let Some(decision_id) = DecisionId::parse(&id) else {
        return not_found();
    };
    let decision_id = decision_id.to_string();
    let wait = preferred_wait(&headers)
        .map(Duration::from_secs)
        .unwrap_or_default()
        .min(queue.max_wait());
    let Some(item) = queue.poll(&decision_id, wait).await else {
        return not_found();
    };
    if item.kind != ReviewKind::Hold {
        // A flagged answer was released when it was made.
        return not_found();
    }
    let mut response = answer(&item);
    let headers = response.headers_mut();
    for (name, value) in [
        (DECISION_ID_HEADER, item.decision_id.as_str()),
        (REVIEW_ID_HEADER, item.review_id.as_str()),
        (REVIEW_STATE_HEADER, item.state.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

fn answer(item: &ReviewItem) -> Response {
    if item.state == ReviewState::Pending {
        return pending_response(&item.decision_id, &item.review_id, &item.reasons);
    }
    if let Some(released) = item.released() {
        let mut response = Response::new(axum::body::Body::from(released.body.clone()));
        *response.status_mut() = StatusCode::from_u16(released.status).unwrap_or(StatusCode::OK);
        for (name, value) in &released.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        return response;
    }
    match item.state {
        ReviewState::TimedOut => error(
            StatusCode::FORBIDDEN,
            "review_timed_out",
            "no reviewer decided in time; the answer is withheld",
        ),
        _ => {
            let reason = item
                .closing
                .as_ref()
                .and_then(|closing| closing.reason.as_deref())
                .unwrap_or("rejected by a reviewer");
            error(
                StatusCode::FORBIDDEN,
                "review_rejected",
                &format!("a reviewer rejected the answer: {reason}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefer(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("prefer", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn wait_preference_is_found_among_others() {
        assert_eq!(preferred_wait(&prefer(&["wait=10"])), Some(10));
        assert_eq!(preferred_wait(&prefer(&["respond-async, wait=7"])), Some(7));
        assert_eq!(
            preferred_wait(&prefer(&["return=minimal", "Wait = 3"])),
            Some(3)
        );
        assert_eq!(preferred_wait(&prefer(&["wait=\"4\";x=y"])), Some(4));
        assert_eq!(preferred_wait(&prefer(&["respond-async"])), None);
        assert_eq!(preferred_wait(&prefer(&["wait=soon"])), None);
        assert_eq!(preferred_wait(&HeaderMap::new()), None);
    }
}
