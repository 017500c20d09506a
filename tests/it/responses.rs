//! The OpenAI Responses API (protocol `openai`, `POST /v1/responses` and
//! the calls on a created response) through the real gateway to real
//! Responses servers: bytes and event timing pass unchanged, approvals
//! and policies are enforced, KPIs read output items, a created
//! response's later calls reach the upstream and credential of the
//! version that created it, and every call is in the ledger.

use crate::support::governance::admin_call;
use crate::support::responses::{
    ResponsesUpstream, response_answer, retrieved, stream_head, stream_tail,
};
use crate::support::{Gateway, open, send};
use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;

const RESPONSES: &str = "/v1/responses";

/// `gpt` on upstream `a` (the key from the environment, renamed
/// upstream) and `gpt-b` on upstream `b` (its own key from a file, in
/// `api-key`). The directory holds the key file.
fn responses_models(a: &str, b: &str) -> (String, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let key_b = keys.path().join("key-b");
    std::fs::write(&key_b, "secret-b\n").unwrap();
    let config = format!(
        r#"
[[models]]
name = "gpt"
protocol = "openai"
[models.credential]
env = "TEST_UPSTREAM_KEY"
[[models.versions]]
version = "v1"
upstream = "{a}"
upstream_model = "gpt-upstream"

[[models]]
name = "gpt-b"
protocol = "openai"
[models.credential]
file = "{}"
header = "api-key"
prefix = ""
[[models.versions]]
version = "v1"
upstream = "{b}"
"#,
        key_b.display()
    );
    (config, keys)
}

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
async fn responses_bodies_are_byte_identical_and_recorded() {
    let (a, b) = (
        ResponsesUpstream::start("a").await,
        ResponsesUpstream::start("b").await,
    );
    let (config, _keys) = responses_models(&a.url(), &b.url());
    let gateway = Gateway::start(&config).await;
    // Odd spacing, key order and escapes must survive: only `model` changes.
    let body = "{\"instructions\": \"be brief\",\n \"model\" : \"gpt\", \"input\":\"gr\\u00fc\\u00df dich\",\"store\":true}";
    let reply = send(
        Method::POST,
        &gateway.url("/v1/responses?x=1"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer callers-own-token"),
            ("openai-beta", "responses=v1"),
            ("connection", "keep-alive, x-client-hop"),
            ("x-client-hop", "must not pass"),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.body,
        response_answer("resp_a_1", "grüß dich").as_bytes(),
        "client got the upstream's bytes"
    );
    let seen = a.last();
    assert_eq!(a.seen().len(), 1);
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path_and_query, "/v1/responses?x=1");
    assert_eq!(
        seen.body,
        body.replace("\"gpt\"", "\"gpt-upstream\"").as_bytes(),
        "the upstream got the client's bytes, the model renamed"
    );
    assert_eq!(seen.headers["authorization"], "Bearer test-secret");
    assert_eq!(seen.headers["openai-beta"], "responses=v1");
    assert!(!seen.headers.contains_key("x-client-hop"));
    assert_eq!(reply.headers["x-request-id"], "req_test_01");
    assert!(!reply.headers.contains_key("x-hop-only"));
    assert!(b.seen().is_empty());

    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["route"], "openai.responses");
    assert_eq!(decision["protocol"], "openai");
    assert_eq!(decision["model"], "gpt");
    assert_eq!(decision["version"], "v1");
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["status"], 200);
    assert_eq!(
        decision["approval_seq"],
        approval_seq(&gateway, "gpt", "v1").await
    );
    assert_eq!(decision["request"]["length"], body.len());
    assert_eq!(
        decision["response"]["length"],
        response_answer("resp_a_1", "grüß dich").len()
    );
    gateway
        .metrics_when(
            r#"govgate_requests_total{model="gpt",outcome="served",route="openai.responses",version="v1"} 1"#,
        )
        .await;
}

#[tokio::test]
async fn response_events_pass_as_they_come_the_end_is_recorded_and_the_id_resolves_mid_stream() {
    let (a, b) = (
        ResponsesUpstream::start("a").await,
        ResponsesUpstream::start("b").await,
    );
    let (config, _keys) = responses_models(&a.url(), &b.url());
    let gateway = Gateway::start(&config).await;
    let body = r#"{"model":"gpt","stream":true,"background":true,"input":"hi"}"#;
    let response = open(Method::POST, &gateway.url(RESPONSES), &[], body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();
    // The upstream holds the rest until released: the head can only
    // arrive now if the gateway forwards without buffering.
    let head = stream_head("resp_a_1");
    let mut got = Vec::new();
    while got.len() < head.len() {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the first events arrive while the upstream is paused")
            .unwrap()
            .unwrap();
        got.extend_from_slice(&frame.into_data().unwrap());
    }
    assert_eq!(got, head.as_bytes());
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "streaming");
    assert_eq!(decision["route"], "openai.responses");
    assert!(
        gateway
            .entries()
            .await
            .iter()
            .all(|e| e["kind"] != "stream_ended"),
        "the end is not recorded before the stream ends"
    );

    // The id was learnt from `response.created`: the response can be
    // cancelled while it streams.
    let cancel = send(
        Method::POST,
        &gateway.url("/v1/responses/resp_a_1/cancel"),
        &[],
        "",
    )
    .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text());
    assert_eq!(cancel.json()["status"], "cancelled");
    assert_eq!(a.last().path_and_query, "/v1/responses/resp_a_1/cancel");

    a.state.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("stream completes")
        .unwrap()
        .to_bytes();
    assert_eq!(rest, stream_tail("resp_a_1").concat().as_bytes());
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["decision_seq"], decision["seq"]);
    assert_eq!(end["outcome"], "served");
    assert_eq!(end["error_code"], Value::Null);
    let whole = head.len() + stream_tail("resp_a_1").concat().len();
    assert_eq!(end["response"]["length"], whole);
    assert_eq!(end["released_bytes"], whole);
}

#[tokio::test]
async fn a_client_leaving_a_responses_stream_is_recorded_and_closes_the_upstream() {
    let (a, b) = (
        ResponsesUpstream::start("a").await,
        ResponsesUpstream::start("b").await,
    );
    let (config, _keys) = responses_models(&a.url(), &b.url());
    let gateway = Gateway::start(&config).await;
    let body = r#"{"model":"gpt","stream":true,"input":"go on"}"#;
    let response = open(
        Method::POST,
        &gateway.url(RESPONSES),
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
    assert!(!a.state.stream_dropped.load(Ordering::SeqCst));
    drop(body);
    let mut released = false;
    for _ in 0..60 {
        if a.state.stream_dropped.load(Ordering::SeqCst) {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        released,
        "upstream stream still open 3 s after the client left"
    );
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "error");
    assert_eq!(end["error_code"], "client_disconnected");
    assert!(end["released_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_responses_version_not_approved_is_refused_and_recorded() {
    let (a, b) = (
        ResponsesUpstream::start("a").await,
        ResponsesUpstream::start("b").await,
    );
    let (config, _keys) = responses_models(&a.url(), &b.url());
    let gateway = Gateway::start_pending("", &config).await;
    let reply = send(
        Method::POST,
        &gateway.url(RESPONSES),
        &[("govgate-model-version", "v1")],
        r#"{"model":"gpt","input":"hi"}"#,
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.error_code(), "model_version_not_approved");
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["outcome"], "blocked");
    assert_eq!(decision["route"], "openai.responses");
    assert_eq!(decision["model"], "gpt");
    assert_eq!(decision["version"], "v1");
    assert_eq!(decision["approval_seq"], Value::Null);
    assert!(a.seen().is_empty(), "nothing reached the upstream");
}

/// Deny on the input's text, whether a string or message items; hold when
/// the instructions ask for review.
const RESPONSES_POLICY: &str = r#"package govgate

import rego.v1

# `input` is a string or a list of items; an item's `content` is a
# string or a list of parts.
texts(value) := [value] if is_string(value)

texts(value) := [text | some item in value; some text in content_texts(item.content)] if is_array(value)

content_texts(content) := [content] if is_string(content)

content_texts(content) := [part.text | some part in content; part.type == "input_text"] if is_array(content)

deny contains "the input mentions a password" if {
	input.stage == "request"
	some text in texts(input.request.input)
	contains(lower(text), "password")
}

hold contains "the instructions ask for review" if {
	input.stage == "response"
	contains(input.request.instructions, "review")
	input.response.output[0].content[0].text == "ok"
}

hold contains "streams for auditors are reviewed" if {
	input.stage == "response"
	input.request.stream == true
	input.request.instructions == "for auditors"
}
"#;

#[tokio::test]
async fn responses_calls_are_denied_and_held_by_the_policies() {
    let (a, b) = (
        ResponsesUpstream::start("a").await,
        ResponsesUpstream::start("b").await,
    );
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(policies.path().join("responses.rego"), RESPONSES_POLICY).unwrap();
    let (models, _keys) = responses_models(&a.url(), &b.url());
    let config = format!(
        "{models}\n[review]\npolicies_dir = \"{}\"\n",
        policies.path().display()
    );
    let gateway = Gateway::start(&config).await;

    for input in [
        json!("my Password is hunter2"),
        json!([{"role": "user", "content": "what is the PASSWORD?"}]),
        json!([{"role": "user", "content": [{"type": "input_text", "text": "a password"}]}]),
    ] {
        let body = json!({"model": "gpt", "input": input});
        let denied = send(Method::POST, &gateway.url(RESPONSES), &[], body.to_string()).await;
        assert_eq!(denied.status, 403, "{input}: {}", denied.text());
        assert_eq!(denied.error_code(), "policy_denied");
        assert_eq!(
            denied.json()["error"]["reasons"],
            json!(["the input mentions a password"])
        );
        let decision = gateway.decision(&denied.decision_id()).await;
        assert_eq!(decision["outcome"], "denied");
        assert_eq!(decision["route"], "openai.responses");
        assert_eq!(decision["policy"]["request"]["action"], "deny");
    }
    assert!(a.seen().is_empty(), "a denied call never reaches the model");

    let body = r#"{"model":"gpt","instructions":"needs review","input":"ok"}"#;
    let held = send(Method::POST, &gateway.url(RESPONSES), &[], body).await;
    assert_eq!(held.status, 202, "{}", held.text());
    let id = held.decision_id();
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "held");
    assert_eq!(
        decision["policy"]["response"]["hold"],
        json!(["the instructions ask for review"])
    );
    assert_eq!(
        decision["response"]["length"],
        response_answer("resp_a_1", "ok").len()
    );
    let review_id = held.json()["review_id"].as_str().unwrap().to_owned();
    let approved = admin_call(
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
    assert_eq!(released.body, response_answer("resp_a_1", "ok").as_bytes());
    // The held response, once released, is reachable as any other.
    let fetched = gateway.get("/v1/responses/resp_a_1").await;
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(fetched.body, retrieved("a", "resp_a_1").as_bytes());

    let allowed = r#"{"model":"gpt","instructions":"be brief","input":"ok"}"#;
    let served = send(Method::POST, &gateway.url(RESPONSES), &[], allowed).await;
    assert_eq!(served.status, 200, "{}", served.text());
    let decision = gateway.decision(&served.decision_id()).await;
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["policy"]["request"]["action"], "allow");
    assert_eq!(decision["policy"]["response"]["action"], "allow");
}

#[tokio::test]
async fn kpi_selectors_read_responses_output_items() {
    let a = ResponsesUpstream::start("a").await;
    let config = format!(
        r#"
[[models]]
name = "gpt"
protocol = "openai"
[models.kpi]
window = 10
min_group_size = 1
[models.kpi.outcome]
pointer = "/output/0/content/0/text"
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
        a.url()
    );
    let gateway = Gateway::start(&config).await;
    for (text, region) in [
        ("approve", "north"),
        ("decline", "north"),
        ("approve", "south"),
    ] {
        let body = json!({"model": "gpt", "input": text});
        let reply = send(
            Method::POST,
            &gateway.url(RESPONSES),
            &[("x-govgate-attr-region", region)],
            body.to_string(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // Fetching a stored response again is no new prediction.
    let fetched = gateway.get("/v1/responses/resp_a_1").await;
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    let text = gateway
        .metrics_when(r#"govgate_kpi_rows_total{model="gpt"} 3"#)
        .await;
    for line in [
        r#"govgate_kpi_selection_rate{attribute="region",group="north",model="gpt"} 0.5"#,
        r#"govgate_kpi_selection_rate{attribute="region",group="south",model="gpt"} 1"#,
        r#"govgate_kpi_demographic_parity_difference{attribute="region",model="gpt"} 0.5"#,
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(
        !text.contains(r#"govgate_kpi_selector_misses_total{model="gpt""#),
        "{text}"
    );
}

#[tokio::test]
async fn calls_on_a_created_response_reach_its_upstream_with_its_key_and_are_recorded() {
    let (a, b) = (
        ResponsesUpstream::start("a").await,
        ResponsesUpstream::start("b").await,
    );
    let (config, _keys) = responses_models(&a.url(), &b.url());
    let gateway = Gateway::start(&config).await;
    let caller = [("x-govgate-caller", "svc-1")];
    let created = send(
        Method::POST,
        &gateway.url(RESPONSES),
        &caller,
        r#"{"model":"gpt-b","input":"hi"}"#,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json()["id"], "resp_b_1");
    let approval = approval_seq(&gateway, "gpt-b", "v1").await;

    let calls = [
        (
            Method::GET,
            "/v1/responses/resp_b_1",
            "openai.responses.retrieve",
            retrieved("b", "resp_b_1"),
        ),
        (
            Method::GET,
            "/v1/responses/resp_b_1/input_items?limit=5",
            "openai.responses.input_items",
            r#"{"object":"list","data":[],"server":"b"}"#.to_owned(),
        ),
        (
            Method::POST,
            "/v1/responses/resp_b_1/cancel",
            "openai.responses.cancel",
            r#"{"id":"resp_b_1","object":"response","status":"cancelled","server":"b"}"#.to_owned(),
        ),
        (
            Method::DELETE,
            "/v1/responses/resp_b_1",
            "openai.responses.delete",
            r#"{"id":"resp_b_1","object":"response.deleted","deleted":true,"server":"b"}"#
                .to_owned(),
        ),
    ];
    for (method, path, route, answer) in calls {
        let reply = send(
            method.clone(),
            &gateway.url(path),
            &[
                ("x-govgate-caller", "svc-1"),
                ("authorization", "Bearer callers-own"),
            ],
            "",
        )
        .await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(reply.body, answer.as_bytes(), "{path}");
        let seen = b.last();
        assert_eq!(seen.method, method.as_str());
        assert_eq!(seen.path_and_query, path);
        assert_eq!(seen.headers["api-key"], "secret-b", "{path}");
        assert_eq!(
            seen.headers["authorization"], "Bearer callers-own",
            "gpt-b's key goes in api-key; other headers pass"
        );
        let decision = gateway.decision(&reply.decision_id()).await;
        assert_eq!(decision["route"], route);
        assert_eq!(decision["model"], "gpt-b");
        assert_eq!(decision["version"], "v1");
        assert_eq!(decision["caller"], "svc-1");
        assert_eq!(decision["approval_seq"], approval);
        assert_eq!(decision["outcome"], "served");
        assert_eq!(decision["response"]["length"], answer.len());
    }
    assert_eq!(b.seen().len(), 5);
    assert!(
        a.seen().is_empty(),
        "nothing went to the other model's upstream"
    );

    // An id never created here, or another caller's, is unknown.
    for (path, who) in [
        ("/v1/responses/resp_zzz", "svc-1"),
        ("/v1/responses/resp_b_1", "svc-2"),
        ("/v1/responses/resp_b_1/cancel", "anonymous"),
    ] {
        let method = if path.ends_with("cancel") {
            Method::POST
        } else {
            Method::GET
        };
        let headers: Vec<(&str, &str)> = if who == "anonymous" {
            vec![]
        } else {
            vec![("x-govgate-caller", who)]
        };
        let reply = send(method, &gateway.url(path), &headers, "").await;
        assert_eq!(reply.status, 404, "{path} as {who}: {}", reply.text());
        assert_eq!(reply.error_code(), "unknown_response");
        let decision = gateway.decision(&reply.decision_id()).await;
        assert_eq!(decision["outcome"], "blocked");
        assert_eq!(decision["error_code"], "unknown_response");
        assert_eq!(decision["caller"], who);
        assert_eq!(decision["model"], Value::Null);
    }
    assert_eq!(b.seen().len(), 5, "refusals reach no upstream");
}

#[tokio::test]
async fn a_revoked_versions_responses_are_refused() {
    let (a, b) = (
        ResponsesUpstream::start("a").await,
        ResponsesUpstream::start("b").await,
    );
    let (config, _keys) = responses_models(&a.url(), &b.url());
    let gateway = Gateway::start(&config).await;
    let created = send(
        Method::POST,
        &gateway.url(RESPONSES),
        &[],
        r#"{"model":"gpt","input":"hi"}"#,
    )
    .await;
    assert_eq!(created.json()["id"], "resp_a_1");
    let revoked = admin_call(
        &gateway.admin,
        Some("security-officer"),
        Method::POST,
        "/admin/models/gpt/versions/v1/revoke",
        r#"{"reason":"leaks prompts"}"#,
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    let reply = gateway.get("/v1/responses/resp_a_1").await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.error_code(), "model_version_revoked");
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["outcome"], "blocked");
    assert_eq!(decision["route"], "openai.responses.retrieve");
    assert_eq!(decision["model"], "gpt");
    assert_eq!(decision["version"], "v1");
    assert_eq!(
        a.seen().len(),
        1,
        "only the creating call reached the model"
    );
}

/// The ids survive a restart (the data directory's journal): a response
/// created before it still reaches its upstream, as its creator only; new
/// ones resolve too.
#[tokio::test]
async fn after_a_restart_earlier_response_ids_still_resolve_for_their_creator() {
    let (a, b) = (
        ResponsesUpstream::start("a").await,
        ResponsesUpstream::start("b").await,
    );
    let (config, _keys) = responses_models(&a.url(), &b.url());
    let mut gateway = Gateway::start(&config).await;
    let body = r#"{"model":"gpt","input":"hi"}"#;
    let created = send(Method::POST, &gateway.url(RESPONSES), &[], body).await;
    assert_eq!(created.json()["id"], "resp_a_1");
    assert_eq!(gateway.get("/v1/responses/resp_a_1").await.status, 200);

    assert!(gateway.stop().await.success());
    gateway.restart().await;
    let fetched = gateway.get("/v1/responses/resp_a_1").await;
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(fetched.body, retrieved("a", "resp_a_1").as_bytes());
    let decision = gateway.decision(&fetched.decision_id()).await;
    assert_eq!(decision["route"], "openai.responses.retrieve");
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["model"], "gpt");
    assert_eq!(
        a.seen().len(),
        3,
        "the retrieval after the restart reached upstream a"
    );
    let other = send(
        Method::GET,
        &gateway.url("/v1/responses/resp_a_1"),
        &[("x-govgate-caller", "someone-else")],
        "",
    )
    .await;
    assert_eq!(other.status, 404, "{}", other.text());
    assert_eq!(other.error_code(), "unknown_response");

    let created = send(Method::POST, &gateway.url(RESPONSES), &[], body).await;
    assert_eq!(created.json()["id"], "resp_a_2");
    let fetched = gateway.get("/v1/responses/resp_a_2").await;
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(fetched.body, retrieved("a", "resp_a_2").as_bytes());
}

/// A held stream is read whole; once released, its response (learnt from
/// the held events) resolves like any other.
#[tokio::test]
async fn a_held_responses_stream_is_released_whole_and_its_id_resolves() {
    let (a, b) = (
        ResponsesUpstream::start("a").await,
        ResponsesUpstream::start("b").await,
    );
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(policies.path().join("responses.rego"), RESPONSES_POLICY).unwrap();
    let (models, _keys) = responses_models(&a.url(), &b.url());
    let config = format!(
        "{models}\n[review]\npolicies_dir = \"{}\"\n",
        policies.path().display()
    );
    let gateway = Gateway::start(&config).await;
    // The upstream sends the whole stream without waiting.
    a.state.release.notify_one();
    let body = r#"{"model":"gpt","stream":true,"instructions":"for auditors","input":"hi"}"#;
    let held = send(Method::POST, &gateway.url(RESPONSES), &[], body).await;
    assert_eq!(held.status, 202, "{}", held.text());
    let id = held.decision_id();
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "held");
    let whole = stream_head("resp_a_1") + &stream_tail("resp_a_1").concat();
    assert_eq!(decision["response"]["length"], whole.len());
    let review_id = held.json()["review_id"].as_str().unwrap().to_owned();
    let approved = admin_call(
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
    assert_eq!(released.body, whole.as_bytes());
    let fetched = gateway.get("/v1/responses/resp_a_1").await;
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(fetched.body, retrieved("a", "resp_a_1").as_bytes());
}
