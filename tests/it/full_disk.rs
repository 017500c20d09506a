//! No answer leaves without its record, streams included, while the
//! ledger's disk is full (the real binary under a file-size limit): while
//! the ledger cannot commit, chunked, event-stream and HTTP/1.0 answers
//! are refused whole and the model is not called; a stream whose end
//! cannot be recorded is cut, never ended cleanly; and once the disk has
//! room again, what the clients of forwarded requests got is in the ledger.

use crate::models;
use crate::support::{Gateway, TestUpstream, open, send};
use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Requests until the ledger fails a commit (the first write that grows
/// its file after the limit was lowered).
pub(crate) async fn fill_until_refused(gateway: &Gateway) {
    gateway.fill_disk();
    for _ in 0..200 {
        let reply = send(
            Method::POST,
            &gateway.url("/m/echo"),
            &[("x-govgate-caller", "filler")],
            vec![b'f'; 16 * 1024],
        )
        .await;
        if reply.status == 503 {
            return;
        }
    }
    panic!("the ledger never refused with its disk full");
}

/// Waits until the ledger takes decisions again.
pub(crate) async fn until_recovered(gateway: &Gateway) {
    for _ in 0..200 {
        let reply = send(Method::POST, &gateway.url("/m/echo"), &[], "again").await;
        if reply.status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway did not recover once the disk had room");
}

/// Raw HTTP/1.0 exchange: the response bytes until the server closes, and
/// whether it closed cleanly (EOF) or reset the connection.
async fn http10(gateway: &Gateway, request: &str) -> (Vec<u8>, Result<(), std::io::ErrorKind>) {
    let address = gateway.public.trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(address).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await {
            Ok(Ok(0)) => return (got, Ok(())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(err)) => return (got, Err(err.kind())),
            Err(_) => panic!("HTTP/1.0 answer never ended"),
        }
    }
}

fn decisions_of<'a>(decisions: &'a [Value], caller: &str) -> Vec<&'a Value> {
    decisions.iter().filter(|d| d["caller"] == caller).collect()
}

#[tokio::test]
async fn with_the_disk_full_streams_are_refused_whole_and_the_model_is_not_called() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let body = "0123456789".repeat(20_000);
    fill_until_refused(&gateway).await;
    let calls = upstream.seen().len();

    // Chunked: the upstream answers without a length.
    let chunked = send(
        Method::POST,
        &gateway.url("/m/echo"),
        &[
            ("x-test-answer", "chunked"),
            ("x-govgate-caller", "chunked"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(chunked.status, 503);
    assert_eq!(chunked.error_code(), "ledger_unavailable");
    assert!(
        !chunked.text().contains("0123456789"),
        "no byte of the answer"
    );

    // An event stream.
    let sse = send(
        Method::POST,
        &gateway.url("/m/echo"),
        &[("x-test-answer", "sse"), ("x-govgate-caller", "sse")],
        "event body",
    )
    .await;
    assert_eq!(sse.status, 503);
    assert!(!sse.text().contains("event body"));

    // HTTP/1.0: a close-delimited answer would look complete at the close.
    let (bytes, closed) = http10(
        &gateway,
        "POST /m/echo HTTP/1.0\r\nx-test-answer: chunked\r\nx-govgate-caller: http10\r\n\
         content-length: 10\r\n\r\n0123456789",
    )
    .await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("HTTP/1.0 503") || text.starts_with("HTTP/1.1 503"),
        "{text}"
    );
    assert!(text.contains("ledger_unavailable"), "{text}");
    assert!(!text.ends_with("0123456789"), "{text}");
    assert!(closed.is_ok());
    assert_eq!(upstream.seen().len(), calls, "the model was not called");

    // Room again: the gateway recovers by itself. The request whose
    // decision the full disk refused had been forwarded: it is in the
    // ledger as the 503 its client got.
    gateway.free_disk();
    until_recovered(&gateway).await;
    let mut refused = Vec::new();
    for _ in 0..100 {
        refused = gateway
            .decisions()
            .await
            .into_iter()
            .filter(|d| d["caller"] == "filler" && d["status"] == 503)
            .collect();
        if !refused.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        refused.len(),
        1,
        "the refused forwarded request is recorded once"
    );
    assert_eq!(refused[0]["outcome"], "error");
    assert_eq!(refused[0]["error_code"], "ledger_unavailable");
    // The streams refused before the model was called left no decision
    // that claims an answer.
    let decisions = gateway.decisions().await;
    for caller in ["chunked", "sse", "http10"] {
        assert!(
            decisions_of(&decisions, caller)
                .iter()
                .all(|d| d["outcome"] == "error" && d["status"] == 503),
            "{caller}"
        );
    }
}

#[tokio::test]
async fn a_stream_whose_end_cannot_be_recorded_is_cut_and_recorded_once_there_is_room() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let response = open(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[("x-govgate-caller", "cut")],
        r#"{"model":"chat","stream":true}"#,
    )
    .await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(gateway.decision(&id).await["outcome"], "streaming");
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "data: first\n\n");

    fill_until_refused(&gateway).await;
    upstream.state.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the stream does not hang");
    assert!(
        rest.is_err(),
        "a stream whose end is not recorded never ends cleanly"
    );

    gateway.free_disk();
    until_recovered(&gateway).await;
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "error");
    assert_eq!(end["error_code"], "ledger_unavailable");
    let decision = gateway.decision(&id).await;
    assert_eq!(end["decision_seq"], decision["seq"]);
    let all = "data: first\n\ndata: second\n\ndata: [DONE]\n\n".len();
    assert_eq!(end["response"]["length"], all);
    assert!(end["released_bytes"].as_u64().unwrap() <= all as u64);
}

#[tokio::test]
async fn an_http10_stream_whose_end_cannot_be_recorded_is_reset_not_closed() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let address = gateway.public.trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(address).await.unwrap();
    let body = r#"{"model":"chat","stream":true}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.0\r\nx-govgate-caller: http10\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("data: first") {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the first event");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.0 200"));

    fill_until_refused(&gateway).await;
    upstream.state.release.notify_one();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await {
            Ok(Ok(0)) => break Ok(()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(err)) => break Err(err.kind()),
            Err(_) => panic!("the stream hangs"),
        }
    };
    assert_eq!(
        ended,
        Err(std::io::ErrorKind::ConnectionReset),
        "a close would end a close-delimited body as if complete"
    );
    gateway.free_disk();
}
