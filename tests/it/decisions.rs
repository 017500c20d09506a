//! Exactly one decision per request, proxied or refused, each named by the
//! id the client received.

use crate::models;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use std::collections::HashSet;

#[tokio::test]
async fn every_request_yields_exactly_one_decision_with_the_clients_id() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let requests: [(Method, &str, &str, &str); 6] = [
        (
            Method::POST,
            "/v1/chat/completions",
            r#"{"model":"chat","messages":[]}"#,
            "served",
        ),
        (
            Method::POST,
            "/v1/chat/completions",
            r#"{"model":"ghost"}"#,
            "blocked",
        ),
        (Method::POST, "/v1/chat/completions", "garbage", "error"),
        (Method::POST, "/v2/models/scorer/infer", "{}", "served"),
        (Method::GET, "/m/status/500", "", "served"),
        (Method::GET, "/unrouted", "", "error"),
    ];
    let mut ids = Vec::new();
    for (method, path, body, outcome) in requests {
        let reply = send(
            method,
            &gateway.url(path),
            &[("x-govgate-caller", "auditor-test")],
            body,
        )
        .await;
        let decision = gateway.decision(&reply.decision_id()).await;
        assert_eq!(decision["outcome"], outcome, "{path} {body}");
        assert_eq!(decision["status"], reply.status.as_u16());
        assert_eq!(decision["caller"], "auditor-test");
        assert_eq!(decision["request"]["length"], body.len());
        ids.push(reply.decision_id());
    }
    let recorded: Vec<String> = gateway
        .decisions()
        .await
        .iter()
        .map(|d| d["decision_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        recorded.len(),
        ids.len(),
        "one decision per request, no more"
    );
    assert_eq!(
        recorded.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
}

#[tokio::test]
async fn captures_are_bounded_but_lengths_exact() {
    let upstream = TestUpstream::start().await;
    let rest = format!("[limits]\ncapture_bytes = 16\n{}", models(&upstream.url()));
    let gateway = Gateway::start(&rest).await;
    let body = "0123456789abcdefghijklmnopqrstuvwxyz";
    let reply = send(
        Method::POST,
        &gateway.url("/m/echo"),
        &[("content-type", "text/plain")],
        body,
    )
    .await;
    assert_eq!(reply.body, body.as_bytes(), "the client gets everything");
    let decision = gateway.decision(&reply.decision_id()).await;
    for side in ["request", "response"] {
        assert_eq!(decision[side]["captured"], 16, "{side}");
        assert_eq!(decision[side]["length"], 36, "{side}");
        assert_eq!(
            decision[side]["commitment"].as_str().unwrap().len(),
            64,
            "{side}"
        );
    }
    let timings = &decision["timings"];
    assert!(
        timings["upstream_head_us"].as_u64().unwrap() <= timings["complete_us"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn sigterm_drains_exits_cleanly_and_restart_continues_the_chain() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let reply = gateway.infer("{}").await;
    let status = gateway.stop().await;
    assert!(status.success(), "exit status {status}");

    gateway.restart().await;
    assert_eq!(
        gateway.decision(&reply.decision_id()).await["outcome"],
        "served"
    );
    // Registry entries (the test versions' approvals) left out.
    let kinds: Vec<String> = gateway
        .entries()
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .filter(|kind| !kind.starts_with("version_"))
        .collect();
    assert_eq!(
        kinds,
        [
            "entry_signatures_set",
            "gateway_started",
            "decision",
            "gateway_stopped",
            "gateway_started"
        ]
    );
}
