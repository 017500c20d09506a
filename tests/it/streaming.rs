//! Streams reach the client as the upstream sends them; a client that
//! leaves mid-stream does not leak the upstream connection.

use crate::models;
use crate::support::{Gateway, TestUpstream, open};
use http::Method;
use http_body_util::BodyExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn sse_first_event_arrives_while_the_upstream_pauses() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let body = r#"{"model":"chat","stream":true,"messages":[]}"#;
    let response = open(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[],
        body,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();

    // The upstream holds `second` until released, so `first` can only
    // arrive now if the gateway forwards without buffering.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event arrives while the upstream is paused")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "data: first\n\n");
    assert!(
        gateway
            .decisions()
            .await
            .iter()
            .all(|d| d["decision_id"] != id.as_str()),
        "not recorded before the stream ends"
    );

    upstream.state.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("stream completes")
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "data: second\n\ndata: [DONE]\n\n");

    // The end of the stream was released only after the decision was recorded.
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "served");
    let whole = "data: first\n\ndata: second\n\ndata: [DONE]\n\n";
    assert_eq!(decision["response"]["length"], whole.len());
}

#[tokio::test]
async fn client_leaving_mid_stream_closes_the_upstream_connection() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let response = open(Method::GET, &gateway.url("/m/forever"), &[], "").await;
    let id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();
    for _ in 0..3 {
        body.frame().await.unwrap().unwrap();
    }
    assert!(!upstream.state.stream_dropped.load(Ordering::SeqCst));
    // Dropping the body (and its client, whose pool we never reuse) closes the client connection.
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
    let decision = gateway.wait_for_decision(&id).await;
    assert_eq!(decision["outcome"], "error");
    assert_eq!(decision["error_code"], "client_disconnected");
    assert!(decision["response"]["length"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn upstream_going_silent_mid_stream_is_cut_after_the_idle_timeout() {
    let upstream = TestUpstream::start().await;
    let rest = format!("[timeouts]\nidle_ms = 300\n{}", models(&upstream.url()));
    let gateway = Gateway::start(&rest).await;
    let body = r#"{"model":"chat","stream":true,"messages":[]}"#;
    let response = open(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[],
        body,
    )
    .await;
    let id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // `second` never comes (not released): the stream must end in an error, not hang.
    let result = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("stream does not hang past the idle timeout");
    assert!(
        result.is_err(),
        "an incomplete stream must not look complete"
    );
    let decision = gateway.wait_for_decision(&id).await;
    assert_eq!(decision["error_code"], "upstream_timeout");
}
