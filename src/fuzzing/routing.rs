//! The public router end to end: path matching, model and version
//! resolution for the four protocols, refusals and their records. The
//! versions' upstreams are a recorder (`upstream.rs`) that keeps what it
//! is sent, under a base path per version; one KServe version is at
//! 127.0.0.1:1, where nothing listens, so a forward can also fail (502).

use super::entry::check_entry;
use super::forwarded::{Upstream, check_forward};
use super::gateway::{Answer, Gateway, runtime};
use super::input;
use super::setup;
use super::upstream::{MARKER, Recorder};
use crate::decision::{Decision, Outcome, Route};
use crate::proxy::DECISION_ID_HEADER;
use std::sync::OnceLock;

/// One model per protocol and version state (see `gateway::serving_table`);
/// `{up}` is the recorder. Every version's base path is in [`UPSTREAMS`].
const MODELS: &str = r#"
[[models]]
name = "chat"
protocol = "openai"
default_version = "1"
[[models.versions]]
version = "1"
upstream = "{up}/chat/1/v"
upstream_model = "up-chat"
[[models.versions]]
version = "proposed"
upstream = "{up}/chat/proposed"
[[models.versions]]
version = "revoked"
upstream = "{up}/chat/revoked"

[[models]]
name = "idle-chat"
protocol = "openai"
[[models.versions]]
version = "1"
upstream = "{up}/idle-chat/1"

[[models]]
name = "claude"
protocol = "anthropic"
default_version = "1"
[models.credential]
env = "FUZZ_CREDENTIAL"
[[models.versions]]
version = "1"
upstream = "{up}/claude/1"
upstream_model = "up-claude"
[[models.versions]]
version = "revoked"
upstream = "{up}/claude/revoked"

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
upstream = "{up}/credit/2/kserve"
[[models.versions]]
version = "revoked"
upstream = "{up}/credit/revoked"

[[models]]
name = "raw"
protocol = "http"
path_prefix = "/models/raw"
[models.credential]
env = "FUZZ_CREDENTIAL"
[[models.versions]]
version = "1"
upstream = "{up}/raw/1/base"

[[models]]
name = "score"
protocol = "http"
path_prefix = "/m/score.v1~x"
[[models.versions]]
version = "proposed"
upstream = "{up}/score/proposed"
"#;

/// Where [`MODELS`] puts each version on the recorder.
const UPSTREAMS: &[Upstream] = &[
    up("chat", "1", "/chat/1/v", Some("up-chat"), None, true),
    up("chat", "proposed", "/chat/proposed", None, None, false),
    up("chat", "revoked", "/chat/revoked", None, None, false),
    up("idle-chat", "1", "/idle-chat/1", None, None, true),
    up("claude", "1", "/claude/1", Some("up-claude"), None, true),
    up("claude", "revoked", "/claude/revoked", None, None, false),
    up("credit", "2", "/credit/2/kserve", None, None, true),
    up("credit", "revoked", "/credit/revoked", None, None, false),
    up("raw", "1", "/raw/1/base", None, Some("/models/raw"), true),
    up(
        "score",
        "proposed",
        "/score/proposed",
        None,
        Some("/m/score.v1~x"),
        false,
    ),
];

const fn up(
    model: &'static str,
    version: &'static str,
    base: &'static str,
    upstream_model: Option<&'static str>,
    prefix: Option<&'static str>,
    approved: bool,
) -> Upstream {
    Upstream {
        model,
        version,
        base,
        upstream_model,
        prefix,
        approved,
    }
}

/// The gateway's own endpoints, which answer 200 without a decision.
const INFORMATIONAL: &[&str] = &["/v1/models", "/v2", "/v2/health/live", "/v2/health/ready"];

/// Statuses a request may get from this gateway: its own endpoints and
/// the recorder (200), client errors, and the failed forward (502). Never
/// 500 (a fault of the gateway on client input), 503 (the sink never
/// fails), 408 or 504 (the body is all there, and the recorder answers at
/// once).
const ALLOWED: &[u16] = &[200, 400, 401, 403, 404, 405, 413, 414, 431, 502];

/// The gateway and the upstream it forwards to.
struct Fixture {
    gateway: Gateway,
    recorder: Recorder,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = runtime();
        let recorder = Recorder::start(&runtime);
        let config = setup::config(&MODELS.replace("{up}", &recorder.url()));
        Fixture {
            gateway: Gateway::new(runtime, &config),
            recorder,
        }
    })
}

/// Sends one request (`METHOD target`, header lines, blank line, body)
/// through the public router and checks its answer, its record and what
/// the upstream got.
///
/// # Panics
/// When an invariant breaks: a status outside the allowed set, an error
/// that is not the documented JSON, a 200 from anything but the gateway's
/// own endpoints or a forward, a request without exactly one decision
/// (with the status and code the client got) unless it is for the
/// gateway's own endpoints, a forward to a version that is not approved,
/// an upstream request for anything but one forward, an upstream path
/// that could resolve elsewhere or differs from the client's (see
/// `forwarded::check_forward`), or a decision whose ledger entry is not
/// canonical, keeps client text past its cap or is larger than
/// `entry::MAX_ENTRY_BYTES`.
pub fn routing(data: &[u8]) -> String {
    let Some(request) = input::request(data) else {
        return "unbuildable".to_owned();
    };
    let Fixture { gateway, recorder } = fixture();
    let mut asked = http::Request::new(());
    *asked.method_mut() = request.method().clone();
    *asked.uri_mut() = request.uri().clone();
    *asked.headers_mut() = request.headers().clone();
    let (method, path) = (asked.method(), asked.uri().path());
    let answer = gateway.send(request);
    let received = recorder.take();
    let status = answer.parts.status.as_u16();
    assert!(ALLOWED.contains(&status), "status {status}");
    assert!(answer.ends.is_empty(), "a stream ended");
    let Some(body) = &answer.body else {
        panic!("the answer's body broke off (status {status})");
    };
    let forwarded = answer.parts.headers.contains_key(MARKER);
    if status == 200 && !forwarded {
        assert!(
            INFORMATIONAL.contains(&path) && (method == "GET" || method == "HEAD"),
            "200 for {method} {path}"
        );
        assert!(answer.decisions.is_empty(), "a decision for {path}");
        assert!(received.is_empty(), "the upstream was called for {path}");
        return format!("200 {path}");
    }
    let [decision] = answer.decisions.as_slice() else {
        panic!("{} decisions for one {status}", answer.decisions.len());
    };
    assert_eq!(decision.status, status, "the decision's status");
    if let Some(id) = answer.parts.headers.get(DECISION_ID_HEADER) {
        assert_eq!(
            id.to_str().ok(),
            Some(decision.id.to_string().as_str()),
            "the decision id header"
        );
    }
    check_entry(decision, path);
    if forwarded {
        let [one] = received.as_slice() else {
            panic!("{} upstream requests for one forward", received.len());
        };
        check_forward(UPSTREAMS, decision, &asked, input::request_body(data), one);
        return forward_label(decision, method);
    }
    assert!(
        received.is_empty(),
        "the upstream was called for a {status}"
    );
    check_refusal(&answer, decision, body, method)
}

/// The label of a forward: route, version and method (from a bounded
/// set: a method is any token).
fn forward_label(decision: &Decision, method: &http::Method) -> String {
    assert_eq!(decision.outcome, Outcome::Served, "the forward's outcome");
    assert_eq!(decision.error_code, None, "a code for a forward");
    assert_eq!(decision.approval_seq, Some(1), "the forward's approval");
    let version = decision.version.as_deref().unwrap_or_default();
    let method = match method.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" => method.as_str(),
        _ => "other",
    };
    format!("200 {} {version} {method}", decision.route.as_str())
}

/// A refusal or a failed forward: the documented error, the same code in
/// the decision, and a failed forward only to an approved version.
fn check_refusal(
    answer: &Answer,
    decision: &Decision,
    body: &[u8],
    method: &http::Method,
) -> String {
    let status = decision.status;
    let code = if method == http::Method::HEAD {
        // A HEAD answer has the head of the GET answer, without its body.
        assert!(body.is_empty(), "a body for HEAD");
        decision.error_code.unwrap_or_default().to_owned()
    } else {
        error_code(answer, decision.route, body)
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
    format!("{status} {code} {}", decision.route.as_str())
}

/// The code of a JSON error answer `{"error": {"code", "message"}}`; on
/// the Anthropic route also with Anthropic's `type` members.
fn error_code(answer: &Answer, route: Route, body: &[u8]) -> String {
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
    if route == Route::AnthropicMessages {
        assert_eq!(value["type"], "error", "an Anthropic error's type");
        assert!(
            value["error"]["type"]
                .as_str()
                .is_some_and(|kind| kind.ends_with("_error") || kind == "request_too_large"),
            "an Anthropic error's error.type"
        );
    }
    code.to_owned()
}
