//! The listener against raw sockets, in process: the abort handle's reset
//! and the keep-alive wait versus the header-read timeout.

use super::*;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::get;
use bytes::Bytes;
use std::io::ErrorKind;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn settings(header_read: Duration, keep_alive_idle: Duration) -> Settings {
    Settings {
        name: "test",
        max_connections: 16,
        header_read_timeout: header_read,
        keep_alive_idle,
        max_header_bytes: 8192,
        max_headers: 32,
        half_close: false,
        tls: None,
        http2: super::Http2 {
            max_concurrent_streams: 100,
            initial_stream_window: 1 << 20,
            initial_connection_window: 2 << 20,
            max_frame_size: 16_384,
            keep_alive_interval: None,
            keep_alive_timeout: Duration::from_secs(10),
        },
    }
}

/// Serves `router` on an ephemeral port until the test ends.
async fn start(router: Router, settings: Settings) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = ListenerMetrics::register(&prometheus::Registry::new()).unwrap();
    tokio::spawn(serve(
        listener,
        router,
        settings,
        metrics,
        std::future::pending(),
    ));
    addr
}

/// A close-delimited (HTTP/1.0) answer whose body breaks after its first
/// chunk; with `abort`, the handler aborts the connection first, as a
/// stream whose record cannot be written does.
fn breaking_router(abort: bool) -> Router {
    Router::new().route(
        "/",
        get(move |request: Request| async move {
            let handle = request
                .extensions()
                .get::<ConnectionAbort>()
                .expect("every request carries its connection's abort handle")
                .clone();
            let chunks = futures_util::stream::unfold(0, move |step| {
                let handle = handle.clone();
                async move {
                    match step {
                        0 => Some((Ok(Bytes::from_static(b"partial")), 1)),
                        1 => {
                            // Let the first chunk reach the client.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            if abort {
                                handle.abort();
                            }
                            Some((Err(std::io::Error::other("the record failed")), 2))
                        }
                        _ => None,
                    }
                }
            });
            Body::from_stream(chunks)
        }),
    )
}

/// Sends an HTTP/1.0 request and reads until the connection ends: the
/// bytes received and how it ended.
async fn read_to_end(addr: std::net::SocketAddr) -> (Vec<u8>, std::io::Result<()>) {
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await {
            Ok(Ok(0)) => break Ok(()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Ok(Err(err)) => break Err(err),
            Err(_) => panic!("the connection was neither closed nor reset"),
        }
    };
    (received, end)
}

#[tokio::test]
async fn an_aborted_connection_is_reset_not_closed() {
    let addr = start(
        breaking_router(true),
        settings(Duration::from_secs(5), Duration::from_secs(5)),
    )
    .await;
    let (received, end) = read_to_end(addr).await;
    assert!(
        received.ends_with(b"partial"),
        "{}",
        String::from_utf8_lossy(&received)
    );
    let err = end.expect_err("an aborted connection must not end with a clean close");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn without_abort_a_broken_close_delimited_body_looks_complete() {
    // What the abort handle exists for: the same broken body, not
    // aborted, ends with a FIN the client cannot tell from a complete answer.
    let addr = start(
        breaking_router(false),
        settings(Duration::from_secs(5), Duration::from_secs(5)),
    )
    .await;
    let (received, end) = read_to_end(addr).await;
    assert!(received.ends_with(b"partial"));
    assert!(end.is_ok(), "{end:?}");
}

fn hello() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

/// Reads one `hello` answer (content-length 5) off a kept-alive connection.
async fn read_hello(client: &mut TcpStream) {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    while !received.ends_with(b"hello") {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("answer in time")
            .unwrap();
        assert!(n > 0, "closed before the answer");
        received.extend_from_slice(&buf[..n]);
    }
}

/// Waits for the server to close `client`; returns how long that took.
async fn closed_after(client: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => start.elapsed(),
        Ok(Ok(_)) => panic!("unexpected bytes"),
        Err(_) => panic!("still open after 5 s"),
    }
}

#[tokio::test]
async fn a_kept_alive_connection_waits_longer_than_a_head_may_take() {
    let header_read = Duration::from_millis(200);
    let idle = Duration::from_millis(900);
    let addr = start(hello(), settings(header_read, idle)).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    read_hello(&mut client).await;
    // Idle for longer than a head may take, then a second request.
    tokio::time::sleep(header_read * 2).await;
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    read_hello(&mut client).await;
    // Then nothing: closed after the idle timeout.
    let waited = closed_after(&mut client).await;
    assert!(waited >= idle - Duration::from_millis(50), "{waited:?}");

    // A trickled head of a kept-alive connection gets the header-read
    // timeout from its first byte.
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    read_hello(&mut client).await;
    client.write_all(b"GET / HT").await.unwrap();
    let waited = closed_after(&mut client).await;
    assert!(waited < idle, "{waited:?}");
}

#[tokio::test]
async fn a_silent_new_connection_gets_the_header_read_timeout() {
    let header_read = Duration::from_millis(200);
    let addr = start(hello(), settings(header_read, Duration::from_secs(5))).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let waited = closed_after(&mut client).await;
    assert!(
        waited >= header_read - Duration::from_millis(50) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_handler_answering_400_or_431_is_not_taken_for_hyper() {
    // Only hyper's own answers to unparsable heads are replaced; a
    // handler's 4xx (written after its body was dropped) passes unchanged.
    let router = Router::new()
        .route(
            "/400",
            get(|| async { (http::StatusCode::BAD_REQUEST, "mine") }),
        )
        .route(
            "/431",
            get(|| async { (http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "") }),
        );
    let addr = start(
        router,
        settings(Duration::from_secs(5), Duration::from_secs(5)),
    )
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /400 HTTP/1.1\r\nhost: x\r\n\r\nGET /431 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    client.read_to_end(&mut received).await.unwrap();
    let text = String::from_utf8(received).unwrap();
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("\r\n\r\nmineHTTP/1.1 431 "), "{text}");
    assert!(!text.contains("application/json"), "{text}");
}

/// An h2c client connection to `addr`: its request sender, and the task
/// driving the connection, which ends when the server closes it.
async fn h2c_client(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let driving = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, driving)
}

async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>,
    path: &str,
) -> http::StatusCode {
    let request = http::Request::get(format!("http://x{path}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    sender.send_request(request).await.unwrap().status()
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_but_not_while_a_stream_is_open() {
    let idle = Duration::from_millis(300);
    let router = hello().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            "slow"
        }),
    );
    let addr = start(router, settings(Duration::from_secs(5), idle)).await;
    let (mut sender, driving) = h2c_client(addr).await;
    assert_eq!(h2_get(&mut sender, "/").await, http::StatusCode::OK);
    // A stream open for three times the idle time keeps the connection.
    assert_eq!(h2_get(&mut sender, "/slow").await, http::StatusCode::OK);
    assert!(!driving.is_finished(), "closed while a stream was open");
    // Then nothing: closed (GOAWAY) about `idle` after the last stream.
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), driving)
        .await
        .expect("an idle HTTP/2 connection is closed")
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= idle - Duration::from_millis(50) && waited < idle * 4,
        "{waited:?}"
    );
}
