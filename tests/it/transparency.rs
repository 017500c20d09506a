//! Bodies, statuses and headers pass through unchanged; hop-by-hop headers
//! are removed; upstream credentials are added and never shown to callers.

use crate::models;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;

#[tokio::test]
async fn json_body_is_byte_identical_both_ways() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    // Odd spacing, key order and escapes must survive: nothing re-serializes.
    let body = "{ \"messages\":[{\"role\":\"user\",\"content\":\"gr\\u00fc\\u00df dich \u{1F600}\"}] ,\n \"model\": \"chat\",\"temperature\":0.10}";
    let reply = send(
        Method::POST,
        &gateway.url("/v1/chat/completions?trace=1"),
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        body.as_bytes(),
        "client got the upstream's bytes"
    );
    let seen = upstream.only_request();
    assert_eq!(
        seen.body,
        body.as_bytes(),
        "upstream got the client's bytes"
    );
    assert_eq!(seen.path_and_query, "/v1/chat/completions?trace=1");
    assert_eq!(reply.headers["content-type"], "application/json");
}

#[tokio::test]
async fn openai_model_is_renamed_for_the_upstream_and_nothing_else_changes() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let body = r#"{"model" :"chat-renamed", "input": ["a", "b"]}"#;
    let reply = send(Method::POST, &gateway.url("/v1/embeddings"), &[], body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        upstream.only_request().body,
        r#"{"model" :"llama-upstream", "input": ["a", "b"]}"#.as_bytes()
    );
}

#[tokio::test]
async fn binary_body_is_byte_identical_both_ways() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    // Every byte value, 300 KB: more than one read buffer, not valid UTF-8.
    let body: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(7919) % 256) as u8)
        .collect();
    let reply = send(
        Method::PUT,
        &gateway.url("/m/predict/blob"),
        &[("content-type", "application/octet-stream")],
        body.clone(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), body.len());
    assert!(reply.body == body, "client got the upstream's bytes");
    let seen = upstream.only_request();
    assert!(seen.body == body, "upstream got the client's bytes");
    assert_eq!(seen.method, "PUT");
    assert_eq!(
        seen.path_and_query, "/base/predict/blob",
        "prefix replaced by the upstream base path"
    );
}

#[tokio::test]
async fn kserve_routes_map_to_the_versions_upstream_model() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let body = r#"{"inputs":[{"name":"x","shape":[2,1],"datatype":"FP32","data":[1,2]}]}"#;
    let unversioned = gateway.infer(body).await;
    let versioned = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/versions/1/infer"),
        &[],
        body,
    )
    .await;
    let metadata = gateway.get("/v2/models/scorer").await;
    assert_eq!(
        [unversioned.status, versioned.status, metadata.status],
        [200, 200, 200]
    );
    let paths: Vec<String> = upstream
        .seen()
        .into_iter()
        .map(|s| s.path_and_query)
        .collect();
    assert_eq!(
        paths,
        [
            "/v2/models/scorer-two/infer",
            "/v2/models/scorer-one/infer",
            "/v2/models/scorer-two"
        ]
    );
    assert_eq!(
        gateway.decision(&unversioned.decision_id()).await["version"],
        "2"
    );
    assert_eq!(
        gateway.decision(&versioned.decision_id()).await["version"],
        "1"
    );
    assert_eq!(
        gateway.decision(&metadata.decision_id()).await["route"],
        "kserve_v2.metadata"
    );
}

#[tokio::test]
async fn upstream_4xx_and_5xx_pass_through_unchanged() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    for code in [400u16, 404, 418, 429, 500, 503] {
        let reply = send(
            Method::POST,
            &gateway.url(&format!("/m/status/{code}")),
            &[],
            "{}",
        )
        .await;
        assert_eq!(reply.status.as_u16(), code);
        assert_eq!(reply.headers["x-upstream"], "yes");
        let expected =
            format!("{{\"upstream_error\": {code}, \"detail\": \"as the model server said\"}}");
        assert_eq!(
            reply.body,
            expected.as_bytes(),
            "body passed through for {code}"
        );
        let decision = gateway.decision(&reply.decision_id()).await;
        assert_eq!(decision["outcome"], "served");
        assert_eq!(decision["status"], code);
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_credentials_added_but_never_shown() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let reply = send(
        Method::GET,
        &gateway.url("/m/hop"),
        &[
            ("connection", "keep-alive, x-client-hop"),
            ("x-client-hop", "must not pass"),
            ("keep-alive", "timeout=30"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("te", "trailers"),
            ("authorization", "Bearer callers-own-token"),
            ("govgate-model-version", "1"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-end-to-end-request", "kept"),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only_request();
    for name in [
        "x-client-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "govgate-model-version",
    ] {
        assert!(
            !seen.headers.contains_key(name),
            "upstream received `{name}`"
        );
    }
    assert_eq!(
        seen.headers["authorization"], "Bearer test-secret",
        "configured credential replaces the caller's"
    );
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-end-to-end-request"], "kept");
    assert_eq!(seen.headers["host"], upstream.addr.to_string());

    for name in [
        "x-hop-only",
        "keep-alive",
        "proxy-authenticate",
        "authorization",
    ] {
        assert!(
            !reply.headers.contains_key(name),
            "client received `{name}`"
        );
    }
    assert!(!format!("{:?}{:?}", reply.headers, reply.body).contains("test-secret"));
    assert_eq!(reply.headers["x-end-to-end"], "kept");
    assert_eq!(reply.headers["govgate-decision-id"].len(), 32);
    let receipt = format!("/govgate/receipts/{}", reply.decision_id());
    assert_eq!(reply.headers["govgate-receipt"], receipt.as_str());
}

#[tokio::test]
async fn models_without_credentials_pass_the_callers_authorization() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let body = r#"{"model":"chat","messages":[]}"#;
    send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[("authorization", "Bearer mine")],
        body,
    )
    .await;
    assert_eq!(
        upstream.only_request().headers["authorization"],
        "Bearer mine"
    );
}

#[tokio::test]
async fn gateway_own_endpoints_answer_without_upstream() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let list = gateway.get("/v1/models").await;
    let ids: Vec<String> = list.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["chat", "chat-renamed"]);
    assert_eq!(gateway.get("/v2/health/live").await.status, 200);
    assert_eq!(gateway.get("/v2/health/ready").await.status, 200);
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn metrics_live_on_the_admin_port_only() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    // Start-up entries: gateway_started and the test models' governance,
    // each its own commit (each call waits for its entry).
    let before = gateway.entries().await.len();
    gateway.infer("{}").await;
    let public = gateway.get("/metrics").await;
    assert_eq!(public.status, 404);
    let admin = send(Method::GET, &format!("{}/metrics", gateway.admin), &[], "").await;
    assert_eq!(admin.status, 200);
    let text = String::from_utf8_lossy(&admin.body);
    assert!(
        text.contains(
            r#"govgate_requests_total{model="scorer",outcome="served",route="kserve_v2.infer",version="2"} 1"#
        ),
        "{text}"
    );
    // Then the inference and the refused public /metrics call, each
    // acknowledged only after its own commit.
    let after = before + 2;
    assert!(
        text.contains(&format!("govgate_ledger_entries_total {after}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("govgate_ledger_size_entries {after}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"govgate_ledger_commits_total{{result="ok"}} {after}"#
        )),
        "{text}"
    );
    let key = send(
        Method::GET,
        &format!("{}/ledger/key", gateway.admin),
        &[],
        "",
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&key.body).trim(), gateway.vkey);
}
