//! Streams reach the client as the upstream sends them, recorded twice:
//! the decision before the first byte, the end before the stream's end. A
//! client that leaves mid-stream does not leak the upstream connection.

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
    // The decision was recorded before the first byte left; its end is not.
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "streaming");
    assert_eq!(decision["status"], 200);
    assert_eq!(decision["response"], serde_json::Value::Null);
    assert!(decision["request"]["commitment"].is_string());
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
    assert_eq!(rest, "data: second\n\ndata: [DONE]\n\n");

    // The end of the stream was released only after its end was recorded.
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["decision_seq"], decision["seq"]);
    assert_eq!(end["outcome"], "served");
    assert_eq!(end["error_code"], serde_json::Value::Null);
    assert_eq!(end["model"], "chat");
    let whole = "data: first\n\ndata: second\n\ndata: [DONE]\n\n";
    assert_eq!(end["response"]["length"], whole.len());
    assert_eq!(end["released_bytes"], whole.len());
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
    assert_eq!(gateway.decision(&id).await["outcome"], "streaming");
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "error");
    assert_eq!(end["error_code"], "client_disconnected");
    assert!(end["response"]["length"].as_u64().unwrap() > 0);
    assert!(end["released_bytes"].as_u64().unwrap() > 0);
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
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "error");
    assert_eq!(end["error_code"], "upstream_timeout");
}

#[tokio::test]
async fn an_answer_longer_than_the_buffering_limit_streams_and_ends_served_whole() {
    let upstream = TestUpstream::start().await;
    let rest = format!(
        "[limits]\nmax_buffered_response_bytes = 1000\n{}",
        models(&upstream.url())
    );
    let gateway = Gateway::start(&rest).await;
    let reply = crate::support::send(Method::GET, &gateway.url("/m/big/250000"), &[], "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 250_000);
    let id = reply.decision_id();
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "streaming");
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "served");
    assert_eq!(end["response"]["length"], 250_000);
    // The frame completing the declared length is held until the end is
    // recorded, and counted as released with it.
    assert_eq!(end["released_bytes"], 250_000);
}
