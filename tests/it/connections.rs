//! The listeners' connection edges, with raw sockets against the real
//! binary: slowloris heads, idle floods beyond the connection cap and the
//! open-file limit, head size and count limits, malformed heads,
//! half-closed clients, axum's own errors on the admin listener, and the
//! upstream pool's idle connections.

use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `host:port` of a listener URL.
fn host(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// Lets this test process hold its side of a flood.
fn allow_many_sockets() {
    rlimit::increase_nofile_limit(8192).unwrap();
}

/// What came back on a raw connection before it ended.
struct Raw {
    bytes: Vec<u8>,
}

impl Raw {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn status(&self) -> u16 {
        let text = self.text();
        text.strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP/1.1 status line: {text:?}"))
    }

    fn head(&self) -> String {
        let text = self.text();
        text.split_once("\r\n\r\n")
            .map(|(head, _)| head.to_ascii_lowercase())
            .unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        let text = self.text();
        let (_, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete head: {text:?}"));
        serde_json::from_str(body).unwrap_or_else(|err| panic!("body not JSON ({err}): {text:?}"))
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

/// Reads until the peer closes or resets (a reset after the answer
/// counts as its end: unread request bytes make a close a reset).
/// Panics if nothing ends the connection within 5 s.
async fn read_until_closed(stream: &mut TcpStream) -> Raw {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Raw { bytes },
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no end within 5 s; got so far: {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
}

/// Sends `request` on a new connection (write errors ignored: the server
/// may answer and close before reading it all) and reads what comes back.
async fn exchange(addr: &str, request: Vec<u8>) -> Raw {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no answer within 5 s; got so far: {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    drop(writing.await);
    Raw { bytes }
}

/// A request a client of the public listener might send, closing after it.
const HEALTH: &[u8] = b"GET /v2/health/live HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n";

/// `count` connections that send nothing.
async fn idle_sockets(addr: &str, count: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        sockets.push(TcpStream::connect(addr).await.unwrap());
    }
    sockets
}

/// Reads every flood socket to its end: (answered 503 overloaded, closed
/// without an answer).
async fn outcomes(sockets: Vec<TcpStream>) -> (usize, usize) {
    let reads = sockets
        .into_iter()
        .map(|mut socket| tokio::spawn(async move { read_until_closed(&mut socket).await }));
    let mut overloaded = 0;
    let mut closed = 0;
    for read in reads {
        let raw = read.await.unwrap();
        if raw.bytes.is_empty() {
            closed += 1;
        } else {
            assert_eq!(raw.status(), 503, "{}", raw.text());
            assert_eq!(raw.error_code(), "overloaded");
            overloaded += 1;
        }
    }
    (overloaded, closed)
}

/// The request that must never hang: answered 503 `overloaded` (with
/// `Retry-After`) or served.
async fn answered_while_flooded(gateway: &Gateway) {
    let raw = exchange(host(&gateway.public), HEALTH.to_vec()).await;
    assert!(
        !raw.bytes.is_empty(),
        "the connection ended without an answer"
    );
    match raw.status() {
        200 => {}
        503 => {
            assert_eq!(raw.error_code(), "overloaded");
            assert!(raw.head().contains("retry-after: 1"), "{}", raw.text());
        }
        other => panic!("unexpected answer {other}: {}", raw.text()),
    }
}

/// After a flood has gone, a model call is served again.
async fn served_again(gateway: &Gateway) {
    let reply = gateway.infer("{}").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

fn short_heads(extra: &str, upstream: &str) -> String {
    heads_within(1000, extra, upstream)
}

/// A config whose heads must arrive within `millis`. A flood of hundreds of
/// sockets gets 2 s, so that opening them all (slow on a busy machine)
/// takes less: the first ones are then still open when the last arrive.
fn heads_within(millis: u64, extra: &str, upstream: &str) -> String {
    format!(
        "[timeouts]\nheader_read_ms = {millis}\n{extra}\n{}",
        crate::models(upstream)
    )
}

#[tokio::test]
async fn slowloris_heads_are_closed_after_the_header_read_timeout() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&short_heads("", &upstream.url())).await;
    let addr = host(&gateway.public).to_owned();
    let start = Instant::now();
    // Partial heads that never complete...
    let mut partial = Vec::new();
    for _ in 0..20 {
        let mut socket = TcpStream::connect(&addr).await.unwrap();
        socket
            .write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: gateway\r\n")
            .await
            .unwrap();
        partial.push(socket);
    }
    // ... and one trickled a byte every 100 ms.
    let mut trickled = TcpStream::connect(&addr).await.unwrap();
    trickled
        .write_all(b"GET /v2/health/live HTTP/1.1\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        let mut byte = [0u8; 1];
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if trickled.write_all(b"x").await.is_err() {
                return start.elapsed();
            }
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(1), trickled.read(&mut byte)).await
            {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "trickled head still open"
            );
        }
    });
    let closed_after = trickle.await.unwrap();
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(3),
        "trickled head closed after {closed_after:?}"
    );
    for mut socket in partial {
        let raw = read_until_closed(&mut socket).await;
        assert!(raw.bytes.is_empty(), "{}", raw.text());
    }
    assert!(start.elapsed() < Duration::from_secs(4));
    gateway
        .metrics_when(
            r#"govgate_connections_refused_total{listener="public",reason="header_timeout"} 21"#,
        )
        .await;
    served_again(&gateway).await;
}

#[tokio::test]
async fn beyond_the_connection_cap_clients_get_503_until_idle_ones_time_out() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&heads_within(
        2000,
        "[limits]\npublic_max_connections = 20\n",
        &upstream.url(),
    ))
    .await;
    let flood = idle_sockets(host(&gateway.public), 30).await;
    let raw = exchange(host(&gateway.public), HEALTH.to_vec()).await;
    assert_eq!(raw.status(), 503, "{}", raw.text());
    assert_eq!(raw.error_code(), "overloaded");
    assert!(raw.head().contains("retry-after: 1"), "{}", raw.text());
    assert!(raw.head().contains("content-type: application/json"));
    // The 20 within the cap are closed by the header-read timeout, the 10
    // beyond it were answered at once.
    let (overloaded, closed) = outcomes(flood).await;
    assert_eq!((overloaded, closed), (10, 20));
    served_again(&gateway).await;
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(
            r#"govgate_connections_refused_total{listener="public",reason="overloaded"} 11"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"govgate_connections_max{listener="public"} 20"#));
}

#[tokio::test]
async fn a_low_open_file_limit_lowers_the_cap_and_a_flood_is_still_answered() {
    allow_many_sockets();
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start_under(
        &["prlimit", "--nofile=256:256"],
        "",
        &heads_within(2000, "", &upstream.url()),
    )
    .await;
    // The default cap (8192) cannot be held with 256 descriptors.
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(r#"govgate_connections_max{listener="public"} 70"#),
        "{metrics}"
    );
    // More idle connections than the gateway has descriptors.
    let flood = idle_sockets(host(&gateway.public), 300).await;
    answered_while_flooded(&gateway).await;
    let (overloaded, closed) = outcomes(flood).await;
    assert_eq!(overloaded + closed, 300);
    // 70 served (then closed by the header-read timeout), the rest answered.
    assert!(overloaded >= 150, "{overloaded} answered overloaded");
    served_again(&gateway).await;
}

#[tokio::test]
async fn running_out_of_descriptors_is_answered_not_hung() {
    allow_many_sockets();
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&heads_within(2000, "", &upstream.url())).await;
    served_again(&gateway).await;
    // Lower the running gateway's limit below what its caps assumed:
    // accepting now fails with EMFILE once the flood fills it.
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", gateway.pid()))
        .arg("--nofile=128:128")
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success());
    let flood = idle_sockets(host(&gateway.public), 200).await;
    answered_while_flooded(&gateway).await;
    let (overloaded, closed) = outcomes(flood).await;
    assert_eq!(overloaded + closed, 200);
    assert!(overloaded >= 50, "{overloaded} answered overloaded");
    served_again(&gateway).await;
}

/// A request with one header of `value_len` bytes, or `count` small ones.
fn head_with(path: &str, value_len: usize, count: usize) -> Vec<u8> {
    let mut head = format!("GET {path} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n");
    if value_len > 0 {
        head.push_str(&format!("x-big: {}\r\n", "a".repeat(value_len)));
    }
    for i in 0..count {
        head.push_str(&format!("x-h{i}: v\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

#[tokio::test]
async fn oversized_heads_and_too_many_headers_get_json_431_on_both_listeners() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&crate::models(&upstream.url())).await;
    let public = host(&gateway.public).to_owned();
    let admin = host(&gateway.admin).to_owned();
    // Within the defaults (64 KiB, 100 fields): served.
    let raw = exchange(&public, head_with("/v2/health/live", 8 * 1024, 90)).await;
    assert_eq!(raw.status(), 200, "{}", raw.text());
    for (addr, path) in [(&public, "/v2/health/live"), (&admin, "/healthz")] {
        for request in [
            head_with(path, 100 * 1024, 0),
            head_with(path, 500 * 1024, 0),
            head_with(path, 0, 150),
        ] {
            let raw = exchange(addr, request).await;
            assert_eq!(raw.status(), 431, "{}", raw.text());
            assert_eq!(raw.error_code(), "headers_too_large");
            assert!(raw.head().contains("content-type: application/json"));
            assert!(raw.head().contains("connection: close"));
        }
    }
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(
            r#"govgate_connections_refused_total{listener="admin",reason="headers_too_large"} 3"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn configured_head_limits_apply() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&format!(
        "[limits]\nmax_header_bytes = 4096\nmax_headers = 10\n{}",
        crate::models(&upstream.url())
    ))
    .await;
    let public = host(&gateway.public).to_owned();
    let raw = exchange(&public, head_with("/v2/health/live", 0, 5)).await;
    assert_eq!(raw.status(), 200, "{}", raw.text());
    for request in [
        head_with("/v2/health/live", 5000, 0),
        head_with("/v2/health/live", 0, 12),
    ] {
        let raw = exchange(&public, request).await;
        assert_eq!(raw.status(), 431, "{}", raw.text());
        assert!(
            raw.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("4096 bytes or has more than 10 header fields")
        );
    }
}

#[tokio::test]
async fn malformed_heads_get_json_400_on_both_listeners() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&crate::models(&upstream.url())).await;
    for addr in [host(&gateway.public), host(&gateway.admin)] {
        for request in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET /v2/health/live HTTP/1.1\r\nhost: gateway\r\nno colon here\r\n\r\n",
            b"GET /v2 /x HTTP/1.1\r\n\r\n",
        ] {
            let raw = exchange(addr, request.to_vec()).await;
            assert_eq!(raw.status(), 400, "{}", raw.text());
            assert_eq!(raw.error_code(), "malformed_request");
            assert!(raw.head().contains("content-type: application/json"));
        }
    }
    // A kept-alive connection's second head that does not parse gets the
    // JSON answer too, after the first answer arrived intact.
    let mut request = b"GET /v2/health/live HTTP/1.1\r\nhost: gateway\r\n\r\n".to_vec();
    request.extend_from_slice(b"GARBAGE\r\n\r\n");
    let raw = exchange(host(&gateway.public), request).await;
    let text = raw.text();
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    let second = text.find("HTTP/1.1 400 ").expect("a second answer");
    assert!(
        text[second..].contains(r#""code":"malformed_request""#),
        "{text}"
    );
}

/// Sends a KServe infer request as `caller`, then shuts down the sending
/// side of the socket; returns what came back before the connection ended.
async fn half_closed_infer(gateway: &Gateway, caller: &str) -> Raw {
    let mut socket = TcpStream::connect(host(&gateway.public)).await.unwrap();
    socket
        .write_all(
            format!(
                "POST /v2/models/scorer/infer HTTP/1.1\r\nhost: gateway\r\nx-govgate-caller: {caller}\r\n\
                 content-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    socket.shutdown().await.unwrap();
    read_until_closed(&mut socket).await
}

#[tokio::test]
async fn with_half_close_a_client_that_shuts_down_its_sending_side_gets_the_answer() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start_with("half_close = true", &crate::models(&upstream.url())).await;
    let raw = half_closed_infer(&gateway, "half").await;
    assert!(!raw.bytes.is_empty(), "no answer to a half-closed client");
    assert_eq!(raw.status(), 200, "{}", raw.text());
    let head = raw.head();
    let id = head
        .lines()
        .find_map(|line| line.strip_prefix("govgate-decision-id: "))
        .expect("decision id")
        .to_owned();
    assert_eq!(gateway.decision(&id).await["outcome"], "served");
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test]
async fn without_half_close_a_half_closed_client_counts_as_gone() {
    // The default: a half-close cannot be told from a client that left, so
    // it ends the request; the decision says so instead of `served`.
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&crate::models(&upstream.url())).await;
    let mut socket = TcpStream::connect(host(&gateway.public)).await.unwrap();
    socket
        .write_all(b"GET /m/slow HTTP/1.1\r\nhost: gateway\r\nx-govgate-caller: half\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..200 {
        if !upstream.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(upstream.seen().len(), 1, "the request was forwarded");
    socket.shutdown().await.unwrap();
    let raw = read_until_closed(&mut socket).await;
    assert!(raw.bytes.is_empty(), "{}", raw.text());
    for _ in 0..100 {
        let decisions = gateway.decisions().await;
        if let Some(decision) = decisions.iter().find(|d| d["caller"] == "half") {
            assert_eq!(decision["error_code"], "client_disconnected", "{decision}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the half-closed request left no decision");
}

#[tokio::test]
async fn axum_errors_on_the_admin_listener_are_json_with_codes() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&crate::models(&upstream.url())).await;
    let admin = |path: &str| format!("{}{path}", gateway.admin);

    let reply = send(Method::GET, &admin("/nowhere"), &[], "").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code(), "route_not_found");

    let reply = send(Method::DELETE, &admin("/metrics"), &[], "").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.error_code(), "method_not_allowed");
    assert!(reply.headers.contains_key("allow"));

    let reply = send(Method::GET, &admin("/ledger/entries?from=abc"), &[], "").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "invalid_query");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to deserialize query string")
    );

    // A body over axum's buffer limit (2 MiB), refused before the handler.
    let mut request = format!(
        "POST /admin/models/chat/versions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        3 * 1024 * 1024
    )
    .into_bytes();
    request.extend(std::iter::repeat_n(b' ', 3 * 1024 * 1024));
    let raw = exchange(host(&gateway.admin), request).await;
    assert_eq!(raw.status(), 413, "{}", raw.text());
    assert_eq!(raw.error_code(), "body_too_large");

    // A chunked body that breaks off mid-way.
    let raw = exchange(
        host(&gateway.admin),
        b"POST /admin/models/chat/versions HTTP/1.1\r\nhost: gateway\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec(),
    )
    .await;
    assert_eq!(raw.status(), 400, "{}", raw.text());
    assert_eq!(raw.error_code(), "request_body_unreadable");

    // The public listener's own routes: a path parameter that is not UTF-8.
    let reply = gateway.get("/govgate/receipts/%FF").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "invalid_path");
}

/// A model server that counts its open and its accepted connections and
/// answers every request after 200 ms (so a burst needs many connections
/// at once).
async fn counting_upstream() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let open = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (counter, total) = (open.clone(), accepted.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            total.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"{}")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, open, accepted)
}

/// Polls `open` until `done` holds, for up to 5 s; returns the last count.
async fn open_when(open: &AtomicUsize, done: impl Fn(usize) -> bool) -> usize {
    for _ in 0..100 {
        let now = open.load(Ordering::SeqCst);
        if done(now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    open.load(Ordering::SeqCst)
}

#[tokio::test]
async fn idle_upstream_connections_are_bounded_and_closed_after_the_pool_timeout() {
    let (url, open, accepted) = counting_upstream().await;
    let gateway = Gateway::start(&format!(
        "[limits]\nupstream_pool_max_idle_per_host = 4\n[timeouts]\nupstream_pool_idle_ms = 500\n{}",
        crate::models(&url)
    ))
    .await;
    let burst = (0..16).map(|_| {
        let url = gateway.url("/m/burst");
        tokio::spawn(async move { send(Method::GET, &url, &[], "").await })
    });
    for reply in futures_util::future::join_all(burst).await {
        assert_eq!(reply.unwrap().status, 200);
    }
    let used = accepted.load(Ordering::SeqCst);
    assert!(used >= 8, "the burst used only {used} upstream connections");
    // At most 4 stay idle in the pool...
    let kept = open_when(&open, |n| n <= 4).await;
    assert!(
        kept <= 4,
        "{kept} upstream connections still open after the burst"
    );
    // ... and those are closed once idle longer than the pool timeout.
    let start = Instant::now();
    let left = open_when(&open, |n| n == 0).await;
    assert_eq!(left, 0, "idle upstream connections never closed");
    assert!(start.elapsed() < Duration::from_secs(3));
}
