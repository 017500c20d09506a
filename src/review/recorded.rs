//! The input documents a recorded decision's policies saw, rebuilt from its
//! ledger entry and kept payload, for `govgate policies eval`: what would
//! another policy set have decided on the same call?
//!
//! Rebuilt as the request path builds them (`proxy/oversight.rs`): bodies
//! parsed as JSON or null, `sample` from the decision id. Two things are
//! not in the ledger and are stated as assumptions: the upstream's own
//! status of an answer the gateway held or denied (the entry has the status
//! the client got; 200 is assumed), and nothing else when a body was kept
//! only in part (such a decision cannot be rebuilt and is refused).

use super::input::PolicyInput;
use serde_json::Value;

/// The inputs of one recorded decision's stages.
#[derive(Debug, Clone)]
pub struct RecordedInput {
    /// The request stage's input.
    pub request: PolicyInput,
    /// The upstream's status and the parsed answer, when the call got an
    /// answer (the response stage can run); None when it never reached the
    /// upstream or the upstream failed.
    pub answer: Option<(u16, Value)>,
    /// Whether the upstream status was assumed (see the module docs).
    pub status_assumed: bool,
}

/// Why a recorded decision cannot be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReplayable {
    /// Not a decision entry, or one with no model (refused before routing).
    #[error("not a decision judged by policies ({0})")]
    NotJudged(String),
    /// The payload was not kept (mode `digest`/`none`) or was erased.
    #[error("its payload is not kept (ledger.payloads not full, or erased)")]
    NoPayload,
    /// A body was captured only in part (longer than `limits.capture_bytes`).
    #[error("its {0} body was captured only in part")]
    Cut(&'static str),
    /// The entry or the payload record is not as documented.
    #[error("malformed entry: {0}")]
    Malformed(String),
}

/// Rebuilds the inputs of the decision `entry` (a `decision` entry's
/// JSON) from its `payload` record (layout in docs/audit-format.md:
/// salts, request capture length, captures) and the version's
/// `risk_class` (from the entry its `approval_seq` names).
pub fn recorded_input(
    entry: &Value,
    payload: Option<&[u8]>,
    risk_class: &str,
) -> Result<RecordedInput, NotReplayable> {
    let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
    if entry["kind"] != "decision" {
        return Err(NotReplayable::NotJudged(format!("kind {}", entry["kind"])));
    }
    if entry["model"].is_null() || entry.get("policy").is_none_or(Value::is_null) {
        return Err(NotReplayable::NotJudged(format!(
            "outcome {}",
            entry["outcome"]
        )));
    }
    let record = payload.ok_or(NotReplayable::NoPayload)?;
    let (request_bytes, response_bytes) = split_record(record)?;
    for (member, name) in [("request", "request"), ("response", "response")] {
        let body = &entry[member];
        if !body.is_null() && body["captured"].as_u64() != body["length"].as_u64() {
            return Err(NotReplayable::Cut(name));
        }
    }
    let request = PolicyInput::request(
        text("model"),
        text("version"),
        risk_class,
        text("caller"),
        text("decision_id"),
        parse_json(request_bytes),
    );
    let outcome = entry["outcome"].as_str().unwrap_or_default();
    let answered = !entry["timings"]["upstream_head_us"].is_null();
    let request_denied = entry["policy"]["request"]["action"] == "deny";
    let status = entry["status"].as_u64().and_then(|s| u16::try_from(s).ok());
    let (answer, status_assumed) = match status {
        Some(status) if answered && !request_denied => {
            // The client saw 202 (held) or 403 (denied at the response
            // stage); the upstream's own status is not recorded.
            let assumed = matches!(outcome, "held" | "denied");
            let status = if assumed { 200 } else { status };
            let body = if outcome == "streaming" {
                Value::Null
            } else {
                parse_json(response_bytes)
            };
            (Some((status, body)), assumed)
        }
        _ => (None, false),
    };
    Ok(RecordedInput {
        request,
        answer,
        status_assumed,
    })
}

/// The body as the policies saw it: parsed JSON, or null.
fn parse_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// `(request capture, response capture)` of a payload record.
fn split_record(record: &[u8]) -> Result<(&[u8], &[u8]), NotReplayable> {
    let bad = || NotReplayable::Malformed("payload record too short".to_owned());
    let len: [u8; 4] = record
        .get(64..68)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    let len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| bad())?;
    let end = 68usize.checked_add(len).ok_or_else(bad)?;
    Ok((
        record.get(68..end).ok_or_else(bad)?,
        record.get(end..).ok_or_else(bad)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(request: &[u8], response: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out.extend_from_slice(&u32::try_from(request.len()).unwrap().to_be_bytes());
        out.extend_from_slice(request);
        out.extend_from_slice(response);
        out
    }

    fn held() -> Value {
        json!({"kind": "decision", "model": "credit-scoring", "version": "3", "caller": "svc-loans",
            "decision_id": "6b098e4bf91335dfc8fb48175d98bdcf", "outcome": "held", "status": 202,
            "timings": {"upstream_head_us": 5}, "policy": {"set_seq": 1,
            "request": {"action": "allow"}, "response": {"action": "hold"}},
            "request": {"length": 8, "captured": 8}, "response": {"length": 11, "captured": 11}})
    }

    #[test]
    fn a_held_decision_is_rebuilt_with_an_assumed_status() {
        let rebuilt = recorded_input(
            &held(),
            Some(&record(b"{\"a\": 1}", b"{\"s\": 0.5} ")),
            "high",
        )
        .unwrap();
        assert_eq!(rebuilt.request.request, json!({"a": 1}));
        assert_eq!(rebuilt.request.risk_class, "high");
        assert_eq!(rebuilt.answer, Some((200, json!({"s": 0.5}))));
        assert!(rebuilt.status_assumed);
    }

    #[test]
    fn missing_or_cut_payloads_are_refused() {
        assert_eq!(
            recorded_input(&held(), None, "high").unwrap_err(),
            NotReplayable::NoPayload
        );
        let mut cut = held();
        cut["request"]["length"] = json!(900);
        let err = recorded_input(&cut, Some(&record(b"{}", b"")), "high").unwrap_err();
        assert_eq!(err, NotReplayable::Cut("request"));
        assert!(matches!(
            recorded_input(&held(), Some(&[0u8; 10]), "high"),
            Err(NotReplayable::Malformed(_))
        ));
    }
}
