//! The Anthropic Messages API (protocol `anthropic`, `POST /v1/messages`)
//! through the real gateway to a real Messages server: bytes and event
//! timing pass unchanged, the upstream key comes from config and never
//! from the caller, approvals and policies are enforced, refusals are
//! Anthropic-shaped errors with the gateway's codes, KPIs read the answer,
//! and every call is in the ledger.

use crate::support::anthropic::{
    AnthropicUpstream, OVERLOADED, STREAM_HEAD, STREAM_TAIL, message_answer,
};
use crate::support::{Gateway, open, send};
use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// `claude` (a key from config, renamed upstream), `claude-own-key` (no
/// credential: callers bring theirs) and an OpenAI model on the same
/// upstream.
fn anthropic_models(upstream: &str) -> String {
    format!(
        r#"
[[models]]
name = "claude"
protocol = "anthropic"
[models.credential]
env = "TEST_UPSTREAM_KEY"
[[models.versions]]
version = "v1"
upstream = "{upstream}"
upstream_model = "claude-upstream"

[[models]]
name = "claude-own-key"
protocol = "anthropic"
[[models.versions]]
version = "v1"
upstream = "{upstream}"

[[models]]
name = "chat"
protocol = "openai"
[[models.versions]]
version = "v1"
upstream = "{upstream}"
"#
    )
}

const MESSAGES: &str = "/v1/messages";

/// The seq of the completed approval of `model`'s `version`.
async fn approval_seq(gateway: &Gateway, model: &str, version: &str) -> u64 {
    gateway
        .entries()
        .await
        .iter()
        .find(|e| {
            e["kind"] == "version_approved"
                && e["state"] == "approved"
                && e["model"] == model
                && e["version"] == version
        })
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or_else(|| panic!("{model} {version} was approved"))
}

#[tokio::test]
async fn anthropic_bodies_are_byte_identical_and_the_callers_key_never_reaches_the_model() {
    let upstream = AnthropicUpstream::start().await;
    let gateway = Gateway::start(&anthropic_models(&upstream.url())).await;
    // Odd spacing, key order and escapes must survive: only `model` changes.
    let body = "{\"max_tokens\": 64,\n \"model\" : \"claude\", \"system\":\"be brief\",\"messages\":[{\"role\":\"user\",\"content\":\"gr\\u00fc\\u00df dich\"}]}";
    let reply = send(
        Method::POST,
        &gateway.url("/v1/messages?beta=true"),
        &[
            ("content-type", "application/json"),
            ("x-api-key", "callers-own-key"),
            ("authorization", "Bearer callers-own-token"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "prompt-caching-2024-07-31"),
            ("connection", "keep-alive, x-client-hop"),
            ("x-client-hop", "must not pass"),
            ("keep-alive", "timeout=30"),
            ("te", "trailers"),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.body,
        message_answer("grüß dich").as_bytes(),
        "client got the upstream's bytes"
    );
    let seen = upstream.only_request();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path_and_query, "/v1/messages?beta=true");
    assert_eq!(
        seen.body,
        body.replace("\"claude\"", "\"claude-upstream\"").as_bytes(),
        "the upstream got the client's bytes, the model renamed"
    );
    assert_eq!(
        seen.headers["x-api-key"], "test-secret",
        "the configured key"
    );
    assert!(
        !seen.headers.contains_key("authorization"),
        "the caller's token reached the model: {:?}",
        seen.headers
    );
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.headers["anthropic-beta"], "prompt-caching-2024-07-31");
    for name in ["x-client-hop", "keep-alive", "te", "connection"] {
        assert!(
            !seen.headers.contains_key(name),
            "upstream received `{name}`"
        );
    }
    assert_eq!(reply.headers["request-id"], "req_test_01");
    assert_eq!(reply.headers["content-type"], "application/json");
    for name in ["x-hop-only", "x-api-key"] {
        assert!(
            !reply.headers.contains_key(name),
            "client received `{name}`"
        );
    }
    assert!(!format!("{:?}{:?}", reply.headers, reply.body).contains("test-secret"));

    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["route"], "anthropic.messages");
    assert_eq!(decision["protocol"], "anthropic");
    assert_eq!(decision["model"], "claude");
    assert_eq!(decision["version"], "v1");
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["status"], 200);
    assert_eq!(
        decision["approval_seq"],
        approval_seq(&gateway, "claude", "v1").await
    );
    assert_eq!(decision["request"]["length"], body.len());
    assert_eq!(
        decision["response"]["length"],
        message_answer("grüß dich").len()
    );
    gateway
        .metrics_when(
            r#"govgate_requests_total{model="claude",outcome="served",route="anthropic.messages",version="v1"} 1"#,
        )
        .await;
}

#[tokio::test]
async fn anthropic_models_without_credentials_pass_the_callers_key() {
    let upstream = AnthropicUpstream::start().await;
    let gateway = Gateway::start(&anthropic_models(&upstream.url())).await;
    let body =
        r#"{"model":"claude-own-key","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(
        Method::POST,
        &gateway.url(MESSAGES),
        &[("x-api-key", "sk-ant-mine")],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = upstream.only_request();
    assert_eq!(seen.headers["x-api-key"], "sk-ant-mine");
    assert_eq!(seen.body, body.as_bytes(), "no upstream_model: unchanged");
}

#[tokio::test]
async fn anthropic_events_pass_byte_for_byte_as_they_come_and_the_end_is_recorded() {
    let upstream = AnthropicUpstream::start().await;
    let gateway = Gateway::start(&anthropic_models(&upstream.url())).await;
    let body = r#"{"model":"claude","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = open(
        Method::POST,
        &gateway.url(MESSAGES),
        &[("anthropic-version", "2023-06-01")],
        body,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();

    // The upstream holds the rest until released: the head can only
    // arrive now if the gateway forwards without buffering.
    let mut head = Vec::new();
    while head.len() < STREAM_HEAD.len() {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the first events arrive while the upstream is paused")
            .unwrap()
            .unwrap();
        head.extend_from_slice(&frame.into_data().unwrap());
    }
    assert_eq!(head, STREAM_HEAD.as_bytes());
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "streaming");
    assert_eq!(decision["route"], "anthropic.messages");
    assert_eq!(decision["model"], "claude");
    assert_eq!(decision["version"], "v1");
    assert_eq!(
        decision["approval_seq"],
        approval_seq(&gateway, "claude", "v1").await
    );
    assert!(
        gateway
            .entries()
            .await
            .iter()
            .all(|e| e["kind"] != "stream_ended"),
        "the end is not recorded before the stream ends"
    );

    upstream.state.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("stream completes")
        .unwrap()
        .to_bytes();
    assert_eq!(rest, STREAM_TAIL.concat().as_bytes());

    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["decision_seq"], decision["seq"]);
    assert_eq!(end["outcome"], "served");
    assert_eq!(end["error_code"], Value::Null);
    assert_eq!(end["model"], "claude");
    let whole = STREAM_HEAD.len() + STREAM_TAIL.concat().len();
    assert_eq!(end["response"]["length"], whole);
    assert_eq!(end["released_bytes"], whole);
}

#[tokio::test]
async fn anthropic_client_leaving_mid_stream_is_recorded_and_closes_the_upstream() {
    let upstream = AnthropicUpstream::start().await;
    let gateway = Gateway::start(&anthropic_models(&upstream.url())).await;
    let body = r#"{"model":"claude","max_tokens":64,"stream":true,"messages":[]}"#;
    let response = open(
        Method::POST,
        &gateway.url(MESSAGES),
        &[("x-test-endless", "1")],
        body,
    )
    .await;
    let id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();
    for _ in 0..3 {
        body.frame().await.unwrap().unwrap();
    }
    assert!(!upstream.state.stream_dropped.load(Ordering::SeqCst));
    drop(body);
    let mut released = false;
    for _ in 0..60 {
        if upstream.state.stream_dropped.load(Ordering::SeqCst) {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        released,
        "upstream stream still open 3 s after the client left"
    );
    assert_eq!(gateway.decision(&id).await["outcome"], "streaming");
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "error");
    assert_eq!(end["error_code"], "client_disconnected");
    assert!(end["released_bytes"].as_u64().unwrap() > 0);
}

/// Checks an Anthropic-shaped gateway error: `type`, `error.type`, and
/// the gateway's own `error.code`.
fn assert_anthropic_error(
    reply: &crate::support::client::Reply,
    status: u16,
    kind: &str,
    code: &str,
) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/json");
    let body = reply.json();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn anthropic_refusals_are_anthropic_errors_keeping_the_gateways_codes() {
    let upstream = AnthropicUpstream::start().await;
    let gateway = Gateway::start(&anthropic_models(&upstream.url())).await;

    let unknown = send(
        Method::POST,
        &gateway.url(MESSAGES),
        &[],
        r#"{"model":"claude-9","messages":[]}"#,
    )
    .await;
    assert_anthropic_error(&unknown, 404, "not_found_error", "unknown_model");
    assert_eq!(
        unknown.json()["error"]["served_models"],
        json!(["claude", "claude-own-key"])
    );
    let decision = gateway.decision(&unknown.decision_id()).await;
    assert_eq!(decision["outcome"], "blocked");
    assert_eq!(decision["route"], "anthropic.messages");
    assert_eq!(decision["error_code"], "unknown_model");
    // The decision commits to the bytes the client got.
    assert_eq!(decision["response"]["length"], unknown.body.len());

    // An OpenAI model is not served on the Messages route.
    let openai = send(
        Method::POST,
        &gateway.url(MESSAGES),
        &[],
        r#"{"model":"chat","messages":[]}"#,
    )
    .await;
    assert_anthropic_error(&openai, 404, "not_found_error", "unknown_model");

    let malformed = send(Method::POST, &gateway.url(MESSAGES), &[], "{\"model\":").await;
    assert_anthropic_error(&malformed, 400, "invalid_request_error", "malformed_body");

    let wrong_method = send(Method::GET, &gateway.url(MESSAGES), &[], "").await;
    assert_eq!(wrong_method.status, 405);

    // The OpenAI routes keep the gateway's own shape.
    let chat = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[],
        r#"{"model":"claude","messages":[]}"#,
    )
    .await;
    assert_eq!(chat.status, 404);
    assert_eq!(chat.error_code(), "unknown_model");
    assert_eq!(chat.json().get("type"), None, "{}", chat.text());
    assert!(upstream.seen().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn an_anthropic_version_not_approved_is_refused_and_recorded() {
    let upstream = AnthropicUpstream::start().await;
    let gateway = Gateway::start_pending("", &anthropic_models(&upstream.url())).await;
    let reply = send(
        Method::POST,
        &gateway.url(MESSAGES),
        &[("govgate-model-version", "v1")],
        r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_anthropic_error(
        &reply,
        403,
        "permission_error",
        "model_version_not_approved",
    );
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["outcome"], "blocked");
    assert_eq!(decision["model"], "claude");
    assert_eq!(decision["version"], "v1");
    assert_eq!(decision["approval_seq"], Value::Null);
    assert!(upstream.seen().is_empty(), "nothing reached the upstream");
}

/// Deny on a message's content, whether a string or text blocks; hold
/// when the system prompt asks for review.
const MESSAGES_POLICY: &str = r#"package govgate

import rego.v1

texts(content) := [content] if is_string(content)

texts(content) := [block.text | some block in content; block.type == "text"] if is_array(content)

deny contains "a message mentions a password" if {
	input.stage == "request"
	some message in input.request.messages
	some text in texts(message.content)
	contains(lower(text), "password")
}

hold contains "the system prompt asks for review" if {
	input.stage == "response"
	contains(input.request.system, "review")
	input.response.content[0].text == "ok"
}
"#;

#[tokio::test]
async fn anthropic_calls_are_denied_and_held_by_the_policies() {
    let upstream = AnthropicUpstream::start().await;
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(policies.path().join("messages.rego"), MESSAGES_POLICY).unwrap();
    let config = format!(
        "{}\n[review]\npolicies_dir = \"{}\"\n",
        anthropic_models(&upstream.url()),
        policies.path().display()
    );
    let gateway = Gateway::start(&config).await;

    for content in [
        json!("my Password is hunter2"),
        json!([{"type": "text", "text": "what is the PASSWORD?"}]),
    ] {
        let body = json!({"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": content}]});
        let denied = send(Method::POST, &gateway.url(MESSAGES), &[], body.to_string()).await;
        assert_anthropic_error(&denied, 403, "permission_error", "policy_denied");
        assert_eq!(
            denied.json()["error"]["reasons"],
            json!(["a message mentions a password"])
        );
        let decision = gateway.decision(&denied.decision_id()).await;
        assert_eq!(decision["outcome"], "denied");
        assert_eq!(decision["policy"]["request"]["action"], "deny");
    }
    assert!(
        upstream.seen().is_empty(),
        "a denied call never reaches the model"
    );

    let body = r#"{"model":"claude","max_tokens":8,"system":"needs review","messages":[{"role":"user","content":"ok"}]}"#;
    let held = send(Method::POST, &gateway.url(MESSAGES), &[], body).await;
    assert_eq!(held.status, 202, "{}", held.text());
    let id = held.decision_id();
    assert_eq!(held.json()["status"], "pending");
    assert_eq!(held.json()["poll"], format!("/govgate/decisions/{id}"));
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "held");
    assert_eq!(decision["policy"]["response"]["action"], "hold");
    assert_eq!(
        decision["policy"]["response"]["hold"],
        json!(["the system prompt asks for review"])
    );
    // The held answer is the model's, byte for byte, released so once a
    // reviewer approves it.
    assert_eq!(decision["response"]["length"], message_answer("ok").len());
    let review_id = held.json()["review_id"].as_str().unwrap().to_owned();
    let approved = crate::support::governance::admin_call(
        &gateway.admin,
        Some("rita"),
        Method::POST,
        &format!("/admin/reviews/{review_id}/decide"),
        r#"{"verdict":"approve"}"#,
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    let released = gateway.get(&format!("/govgate/decisions/{id}")).await;
    assert_eq!(released.status, 200, "{}", released.text());
    assert_eq!(released.body, message_answer("ok").as_bytes());
    assert_eq!(released.headers["request-id"], "req_test_01");

    let allowed = r#"{"model":"claude","max_tokens":8,"system":"be brief","messages":[{"role":"user","content":"ok"}]}"#;
    let served = send(Method::POST, &gateway.url(MESSAGES), &[], allowed).await;
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(served.body, message_answer("ok").as_bytes());
    let decision = gateway.decision(&served.decision_id()).await;
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["policy"]["request"]["action"], "allow");
    assert_eq!(decision["policy"]["response"]["action"], "allow");
}

#[tokio::test]
async fn kpi_selectors_read_messages_answers() {
    let upstream = AnthropicUpstream::start().await;
    let config = format!(
        r#"
[[models]]
name = "claude"
protocol = "anthropic"
[models.kpi]
window = 10
min_group_size = 1
[models.kpi.outcome]
pointer = "/content/0/text"
positive = ["approve"]
[[models.kpi.attributes]]
name = "region"
header = true
[[models.kpi.features]]
name = "output_tokens"
kind = "numeric"
from = "response"
pointer = "/usage/output_tokens"
[[models.versions]]
version = "v1"
upstream = "{}"
"#,
        upstream.url()
    );
    let gateway = Gateway::start(&config).await;
    for (text, region) in [
        ("approve", "north"),
        ("decline", "north"),
        ("approve", "south"),
    ] {
        let body = json!({"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": text}]});
        let reply = send(
            Method::POST,
            &gateway.url(MESSAGES),
            &[("x-govgate-attr-region", region)],
            body.to_string(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let text = gateway
        .metrics_when(r#"govgate_kpi_rows_total{model="claude"} 3"#)
        .await;
    for line in [
        r#"govgate_kpi_selection_rate{attribute="region",group="north",model="claude"} 0.5"#,
        r#"govgate_kpi_selection_rate{attribute="region",group="south",model="claude"} 1"#,
        r#"govgate_kpi_demographic_parity_difference{attribute="region",model="claude"} 0.5"#,
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(
        !text.contains(r#"govgate_kpi_selector_misses_total{model="claude""#),
        "{text}"
    );
    assert!(
        upstream
            .seen()
            .iter()
            .all(|seen| !seen.headers.contains_key("x-govgate-attr-region"))
    );
}

#[tokio::test]
async fn anthropic_upstreams_own_errors_pass_unchanged() {
    let upstream = AnthropicUpstream::start().await;
    let gateway = Gateway::start(&anthropic_models(&upstream.url())).await;
    let body = r#"{"model":"claude","max_tokens":8,"messages":[]}"#;
    let reply = send(
        Method::POST,
        &gateway.url(MESSAGES),
        &[("x-test-overloaded", "1")],
        body,
    )
    .await;
    assert_eq!(reply.status, 529);
    assert_eq!(reply.body, OVERLOADED.as_bytes());
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["status"], 529);
    assert_eq!(decision["error_code"], Value::Null);
}

/// While the ledger cannot commit (its disk full), an Anthropic call gets
/// the Anthropic-shaped 503, and the refusal recorded once the ledger
/// takes entries again commits to those bytes.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn with_the_ledger_down_anthropic_calls_get_an_anthropic_503_recorded_later() {
    let upstream = AnthropicUpstream::start().await;
    let gateway = Gateway::start(&anthropic_models(&upstream.url())).await;
    let body = r#"{"model":"claude","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
    gateway.fill_disk();
    let mut refused = None;
    for _ in 0..200 {
        let reply = send(Method::POST, &gateway.url(MESSAGES), &[], body).await;
        if reply.status == 503 {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("the ledger refused with its disk full");
    assert_anthropic_error(&refused, 503, "overloaded_error", "ledger_unavailable");
    gateway.free_disk();
    let mut recovered = false;
    for _ in 0..200 {
        if send(Method::POST, &gateway.url(MESSAGES), &[], body)
            .await
            .status
            == 200
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recovered,
        "the gateway did not recover once the disk had room"
    );
    let decision = gateway.wait_for_decision(&refused.decision_id()).await;
    assert_eq!(decision["outcome"], "error");
    assert_eq!(decision["status"], 503);
    assert_eq!(decision["error_code"], "ledger_unavailable");
    assert_eq!(decision["route"], "anthropic.messages");
    assert_eq!(decision["response"]["length"], refused.body.len());
}

#[tokio::test]
async fn an_anthropic_stream_whose_upstream_goes_silent_is_cut_after_the_idle_timeout() {
    let upstream = AnthropicUpstream::start().await;
    let rest = format!(
        "[timeouts]\nidle_ms = 300\n{}",
        anthropic_models(&upstream.url())
    );
    let gateway = Gateway::start(&rest).await;
    let body = r#"{"model":"claude","max_tokens":64,"stream":true,"messages":[]}"#;
    let response = open(Method::POST, &gateway.url(MESSAGES), &[], body).await;
    let id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // The tail never comes (not released): the stream must end in an
    // error, not hang, and not look complete.
    let result = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("stream does not hang past the idle timeout");
    assert!(
        result.is_err(),
        "an incomplete stream must not look complete"
    );
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "error");
    assert_eq!(end["error_code"], "upstream_timeout");
    assert_eq!(end["response"]["length"], STREAM_HEAD.len());
}
