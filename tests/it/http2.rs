//! HTTP/2 end to end: h2c with prior knowledge and h2 by ALPN on the
//! public listener, HTTP/2 to upstreams (h2c, and h2 by ALPN over TLS),
//! byte-exact bodies, streams with their timing and their end recorded,
//! trailers, and the configured stream limit.

use crate::listener_tls::{Ca, tls_section};
use crate::support::{Gateway, TestUpstream};
use bytes::Bytes;
use http::{Method, Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// One model per protocol, its upstream spoken to with `http`.
fn models_over(upstream: &str, http: &str) -> String {
    format!(
        r#"
[[models]]
name = "chat"
protocol = "openai"
[[models.versions]]
version = "v1"
upstream = "{upstream}"
http = "{http}"

[[models]]
name = "raw"
protocol = "http"
path_prefix = "/m"
http = "{http}"
[[models.versions]]
version = "1"
upstream = "{upstream}/base"
"#
    )
}

fn authority(url: &str) -> &str {
    url.split_once("://").unwrap().1.trim_end_matches('/')
}

/// An HTTP/2 connection with prior knowledge (h2c) to `url`'s host.
async fn h2c(url: &str) -> SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(authority(url)).await.unwrap();
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c handshake");
    tokio::spawn(connection);
    send
}

fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body)).unwrap()
}

async fn call(
    send: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Response<Incoming> {
    send.ready().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), send.send_request(request))
        .await
        .expect("answer in time")
        .expect("answer")
}

fn decision_id(response: &Response<Incoming>) -> String {
    response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Every byte value, 300 KB: many frames, more than one window's update.
fn binary_body() -> Bytes {
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(7919) % 256) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test]
async fn h2c_client_to_an_http1_upstream_bytes_exact_and_recorded() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models_over(&upstream.url(), "http1")).await;
    let mut send = h2c(&gateway.public).await;
    let body = binary_body();
    let response = call(
        &mut send,
        request(
            Method::PUT,
            &gateway.url("/m/predict/blob?x=1"),
            &[("content-type", "application/octet-stream")],
            body.clone(),
        ),
    )
    .await;
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let id = decision_id(&response);
    let got = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(got.len(), body.len());
    assert!(got == body, "client got the upstream's bytes");
    let seen = upstream.only_request();
    assert_eq!(seen.version, Version::HTTP_11, "HTTP/1.1 upstream");
    assert!(seen.body == body, "upstream got the client's bytes");
    assert_eq!(seen.path_and_query, "/base/predict/blob?x=1");
    // The Host the upstream sees names the upstream, not the gateway.
    assert_eq!(seen.headers["host"], authority(&upstream.url()));
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["status"], 200);
    assert_eq!(decision["model"], "raw");
    assert_eq!(decision["request"]["length"], body.len());
    assert_eq!(decision["response"]["length"], body.len());

    // HTTP/1.1 still works on the same port.
    let reply = crate::support::send(Method::PUT, &gateway.url("/m/x"), &[], "one").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "one");
}

#[tokio::test]
async fn h2c_client_to_an_h2c_upstream_bytes_exact_without_connection_headers() {
    let upstream = TestUpstream::start_h2c().await;
    let gateway = Gateway::start(&models_over(&upstream.url(), "http2")).await;
    let mut send = h2c(&gateway.public).await;
    let body = r#"{ "model":"chat", "messages":[{"role":"user","content":"gr\u00fc\u00df"}] }"#;
    let response = call(
        &mut send,
        request(
            Method::POST,
            &gateway.url("/v1/chat/completions"),
            &[("content-type", "application/json"), ("te", "trailers")],
            Bytes::from(body),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let id = decision_id(&response);
    let got = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(got, body.as_bytes());
    let seen = upstream.only_request();
    assert_eq!(seen.version, Version::HTTP_2, "h2c upstream");
    assert_eq!(seen.body, body.as_bytes());
    for name in ["connection", "keep-alive", "transfer-encoding", "upgrade"] {
        assert!(!seen.headers.contains_key(name), "{name} sent on h2");
    }
    assert_eq!(seen.headers["te"], "trailers", "te: trailers passes on h2");
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["model"], "chat");
    assert_eq!(decision["response"]["length"], body.len());
}

#[tokio::test]
async fn sse_over_h2_first_event_arrives_while_the_upstream_pauses_and_the_end_is_recorded_first() {
    let upstream = TestUpstream::start_h2c().await;
    let gateway = Gateway::start(&models_over(&upstream.url(), "http2")).await;
    let mut send = h2c(&gateway.public).await;
    let response = call(
        &mut send,
        request(
            Method::POST,
            &gateway.url("/v1/chat/completions"),
            &[],
            Bytes::from_static(br#"{"model":"chat","stream":true,"messages":[]}"#),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let id = decision_id(&response);
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event arrives while the upstream is paused")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "data: first\n\n");
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "streaming");
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
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["decision_seq"], decision["seq"]);
    assert_eq!(end["outcome"], "served");
    let whole = "data: first\n\ndata: second\n\ndata: [DONE]\n\n";
    assert_eq!(end["response"]["length"], whole.len());
    assert_eq!(end["released_bytes"], whole.len());
}

#[tokio::test]
async fn trailers_from_an_h2_upstream_reach_an_h2_client() {
    let upstream = TestUpstream::start_h2c().await;
    let gateway = Gateway::start(&models_over(&upstream.url(), "http2")).await;
    let mut send = h2c(&gateway.public).await;
    let response = call(
        &mut send,
        request(
            Method::POST,
            &gateway.url("/m/svc/trailers"),
            &[("te", "trailers")],
            Bytes::from_static(b"payload"),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let id = decision_id(&response);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(collected.to_bytes(), "payload");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-checksum"], "c0ffee");
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "served");
    assert_eq!(end["released_bytes"], 7);
}

#[tokio::test]
async fn the_public_listener_speaks_h2_by_alpn_over_tls() {
    let upstream = TestUpstream::start().await;
    let ca = Ca::new();
    let certs = tempfile::tempdir().unwrap();
    ca.issue_into(certs.path());
    let gateway = Gateway::start_with(
        &tls_section("public_tls", certs.path(), 0),
        &models_over(&upstream.url(), "http1"),
    )
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(authority(&gateway.public))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let body = binary_body();
    let response = call(
        &mut send,
        request(Method::POST, &gateway.url("/m/tls"), &[], body.clone()),
    )
    .await;
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let id = decision_id(&response);
    let got = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        got == body,
        "client got the upstream's bytes over h2 and TLS"
    );
    // The gateway's own routes answer on the same h2 connection.
    let receipt = call(
        &mut send,
        request(
            Method::GET,
            &gateway.url(&format!("/govgate/receipts/{id}/entry")),
            &[],
            Bytes::new(),
        ),
    )
    .await;
    assert_eq!(receipt.status(), 200);
    let entry = receipt.into_body().collect().await.unwrap().to_bytes();
    let entry: serde_json::Value = serde_json::from_slice(&entry).unwrap();
    assert_eq!(entry["outcome"], "served");
    assert_eq!(entry["response"]["length"], body.len());
}

#[tokio::test]
async fn an_https_upstream_is_spoken_to_in_h2_by_alpn() {
    let (ca_pem, chain, key) = crate::tls::private_ca();
    let upstream = TestUpstream::start_tls_h2(chain, key).await;
    let url = format!("https://127.0.0.1:{}", upstream.addr.port());
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    for http in ["auto", "http2"] {
        let gateway = Gateway::start(&format!(
            "[upstream_tls]\nca_file = \"{}\"\n{}",
            ca_file.display(),
            models_over(&url, http)
        ))
        .await;
        let reply =
            crate::support::send(Method::POST, &gateway.url("/m/alpn"), &[], "over h2").await;
        assert_eq!(reply.status, 200, "{http}: {:?}", reply.body);
        assert_eq!(reply.body, "over h2");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|seen| seen.version == Version::HTTP_2));
    assert!(seen.iter().all(|seen| seen.path_and_query == "/base/alpn"));
}

#[tokio::test]
async fn max_concurrent_streams_is_enforced_as_configured() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start_with(
        "[server.http2]\nmax_concurrent_streams = 2\n",
        &models_over(&upstream.url(), "http1"),
    )
    .await;
    let tcp = TcpStream::connect(authority(&gateway.public))
        .await
        .unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.expect("h2c handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut send = send.ready().await.unwrap();
    // One exchange, so the server's SETTINGS have been read.
    let (answer, _) = send
        .send_request(
            Request::post(gateway.url("/m/pause")).body(()).unwrap(),
            true,
        )
        .unwrap();
    assert_eq!(answer.await.unwrap().status(), 200);
    assert_eq!(send.current_max_send_streams(), 2);

    // Three slow requests at once: the third can only start when one of
    // the first two ends.
    let started = Instant::now();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let mut ready = send.clone().ready().await.unwrap();
        let (answer, _) = ready
            .send_request(
                Request::post(gateway.url("/m/pause")).body(()).unwrap(),
                true,
            )
            .unwrap();
        answers.push(answer);
    }
    for answer in answers {
        assert_eq!(answer.await.unwrap().status(), 200);
    }
    let pause = crate::support::upstream::PAUSE;
    assert!(
        started.elapsed() >= pause * 2,
        "three requests of {pause:?} on two streams took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_h2c_upstream_has_the_same_first_byte_and_idle_timeouts() {
    let upstream = TestUpstream::start_h2c().await;
    let gateway = Gateway::start(&format!(
        "[timeouts]\nfirst_byte_ms = 300\nidle_ms = 300\n{}",
        models_over(&upstream.url(), "http2")
    ))
    .await;
    let mut send = h2c(&gateway.public).await;
    // The upstream answers after 3 s: 504 after the first-byte timeout.
    let started = Instant::now();
    let response = call(
        &mut send,
        request(Method::POST, &gateway.url("/m/slow"), &[], Bytes::new()),
    )
    .await;
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let id = decision_id(&response);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert_eq!(gateway.decision(&id).await["outcome"], "error");

    // A stream whose upstream goes silent is cut after the idle timeout,
    // never ended cleanly, its end recorded.
    let response = call(
        &mut send,
        request(
            Method::POST,
            &gateway.url("/v1/chat/completions"),
            &[],
            Bytes::from_static(br#"{"model":"chat","stream":true,"messages":[]}"#),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let id = decision_id(&response);
    let collected = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("the stream is cut in time");
    assert!(collected.is_err(), "a cut stream is not ended cleanly");
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "error");
    assert_eq!(end["error_code"], "upstream_timeout");
    assert_eq!(end["released_bytes"], "data: first\n\n".len());
}

#[tokio::test]
async fn a_stream_whose_end_cannot_be_recorded_resets_its_stream_alone() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models_over(&upstream.url(), "http1")).await;
    let mut send = h2c(&gateway.public).await;
    let response = call(
        &mut send,
        request(
            Method::POST,
            &gateway.url("/v1/chat/completions"),
            &[],
            Bytes::from_static(br#"{"model":"chat","stream":true,"messages":[]}"#),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let id = decision_id(&response);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "data: first\n\n");

    crate::full_disk::fill_until_refused(&gateway).await;
    upstream.state.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the stream does not hang");
    let err = rest.expect_err("a stream whose end is not recorded never ends cleanly");
    let reset = std::error::Error::source(&err)
        .and_then(|source| source.downcast_ref::<h2::Error>())
        .and_then(h2::Error::reason);
    assert_eq!(reset, Some(h2::Reason::INTERNAL_ERROR), "{err:?}");

    gateway.free_disk();
    crate::full_disk::until_recovered(&gateway).await;
    // The same connection serves the next request: only the stream was cut.
    let response = call(
        &mut send,
        request(
            Method::PUT,
            &gateway.url("/m/after"),
            &[],
            Bytes::from_static(b"after"),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let got = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(got, "after");
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "error");
    assert_eq!(end["error_code"], "ledger_unavailable");
}

#[tokio::test]
async fn auto_over_plain_text_is_http1_and_http2_to_an_http1_only_upstream_is_a_502() {
    // This upstream would take h2c too: `auto` must not try it.
    let upstream = TestUpstream::start().await;
    let auto = Gateway::start(&models_over(&upstream.url(), "auto")).await;
    let reply = crate::support::send(Method::PUT, &auto.url("/m/plain"), &[], "plain").await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.only_request().version, Version::HTTP_11);

    // An https upstream that speaks HTTP/1.1 alone (no ALPN): `http2` fails.
    let (ca_pem, chain, key) = crate::tls::private_ca();
    let http1_only = TestUpstream::start_tls(chain, key).await;
    let url = format!("https://127.0.0.1:{}", http1_only.addr.port());
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let http2 = Gateway::start(&format!(
        "[upstream_tls]\nca_file = \"{}\"\n{}",
        ca_file.display(),
        models_over(&url, "http2")
    ))
    .await;
    let reply = crate::support::send(Method::PUT, &http2.url("/m/plain"), &[], "plain").await;
    assert_eq!(reply.status, 502, "{:?}", reply.body);
    assert_eq!(reply.error_code(), "upstream_failed");
    assert!(http1_only.seen().is_empty(), "no request reached it");
}
