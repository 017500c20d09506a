//! `POST /admin/payloads/erase` (role admin): erases the payloads of the
//! decisions one selection names (ids, a caller, a time range or a data
//! subject) while the gateway runs, each erasure logged by a
//! `payload_erased` entry first; `dry_run` lists them and erases nothing.
//! The work is the wiring's ([`Erase`]); this file checks the caller and
//! the body and answers.

use super::auth::Tokens;
use super::{BodyError, error_response, json_response, parse_body};
use crate::decision::{DecisionId, SubjectKey};
use crate::ledger::entry::ActedBy;
use crate::ledger::erase::Selection;
use crate::ledger::export::UtcTime;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Most decisions one call erases (or lists); more matching ones are left
/// for the next call (`"more": true`).
pub const MAX_DECISIONS: usize = 1000;
/// Longest `reason` kept in the erasure entries.
const MAX_REASON_BYTES: usize = 1024;

/// One erasure request, checked.
#[derive(Debug, Clone)]
pub struct ErasureRequest {
    /// Which decisions.
    pub selection: Selection,
    /// Why (recorded in each `payload_erased` entry).
    pub reason: String,
    /// List only.
    pub dry_run: bool,
    /// Who asked (recorded in each `payload_erased` entry).
    pub by: ActedBy,
}

/// Why an erasure did not happen (or did not complete).
#[derive(Debug)]
pub struct ErasureFailure {
    /// The answer's status.
    pub status: StatusCode,
    /// The machine-readable code.
    pub code: &'static str,
    /// What happened, for the operator.
    pub message: String,
}

/// Runs an erasure; the JSON answer.
pub type Erase = Arc<
    dyn Fn(
            ErasureRequest,
        )
            -> Pin<Box<dyn Future<Output = Result<serde_json::Value, ErasureFailure>> + Send>>
        + Send
        + Sync,
>;

#[derive(Clone)]
struct Api {
    tokens: Tokens,
    erase: Erase,
    subject_key: Option<SubjectKey>,
}

/// The erasure route, on the admin listener. `subject_key` hashes the
/// subject ids asked for (none: erasure by subject is refused).
pub fn routes(tokens: Tokens, erase: Erase, subject_key: Option<SubjectKey>) -> Router {
    Router::new()
        .route("/admin/payloads/erase", post(erase_payloads))
        .with_state(Api {
            tokens,
            erase,
            subject_key,
        })
}

/// The body as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    decision_ids: Option<Vec<String>>,
    #[serde(default)]
    caller: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    subject: Option<String>,
}

fn bad(code: &'static str, message: impl Into<String>) -> ErasureFailure {
    ErasureFailure {
        status: StatusCode::BAD_REQUEST,
        code,
        message: message.into(),
    }
}

/// Unix milliseconds of an RFC 3339 time.
fn unix_ms(name: &str, text: &str) -> Result<u64, ErasureFailure> {
    let time = UtcTime::parse(text).map_err(|err| {
        bad(
            "invalid_time",
            format!("`{name}`: {err} (RFC 3339, like 2026-01-31T00:00:00Z)"),
        )
    })?;
    let ms = time.unix_seconds() * 1000.0;
    // Milliseconds are what decisions hold: rounding drops what a double adds.
    Ok(if ms <= 0.0 { 0 } else { ms.round() as u64 })
}

fn check(
    raw: RawRequest,
    key: Option<&SubjectKey>,
    by: ActedBy,
) -> Result<ErasureRequest, ErasureFailure> {
    let reason = raw.reason.unwrap_or_default();
    if reason.trim().is_empty() {
        return Err(bad(
            "reason_required",
            "`reason` is required: why these payloads are erased (a ticket, a data-subject request)",
        ));
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(bad(
            "reason_too_long",
            format!("`reason` is at most {MAX_REASON_BYTES} bytes"),
        ));
    }
    let given = [
        raw.decision_ids.is_some(),
        raw.caller.is_some(),
        raw.from.is_some() || raw.to.is_some(),
        raw.subject.is_some(),
    ];
    if given.iter().filter(|given| **given).count() != 1 {
        return Err(bad(
            "selection_required",
            "give exactly one selection: `decision_ids`, `caller`, `from` and `to`, or `subject`",
        ));
    }
    let selection = if let Some(ids) = raw.decision_ids {
        if ids.is_empty() || ids.len() > MAX_DECISIONS {
            return Err(bad(
                "too_many_decisions",
                format!("`decision_ids`: 1 to {MAX_DECISIONS} ids per call"),
            ));
        }
        let ids = ids
            .iter()
            .map(|id| {
                DecisionId::parse(id).ok_or_else(|| {
                    bad(
                        "invalid_decision_id",
                        format!("`{id}` is not a decision id (32 hex digits)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // An id named twice is erased (and recorded) once.
        let mut seen = std::collections::HashSet::new();
        let ids = ids.into_iter().filter(|id| seen.insert(*id)).collect();
        Selection::Decisions(ids)
    } else if let Some(caller) = raw.caller {
        Selection::Caller(caller)
    } else if let Some(subject) = raw.subject {
        if subject.is_empty() {
            return Err(bad("selection_required", "`subject` is empty"));
        }
        let Some(key) = key else {
            return Err(ErasureFailure {
                status: StatusCode::CONFLICT,
                code: "subject_key_missing",
                message: "this gateway has no subject key (no model has a subject selector and \
                          no key file exists), so no decision carries a subject"
                    .to_owned(),
            });
        };
        Selection::Subject(key.hash(&subject))
    } else {
        let (Some(from), Some(to)) = (raw.from, raw.to) else {
            return Err(bad(
                "selection_required",
                "a time range needs both `from` and `to`",
            ));
        };
        let (from_ms, to_ms) = (unix_ms("from", &from)?, unix_ms("to", &to)?);
        if from_ms >= to_ms {
            return Err(bad("invalid_time", "`from` must be before `to`"));
        }
        Selection::Received { from_ms, to_ms }
    };
    Ok(ErasureRequest {
        selection,
        reason,
        dry_run: raw.dry_run,
        by,
    })
}

async fn erase_payloads(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match api.tokens.authenticate(&headers).await {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    if let Err(err) = caller.require(&["admin"]) {
        return err.into_response();
    }
    let raw: RawRequest = match parse_body(&body) {
        Ok(raw) => raw,
        Err(BodyError::Syntax(message)) => {
            return error_response(StatusCode::BAD_REQUEST, "malformed_body", &message, None);
        }
        Err(BodyError::Fields(message)) => {
            return error_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                &message,
                None,
            );
        }
    };
    let request = match check(raw, api.subject_key.as_ref(), caller.acted_by()) {
        Ok(request) => request,
        Err(failure) => {
            return error_response(failure.status, failure.code, &failure.message, None);
        }
    };
    tracing::info!(
        principal = %caller.principal,
        dry_run = request.dry_run,
        selection = selection_kind(&request.selection),
        "payload erasure asked for"
    );
    match (api.erase)(request).await {
        Ok(answer) => json_response(StatusCode::OK, &answer),
        Err(failure) => error_response(failure.status, failure.code, &failure.message, None),
    }
}

/// The selection's kind, for the log (never the subject or the caller).
pub fn selection_kind(selection: &Selection) -> &'static str {
    match selection {
        Selection::Decisions(_) => "decision_ids",
        Selection::Caller(_) => "caller",
        Selection::Received { .. } => "time_range",
        Selection::Subject(_) => "subject",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawRequest {
        serde_json::from_str(json).unwrap()
    }

    fn admin() -> ActedBy {
        ActedBy {
            principal: "ops".into(),
            roles: vec!["admin".into()],
            issuer: None,
        }
    }

    #[test]
    fn a_request_needs_a_reason_and_exactly_one_selection() {
        let key = SubjectKey::from_bytes([1; 32]);
        let code = |json: &str| {
            check(raw(json), Some(&key), admin())
                .map(|_| ())
                .unwrap_err()
                .code
        };
        assert_eq!(code(r#"{"subject":"a"}"#), "reason_required");
        assert_eq!(code(r#"{"subject":"a","reason":" "}"#), "reason_required");
        assert_eq!(code(r#"{"reason":"r"}"#), "selection_required");
        assert_eq!(
            code(r#"{"reason":"r","subject":"a","caller":"b"}"#),
            "selection_required"
        );
        assert_eq!(
            code(r#"{"reason":"r","from":"2026-01-01T00:00:00Z"}"#),
            "selection_required"
        );
        assert_eq!(
            code(r#"{"reason":"r","from":"2026-01-02T00:00:00Z","to":"2026-01-01T00:00:00Z"}"#),
            "invalid_time"
        );
        assert_eq!(
            code(r#"{"reason":"r","decision_ids":["x"]}"#),
            "invalid_decision_id"
        );
        assert_eq!(
            code(r#"{"reason":"r","decision_ids":[]}"#),
            "too_many_decisions"
        );
        let no_key = check(raw(r#"{"reason":"r","subject":"a"}"#), None, admin()).unwrap_err();
        assert_eq!(no_key.code, "subject_key_missing");
        let ok = check(
            raw(r#"{"reason":"r","subject":"a","dry_run":true}"#),
            Some(&key),
            admin(),
        )
        .unwrap();
        assert_eq!(ok.selection, Selection::Subject(key.hash("a")));
        assert!(ok.dry_run);
        let range = check(
            raw(r#"{"reason":"r","from":"1970-01-01T00:00:01Z","to":"1970-01-01T00:00:02.5Z"}"#),
            Some(&key),
            admin(),
        )
        .unwrap();
        assert_eq!(
            range.selection,
            Selection::Received {
                from_ms: 1000,
                to_ms: 2500
            }
        );
    }
}
