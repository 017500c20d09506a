//! The public router end to end: path matching, model and version
//! resolution for the three protocols, refusals and their records. Every
//! upstream is 127.0.0.1:1, where nothing listens, so a request that gets
//! through is a forward attempt that fails at once (502).

use super::gateway::{Answer, Gateway, runtime};
use super::input;
use super::setup;
use crate::decision::Decision;
use crate::ledger::canonical::{parse_strict, to_canonical};
use crate::ledger::entry::{EntryBody, Salts, seal};
use crate::proxy::DECISION_ID_HEADER;
use std::sync::OnceLock;
use std::time::UNIX_EPOCH;

/// One model per protocol and version state (see `gateway::serving_table`).
const MODELS: &str = r#"
[[models]]
name = "chat"
protocol = "openai"
default_version = "1"
[[models.versions]]
version = "1"
upstream = "http://127.0.0.1:1/v"
upstream_model = "up-chat"
[[models.versions]]
version = "proposed"
upstream = "http://127.0.0.1:1"
[[models.versions]]
version = "revoked"
upstream = "http://127.0.0.1:1"

[[models]]
name = "idle-chat"
protocol = "openai"
[[models.versions]]
version = "1"
upstream = "http://127.0.0.1:1"

[[models]]
name = "credit"
protocol = "kserve_v2"
default_version = "2"
[[models.versions]]
version = "1"
upstream = "http://127.0.0.1:1"
upstream_model = "credit-v1"
[[models.versions]]
version = "2"
upstream = "http://127.0.0.1:1/kserve"
[[models.versions]]
version = "revoked"
upstream = "http://127.0.0.1:1"

[[models]]
name = "raw"
protocol = "http"
path_prefix = "/models/raw"
[models.credential]
env = "FUZZ_CREDENTIAL"
[[models.versions]]
version = "1"
upstream = "http://127.0.0.1:1/base"

[[models]]
name = "score"
protocol = "http"
path_prefix = "/m/score.v1~x"
[[models.versions]]
version = "proposed"
upstream = "http://127.0.0.1:1"
"#;

/// The gateway's own endpoints, which answer 200 without a decision.
const INFORMATIONAL: &[&str] = &["/v1/models", "/v2", "/v2/health/live", "/v2/health/ready"];

/// Statuses a request may get from this gateway: its own endpoints (200),
/// client errors, and the failed forward (502). Never 500 (a fault of the
/// gateway on client input), 503 (the sink never fails), 408 or 504 (the
/// body is all there, and nothing else is waited for).
const ALLOWED: &[u16] = &[200, 400, 401, 403, 404, 405, 413, 414, 431, 502];

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| Gateway::new(runtime(), &setup::config(MODELS)))
}

/// Sends one request (`METHOD target`, header lines, blank line, body)
/// through the public router and checks its answer and its record.
///
/// # Panics
/// When an invariant breaks: a status outside the allowed set, an error
/// that is not the documented JSON, a 200 from anything but the gateway's
/// own endpoints, a refusal or forward without exactly one decision (with
/// the status and code the client got), a forward to a version that is not
/// approved, or a decision whose ledger entry is not canonical JSON.
pub fn routing(data: &[u8]) -> String {
    let Some(request) = input::request(data) else {
        return "unbuildable".to_owned();
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let answer = gateway().send(request);
    let status = answer.parts.status.as_u16();
    assert!(ALLOWED.contains(&status), "status {status}");
    assert!(answer.ends.is_empty(), "a stream ended without an upstream");
    let Some(body) = &answer.body else {
        panic!("the answer's body broke off (status {status})");
    };
    if status == 200 {
        assert!(
            INFORMATIONAL.contains(&path.as_str()) && (method == "GET" || method == "HEAD"),
            "200 for {method} {path}"
        );
        assert!(answer.decisions.is_empty(), "a decision for {path}");
        return format!("200 {path}");
    }
    let [decision] = answer.decisions.as_slice() else {
        panic!("{} decisions for one {status}", answer.decisions.len());
    };
    assert_eq!(decision.status, status, "the decision's status");
    let code = if method == http::Method::HEAD {
        // A HEAD answer has the head of the GET answer, without its body.
        assert!(body.is_empty(), "a body for HEAD");
        decision.error_code.unwrap_or_default().to_owned()
    } else {
        error_code(&answer, body)
    };
    assert_eq!(
        decision.error_code,
        Some(code.as_str()),
        "the decision's code"
    );
    if status == 502 {
        assert_eq!(code, "upstream_unreachable", "502 is the failed forward");
        // Only an approved version of a configured model is ever forwarded to.
        assert!(
            decision.protocol.is_some() && decision.approval_seq == Some(1),
            "forwarded without an approved version"
        );
        let version = decision.version.as_deref().unwrap_or_default();
        assert!(
            !matches!(version, "" | "proposed" | "revoked"),
            "forwarded to version {version:?}"
        );
    }
    if let Some(id) = answer.parts.headers.get(DECISION_ID_HEADER) {
        assert_eq!(
            id.to_str().ok(),
            Some(decision.id.to_string().as_str()),
            "the decision id header"
        );
    }
    check_entry(decision);
    format!("{status} {code} {}", decision.route.as_str())
}

/// The code of a JSON error answer `{"error": {"code", "message"}}`.
fn error_code(answer: &Answer, body: &[u8]) -> String {
    let content_type = answer.parts.headers.get(http::header::CONTENT_TYPE);
    assert_eq!(
        content_type.and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error content type"
    );
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => panic!("error body is not JSON ({err})"),
    };
    let code = value["error"]["code"].as_str().unwrap_or_default();
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "error code {code:?}"
    );
    assert!(value["error"]["message"].is_string(), "error message");
    code.to_owned()
}

/// The decision seals into a ledger entry whose bytes are canonical JSON:
/// client-chosen names and paths go through the entry writer here.
fn check_entry(decision: &Decision) {
    let salts = Salts {
        request: [1; 32],
        response: [2; 32],
    };
    let body = EntryBody::Decision(Box::new(decision.clone()));
    let sealed = match seal(
        1,
        UNIX_EPOCH,
        "fuzz.example/gateway",
        &[0; 32],
        &body,
        crate::decision::PayloadMode::Full,
        Some(&salts),
    ) {
        Ok(sealed) => sealed,
        Err(err) => panic!("the decision does not seal: {err}"),
    };
    let reparsed = std::str::from_utf8(&sealed.canonical)
        .ok()
        .and_then(|text| parse_strict(text).ok());
    let Some(reparsed) = reparsed else {
        panic!("the entry's bytes are not I-JSON");
    };
    assert_eq!(
        to_canonical(&reparsed).ok().as_deref(),
        Some(sealed.canonical.as_slice()),
        "the entry's bytes are not canonical"
    );
}
