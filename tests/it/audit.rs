//! A stopped gateway's ledger, with answers read whole, streamed and cut
//! mid-stream, passes the offline audit: `govgate verify` of the store, and
//! both verifiers on the whole log and on a model's bundle, with payloads.

use crate::models;
use crate::support::{Gateway, TestUpstream, open};
use http::Method;
use http_body_util::BodyExt;
use std::time::Duration;

#[tokio::test]
async fn whole_streamed_and_cut_answers_pass_the_offline_audit() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    assert_eq!(gateway.infer("{}").await.status, 200);

    let body = r#"{"model":"chat","stream":true,"messages":[]}"#;
    let streamed = open(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[],
        body,
    )
    .await;
    assert_eq!(streamed.status(), 200);
    upstream.state.release.notify_one();
    tokio::time::timeout(Duration::from_secs(5), streamed.into_body().collect())
        .await
        .expect("stream completes")
        .unwrap();

    // A stream the client leaves: recorded in the background.
    let cut = open(Method::GET, &gateway.url("/m/forever"), &[], "").await;
    let id = cut.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = cut.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    gateway.wait_for_decision(&id).await;

    gateway.stop().await;
    let audit = gateway.audit_offline(&["chat"]);
    assert!(audit.store.contains("ledger ok:"), "{}", audit.store);
    assert!(!audit.store.contains("open streams"), "{}", audit.store);
    // Both streams were recorded at their head and at their end.
    let entries =
        std::fs::read_to_string(gateway.dir.path().join("audit-whole/entries.jsonl")).unwrap();
    let kinds: Vec<(String, String)> = entries
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|e| e["kind"] == "stream_ended" || e["outcome"] == "streaming")
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let kinds: Vec<(&str, &str)> = kinds
        .iter()
        .map(|(k, o)| (k.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("decision", "streaming"),
            ("stream_ended", "served"),
            ("decision", "streaming"),
            ("stream_ended", "error"),
        ]
    );
    for (rust, python) in std::iter::once(&audit.whole).chain(&audit.models) {
        assert!(rust.contains(" ok: origin"), "{rust}");
        assert!(python.contains("OK "), "{python}");
        assert!(!python.contains("FAIL"), "{python}");
    }
}
