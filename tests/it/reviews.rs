//! Human review end to end through the real proxy: holds released,
//! overridden, rejected or timed out; flags queued; denials that never
//! reach the upstream; pending reviews across a restart; policy reloads.
//!
//! The test upstream echoes each request body, so a request decides what
//! the response-stage policies see.

use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// Rules keyed on the echoed body, so each test picks its verdict.
pub(crate) const TEST_POLICY: &str = r#"package govgate

deny contains "caller mallory is blocked" if {
	input.stage == "request"
	input.caller == "mallory"
}

hold contains "held for review" if {
	input.stage == "response"
	input.response.hold == true
}

hold contains "slow lane: review within a second" if {
	input.stage == "response"
	input.response.slow_lane == true
}

flag contains "flagged for a look" if {
	input.stage == "response"
	input.response.flag == true
}

deny contains "boom" if {
	input.stage == "request"
	input.request.explode == true
	1 / input.request.zero > 0
}
"#;

pub fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn config(upstream: &str, policies: &Path, review_extra: &str) -> String {
    format!(
        "{}\n[review]\npolicies_dir = \"{}\"\n{review_extra}",
        crate::models(upstream),
        policies.display()
    )
}

pub(crate) async fn start(review_extra: &str) -> (Gateway, TestUpstream, tempfile::TempDir) {
    let upstream = TestUpstream::start().await;
    let policies = policy_dir(&[("test.rego", TEST_POLICY)]);
    let gateway = Gateway::start(&config(&upstream.url(), policies.path(), review_extra)).await;
    (gateway, upstream, policies)
}

pub(crate) async fn infer_as(
    gateway: &Gateway,
    caller: &str,
    body: &str,
) -> crate::support::client::Reply {
    send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[
            ("x-govgate-caller", caller),
            ("content-type", "application/json"),
        ],
        body.to_owned(),
    )
    .await
}

pub(crate) async fn poll(
    gateway: &Gateway,
    decision_id: &str,
    wait: Option<u64>,
) -> crate::support::client::Reply {
    let prefer = wait.map(|secs| format!("wait={secs}"));
    let headers: Vec<(&str, &str)> = prefer
        .as_deref()
        .map(|p| vec![("prefer", p)])
        .unwrap_or_default();
    send(
        Method::GET,
        &gateway.url(&format!("/govgate/decisions/{decision_id}")),
        &headers,
        "",
    )
    .await
}

pub(crate) async fn decide(
    gateway: &Gateway,
    who: &str,
    review_id: &str,
    body: Value,
) -> crate::support::client::Reply {
    admin_call(
        &gateway.admin,
        Some(who),
        Method::POST,
        &format!("/admin/reviews/{review_id}/decide"),
        &body.to_string(),
    )
    .await
}

/// `GET /admin/reviews/{review_id}` on the admin listener `admin`, as `who`.
pub(crate) async fn show_review(
    admin: &str,
    who: &str,
    review_id: &str,
) -> crate::support::client::Reply {
    admin_call(
        admin,
        Some(who),
        Method::GET,
        &format!("/admin/reviews/{review_id}"),
        "",
    )
    .await
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entries of `kind` whose `review_id` is `review_id`.
fn review_entries<'a>(entries: &'a [Value], kind: &str, review_id: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| e["kind"] == kind && e["review_id"] == review_id)
        .collect()
}

/// A held request: its 202 answer's decision id and review id.
pub(crate) async fn held(gateway: &Gateway, body: &str) -> (String, String) {
    let reply = infer_as(gateway, "svc-app", body).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["status"], "pending");
    let decision_id = answer["decision_id"].as_str().unwrap().to_owned();
    assert_eq!(decision_id, reply.decision_id());
    assert_eq!(
        answer["poll"],
        format!("/govgate/decisions/{decision_id}"),
        "poll URL"
    );
    assert_eq!(
        reply.headers["location"].to_str().unwrap(),
        format!("/govgate/decisions/{decision_id}")
    );
    (
        decision_id,
        answer["review_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn hold_then_approve_releases_the_upstream_answer_byte_exact() {
    let (gateway, upstream, _policies) = start("").await;
    // Odd spacing and non-ASCII: a re-serialized answer would differ.
    let body = "{ \"hold\" : true,\n  \"text\": \"r\u{e9}sum\u{e9}  \\u00e9\", \"n\": 1.50 }";
    let (decision_id, review_id) = held(&gateway, body).await;
    assert_eq!(upstream.seen().len(), 1, "the upstream answered once");

    let pending = poll(&gateway, &decision_id, None).await;
    assert_eq!(pending.status, 202);
    assert_eq!(pending.json()["review_id"], review_id.as_str());

    let listed = admin_call(
        &gateway.admin,
        Some("rita"),
        Method::GET,
        "/admin/reviews",
        "",
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let reviews = listed.json()["reviews"].as_array().unwrap().clone();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0]["review_id"], review_id.as_str());
    assert_eq!(reviews[0]["review_kind"], "hold");
    assert_eq!(reviews[0]["reasons"], json!(["held for review"]));
    let shown = show_review(&gateway.admin, "auditor", &review_id).await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    let shown = shown.json();
    assert_eq!(shown["response"]["body"]["hold"], true);
    assert_eq!(shown["request"]["body_format"], "json");
    assert_eq!(shown["version"], "2");
    assert!(shown["decision"].is_null());

    // A long poll that is answered by the approval, well before its 20 s.
    let waiting = {
        let url = gateway.url(&format!("/govgate/decisions/{decision_id}"));
        tokio::spawn(async move { send(Method::GET, &url, &[("prefer", "wait=20")], "").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let approved = decide(&gateway, "rita", &review_id, json!({"verdict": "approve"})).await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(approved.json()["status"], "approved");
    let released = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the long poll returns once decided")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(released.status, 200);
    assert_eq!(&released.body[..], body.as_bytes(), "byte-exact release");
    assert_eq!(released.headers["govgate-review-state"], "approved");
    let again = poll(&gateway, &decision_id, None).await;
    assert_eq!(&again.body[..], body.as_bytes());

    let twice = decide(
        &gateway,
        "rita",
        &review_id,
        json!({"verdict": "reject", "reason": "late"}),
    )
    .await;
    assert_eq!(twice.status, 409);
    assert_eq!(twice.error_code(), "already_decided");
    assert_eq!(twice.json()["error"]["current_state"], "approved");

    let entries = gateway.entries().await;
    let decision = entries
        .iter()
        .find(|e| e["decision_id"] == decision_id.as_str() && e["kind"] == "decision")
        .unwrap();
    assert_eq!(decision["outcome"], "held");
    assert_eq!(decision["status"], 202);
    assert_eq!(decision["policy"]["response"]["action"], "hold");
    assert_eq!(
        decision["policy"]["response"]["hold"],
        json!(["held for review"])
    );
    assert_eq!(decision["policy"]["request"]["action"], "allow");
    let set_seq = entries
        .iter()
        .find(|e| e["kind"] == "policy_set_loaded")
        .unwrap()["seq"]
        .clone();
    assert_eq!(decision["policy"]["set_seq"], set_seq);
    let opened = review_entries(&entries, "review_opened", &review_id);
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["decision_seq"], decision["seq"]);
    assert_eq!(opened[0]["answer_sha256"], sha256_hex(body.as_bytes()));
    let closed = review_entries(&entries, "review_decided", &review_id);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["reviewer"], "rita");
    assert_eq!(closed[0]["verdict"], "approve");
    assert_eq!(closed[0]["outcome"], "released");
    assert_eq!(closed[0]["opened_seq"], opened[0]["seq"]);
    assert_eq!(closed[0]["decision_seq"], decision["seq"]);
    assert!(closed[0]["override_sha256"].is_null());
}

#[tokio::test]
async fn override_releases_the_reviewers_answer_and_the_ledger_holds_both_digests() {
    let (gateway, _upstream, _policies) = start("").await;
    let body = r#"{"hold": true, "score": 0.5}"#;
    let (decision_id, review_id) = held(&gateway, body).await;

    let no_reason = decide(
        &gateway,
        "rita",
        &review_id,
        json!({"verdict": "override", "answer": {"body": {"score": 0.1}}}),
    )
    .await;
    assert_eq!(no_reason.status, 422, "{}", no_reason.text());
    assert_eq!(no_reason.error_code(), "reason_required");
    let not_a_reviewer = decide(&gateway, "ops", &review_id, json!({"verdict": "approve"})).await;
    assert_eq!(not_a_reviewer.status, 403);
    assert_eq!(not_a_reviewer.error_code(), "forbidden");
    assert_eq!(
        poll(&gateway, &decision_id, None).await.status,
        202,
        "refused calls change nothing"
    );

    let overridden = decide(
        &gateway,
        "rita",
        &review_id,
        json!({"verdict": "override", "reason": "score recomputed by hand", "answer": {"status": 200, "content_type": "application/json", "body": {"score": 0.1}}}),
    )
    .await;
    assert_eq!(overridden.status, 200, "{}", overridden.text());
    assert_eq!(overridden.json()["status"], "overridden");
    let released = poll(&gateway, &decision_id, None).await;
    assert_eq!(released.status, 200);
    let override_bytes = br#"{"score":0.1}"#;
    assert_eq!(&released.body[..], override_bytes);
    assert_eq!(released.headers["content-type"], "application/json");
    assert_eq!(released.headers["govgate-review-state"], "overridden");

    let entries = gateway.entries().await;
    let closed = review_entries(&entries, "review_decided", &review_id);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["verdict"], "override");
    assert_eq!(closed[0]["reason"], "score recomputed by hand");
    assert_eq!(closed[0]["answer_sha256"], sha256_hex(body.as_bytes()));
    assert_eq!(closed[0]["override_sha256"], sha256_hex(override_bytes));
    assert_eq!(closed[0]["outcome"], "released");
}

#[tokio::test]
async fn reject_answers_403_and_a_reviewer_may_not_review_their_own_request() {
    let (gateway, _upstream, _policies) = start("").await;
    // rita asks; rita may not decide.
    let reply = infer_as(&gateway, "rita", r#"{"hold": true}"#).await;
    assert_eq!(reply.status, 202);
    let own = reply.json()["review_id"].as_str().unwrap().to_owned();
    let refused = decide(&gateway, "rita", &own, json!({"verdict": "approve"})).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.error_code(), "own_request");

    let (decision_id, review_id) = held(&gateway, r#"{"hold": true}"#).await;
    let no_reason = decide(&gateway, "rita", &review_id, json!({"verdict": "reject"})).await;
    assert_eq!(no_reason.error_code(), "reason_required");
    let rejected = decide(
        &gateway,
        "rita",
        &review_id,
        json!({"verdict": "reject", "reason": "not plausible"}),
    )
    .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text());
    let answer = poll(&gateway, &decision_id, Some(5)).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.error_code(), "review_rejected");
    assert!(answer.text().contains("not plausible"), "{}", answer.text());
    let missing = decide(
        &gateway,
        "rita",
        "0123456789abcdef0123456789abcdef",
        json!({"verdict": "approve"}),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "review_not_found");
    let unknown = poll(&gateway, "0123456789abcdef0123456789abcdef", None).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "decision_not_found");
    let entries = gateway.entries().await;
    let closed = review_entries(&entries, "review_decided", &review_id);
    assert_eq!(closed[0]["outcome"], "rejected");
    assert_eq!(closed[0]["reason"], "not plausible");
}

#[tokio::test]
async fn timeouts_apply_the_configured_outcome_per_reason_and_model() {
    let extra = r#"
timeout_secs = 3600
[[review.timeouts]]
reason_prefix = "slow lane"
timeout_secs = 1
on_timeout = "release"
[[review.timeouts]]
model = "scorer"
timeout_secs = 1
on_timeout = "reject"
"#;
    let (gateway, _upstream, _policies) = start(extra).await;
    let released_body = r#"{"slow_lane": true}"#;
    let (released_id, released_review) = held(&gateway, released_body).await;
    let (rejected_id, rejected_review) = held(&gateway, r#"{"hold": true}"#).await;
    let listed = admin_call(
        &gateway.admin,
        Some("rita"),
        Method::GET,
        "/admin/reviews?kind=hold",
        "",
    )
    .await;
    let outcomes: Vec<Value> = listed.json()["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["on_timeout"].clone())
        .collect();
    assert_eq!(outcomes, [json!("release"), json!("reject")]);

    let released = poll(&gateway, &released_id, Some(10)).await;
    assert_eq!(released.status, 200, "{}", released.text());
    assert_eq!(&released.body[..], released_body.as_bytes());
    assert_eq!(released.headers["govgate-review-state"], "timed_out");
    let rejected = poll(&gateway, &rejected_id, Some(10)).await;
    assert_eq!(rejected.status, 403, "{}", rejected.text());
    assert_eq!(rejected.error_code(), "review_timed_out");
    let late = decide(
        &gateway,
        "rita",
        &rejected_review,
        json!({"verdict": "approve"}),
    )
    .await;
    assert_eq!(late.status, 409);
    assert_eq!(late.json()["error"]["current_state"], "timed_out");

    let entries = gateway.entries().await;
    let timed_out = review_entries(&entries, "review_timed_out", &released_review);
    assert_eq!(timed_out.len(), 1);
    assert_eq!(timed_out[0]["outcome"], "released");
    assert!(timed_out[0]["waited_ms"].as_u64().unwrap() >= 1000);
    let timed_out = review_entries(&entries, "review_timed_out", &rejected_review);
    assert_eq!(timed_out[0]["outcome"], "rejected");
}

#[tokio::test]
async fn flag_releases_the_answer_and_queues_a_review() {
    let (gateway, _upstream, _policies) = start("").await;
    let body = r#"{"flag": true, "x": 1}"#;
    let reply = infer_as(&gateway, "svc-app", body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(&reply.body[..], body.as_bytes(), "released at once");
    let decision_id = reply.decision_id();
    // Queued in the background: wait for it.
    let flagged = flags_listed(&gateway, 1).await;
    assert_eq!(flagged.len(), 1, "one flag queued");
    assert_eq!(flagged[0]["decision_id"], decision_id.as_str());
    assert_eq!(flagged[0]["reasons"], json!(["flagged for a look"]));
    let review_id = flagged[0]["review_id"].as_str().unwrap().to_owned();
    let shown = show_review(&gateway.admin, "rita", &review_id).await;
    assert_eq!(shown.json()["response"]["body"]["x"], 1);
    let overriding = decide(
        &gateway,
        "rita",
        &review_id,
        json!({"verdict": "override", "reason": "r", "answer": {"body": "x"}}),
    )
    .await;
    assert_eq!(overriding.status, 409);
    assert_eq!(overriding.error_code(), "override_not_allowed");
    let approved = decide(
        &gateway,
        "rita",
        &review_id,
        json!({"verdict": "approve", "reason": "fine"}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(
        poll(&gateway, &decision_id, None).await.status,
        404,
        "nothing is held for a flag"
    );

    let entries = gateway.entries().await;
    let decision = entries
        .iter()
        .find(|e| e["kind"] == "decision" && e["decision_id"] == decision_id.as_str())
        .unwrap();
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["policy"]["response"]["action"], "flag");
    let opened = review_entries(&entries, "review_opened", &review_id);
    assert_eq!(opened[0]["review_kind"], "flag");
    assert_eq!(opened[0]["decision_seq"], decision["seq"]);
    assert_eq!(
        review_entries(&entries, "review_decided", &review_id)[0]["outcome"],
        "reviewed"
    );
}

/// The flag reviews listed, once `n` are queued (they are queued in the
/// background after the answer went out).
pub(crate) async fn flags_listed(gateway: &Gateway, n: usize) -> Vec<Value> {
    let mut flagged = Vec::new();
    for _ in 0..100 {
        let listed = admin_call(
            &gateway.admin,
            Some("rita"),
            Method::GET,
            "/admin/reviews?kind=flag&status=pending",
            "",
        )
        .await;
        flagged = listed.json()["reviews"].as_array().unwrap().clone();
        if flagged.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    flagged
}

#[tokio::test]
async fn flags_have_no_file_and_pending_ones_are_queued_again_from_the_ledger_after_a_kill() {
    let (mut gateway, _upstream, _policies) = start("").await;
    let first = infer_as(&gateway, "svc-app", r#"{"flag": true, "n": 1}"#).await;
    let second = infer_as(&gateway, "svc-app", r#"{"flag": true, "n": 2}"#).await;
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (200, 200));
    let flagged = flags_listed(&gateway, 2).await;
    assert_eq!(flagged.len(), 2, "{flagged:?}");
    let review_of = |decision: &str| {
        flagged
            .iter()
            .find(|r| r["decision_id"] == decision)
            .unwrap()["review_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (first_review, second_review) = (
        review_of(&first.decision_id()),
        review_of(&second.decision_id()),
    );
    let reviews_dir = gateway.dir.path().join("data").join("reviews");
    let files = || std::fs::read_dir(&reviews_dir).map_or(0, |dir| dir.count());
    assert_eq!(files(), 0, "a flag writes no file");
    let approved = decide(
        &gateway,
        "rita",
        &first_review,
        json!({"verdict": "approve"}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(files(), 0, "nor does its verdict");

    gateway.kill().await;
    gateway.restart().await;

    let pending = flags_listed(&gateway, 1).await;
    assert_eq!(pending.len(), 1, "only the undecided flag: {pending:?}");
    assert_eq!(pending[0]["review_id"], second_review.as_str());
    assert_eq!(
        pending[0]["caller"], "svc-app",
        "caller from the decision entry"
    );
    assert_eq!(pending[0]["reasons"], json!(["flagged for a look"]));
    assert_eq!(pending[0]["model"], "scorer");
    let shown = admin_call(
        &gateway.admin,
        Some("rita"),
        Method::GET,
        &format!("/admin/reviews/{second_review}"),
        "",
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json()["bodies_kept"], false);
    assert_eq!(shown.json()["response"], Value::Null);
    let rejected = decide(
        &gateway,
        "rita",
        &second_review,
        json!({"verdict": "reject", "reason": "a finding"}),
    )
    .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text());
    let entries = gateway.entries().await;
    let decided = review_entries(&entries, "review_decided", &second_review);
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["verdict"], "reject");
    let decision = entries
        .iter()
        .find(|e| e["kind"] == "decision" && e["decision_id"] == second.decision_id().as_str())
        .unwrap();
    assert_eq!(
        shown.json()["policy"]["set_seq"],
        decision["policy"]["set_seq"],
        "the policy set from the decision entry"
    );
    assert_eq!(flags_listed(&gateway, 0).await.len(), 0);
}

#[tokio::test]
async fn deny_at_the_request_stage_never_calls_the_upstream() {
    let (gateway, upstream, _policies) = start("").await;
    let reply = infer_as(&gateway, "mallory", r#"{"hold": true}"#).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.error_code(), "policy_denied");
    assert_eq!(
        reply.json()["error"]["reasons"],
        json!(["caller mallory is blocked"])
    );
    assert!(upstream.seen().is_empty(), "the upstream was never called");
    let decision = gateway.wait_for_decision(&reply.decision_id()).await;
    assert_eq!(decision["outcome"], "denied");
    assert_eq!(decision["error_code"], "policy_denied");
    assert_eq!(decision["policy"]["request"]["action"], "deny");
    assert!(decision["policy"]["response"].is_null());

    // A rule that fails at run time: the default (deny) applies, counted.
    let reply = infer_as(
        &gateway,
        "svc-app",
        r#"{"explode": true, "zero": "not a number"}"#,
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.error_code(), "policy_denied");
    assert!(upstream.seen().is_empty());
    let decision = gateway.wait_for_decision(&reply.decision_id()).await;
    assert!(
        decision["policy"]["request"]["error"].is_string(),
        "{decision}"
    );
    let metrics = send(Method::GET, &format!("{}/metrics", gateway.admin), &[], "")
        .await
        .text();
    assert!(
        metrics.contains("govgate_policy_eval_errors_total{default=\"deny\",stage=\"request\"} 1"),
        "{metrics}"
    );
    // And an allowed request goes through.
    let reply = infer_as(&gateway, "svc-app", r#"{"plain": true}"#).await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test]
async fn pending_reviews_survive_a_restart_and_stay_decidable() {
    let (mut gateway, _upstream, _policies) = start("").await;
    let first_body = r#"{"hold": true, "n": 1}"#;
    let (first, first_review) = held(&gateway, first_body).await;
    let (second, _) = held(&gateway, r#"{"hold": true, "n": 2}"#).await;
    gateway.kill().await;
    gateway.restart().await;

    let listed = admin_call(
        &gateway.admin,
        Some("rita"),
        Method::GET,
        "/admin/reviews",
        "",
    )
    .await;
    let reviews = listed.json()["reviews"].as_array().unwrap().clone();
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    assert!(reviews.iter().all(|r| r["status"] == "pending"));
    assert_eq!(poll(&gateway, &second, None).await.status, 202);
    let approved = decide(
        &gateway,
        "rita",
        &first_review,
        json!({"verdict": "approve"}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    let released = poll(&gateway, &first, None).await;
    assert_eq!(released.status, 200);
    assert_eq!(&released.body[..], first_body.as_bytes());
    assert_eq!(poll(&gateway, &second, None).await.status, 202);
    let metrics = send(Method::GET, &format!("{}/metrics", gateway.admin), &[], "")
        .await
        .text();
    assert!(
        metrics.contains("govgate_reviews_pending{kind=\"hold\",model=\"scorer\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_broken_policy_on_reload_keeps_the_old_set_and_says_why() {
    let (gateway, upstream, policies) = start("").await;
    std::fs::write(
        policies.path().join("broken.rego"),
        "package govgate\n\ndeny contains \"x\" if {\n  input.stage ==\n}\n",
    )
    .unwrap();
    let reply = admin_call(
        &gateway.admin,
        Some("ops"),
        Method::POST,
        "/admin/policies/reload",
        "",
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert_eq!(reply.error_code(), "policy_invalid");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with("broken.rego:"), "{message}");
    let first_set = gateway
        .entries()
        .await
        .iter()
        .filter(|e| e["kind"] == "policy_set_loaded")
        .map(|e| e["seq"].clone())
        .collect::<Vec<_>>();
    assert_eq!(
        first_set.len(),
        1,
        "nothing recorded for a set that did not load"
    );
    assert_eq!(reply.json()["error"]["kept_set_seq"], first_set[0]);
    let not_admin = admin_call(
        &gateway.admin,
        Some("rita"),
        Method::POST,
        "/admin/policies/reload",
        "",
    )
    .await;
    assert_eq!(not_admin.status, 403);
    // The old set still decides.
    assert_eq!(
        infer_as(&gateway, "mallory", "{}").await.error_code(),
        "policy_denied"
    );

    // Fixed, with a new rule, and reloaded by SIGHUP.
    std::fs::write(
        policies.path().join("broken.rego"),
        "package govgate\n\ndeny contains \"eve is blocked too\" if {\n  input.stage == \"request\"\n  input.caller == \"eve\"\n}\n",
    )
    .unwrap();
    gateway.signal("HUP");
    let mut sets = Vec::new();
    for _ in 0..100 {
        sets = gateway
            .entries()
            .await
            .into_iter()
            .filter(|e| e["kind"] == "policy_set_loaded")
            .collect();
        if sets.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sets.len(), 2, "the reload is recorded");
    assert_eq!(sets[1]["files"].as_array().unwrap().len(), 2);
    // The set is recorded first and put in force just after: wait until
    // the admin API shows it in force.
    let mut in_force = Value::Null;
    for _ in 0..100 {
        in_force = admin_call(
            &gateway.admin,
            Some("auditor"),
            Method::GET,
            "/admin/policies",
            "",
        )
        .await
        .json()["set_seq"]
            .clone();
        if in_force == sets[1]["seq"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_force, sets[1]["seq"], "the reloaded set is in force");
    let eve = infer_as(&gateway, "eve", "{}").await;
    assert_eq!(eve.error_code(), "policy_denied");
    let decision = gateway.wait_for_decision(&eve.decision_id()).await;
    assert_eq!(decision["policy"]["set_seq"], sets[1]["seq"]);
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn the_independent_verifier_accepts_a_real_log_with_every_review_step() {
    let extra = "[[review.timeouts]]\nreason_prefix = \"slow lane\"\ntimeout_secs = 1\non_timeout = \"release\"\n";
    let (mut gateway, _upstream, _policies) = start(extra).await;
    let (_, approved) = held(&gateway, r#"{"hold": true, "n": 1}"#).await;
    let (_, overridden) = held(&gateway, r#"{"hold": true, "n": 2}"#).await;
    let (_, rejected) = held(&gateway, r#"{"hold": true, "n": 3}"#).await;
    let (timed_out, _) = held(&gateway, r#"{"slow_lane": true}"#).await;
    let (_, left_pending) = held(&gateway, r#"{"hold": true, "n": 4}"#).await;
    for (review, body) in [
        (&approved, json!({"verdict": "approve"})),
        (
            &overridden,
            json!({"verdict": "override", "reason": "r", "answer": {"body": "plain text"}}),
        ),
        (&rejected, json!({"verdict": "reject", "reason": "no"})),
    ] {
        let reply = decide(&gateway, "rita", review, body).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(poll(&gateway, &timed_out, Some(10)).await.status, 200);
    assert_eq!(infer_as(&gateway, "mallory", "{}").await.status, 403);
    assert_eq!(
        infer_as(&gateway, "svc-app", r#"{"flag": true}"#)
            .await
            .status,
        200
    );
    let kinds: Vec<String> = gateway
        .entries()
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in ["review_opened", "review_decided", "review_timed_out"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    gateway.stop().await;
    let out = gateway.dir.path().join("bundle");
    let export = gateway.cli(&["export", "--out", out.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let python = crate::support::python_verifier(&[
        "bundle".as_ref(),
        "--vkey".as_ref(),
        gateway.vkey.as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        python.status.success(),
        "{}{}",
        String::from_utf8_lossy(&python.stdout),
        String::from_utf8_lossy(&python.stderr)
    );
    // A decided verdict changed afterwards is caught (the chain and the tree cover it).
    let entries = out.join("entries.jsonl");
    let text = std::fs::read_to_string(&entries).unwrap();
    assert!(text.contains("\"verdict\":\"reject\""));
    std::fs::write(
        &entries,
        text.replacen("\"verdict\":\"reject\"", "\"verdict\":\"approve\"", 1),
    )
    .unwrap();
    let tampered = crate::support::python_verifier(&[
        "bundle".as_ref(),
        "--vkey".as_ref(),
        gateway.vkey.as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(tampered.status.code(), Some(1));
    assert_eq!(left_pending.len(), 32, "a review left pending at the stop");
}
