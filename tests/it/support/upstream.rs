//! A real model server for tests: records what it receives and answers by
//! path (echo, fixed status, slow, paused, SSE with a pause, endless SSE).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How long `/pause` waits before it answers.
pub const PAUSE: Duration = Duration::from_millis(250);

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The HTTP version it came in.
    pub version: http::Version,
}

#[derive(Default)]
pub struct UpstreamState {
    pub seen: Mutex<Vec<Seen>>,
    /// Lets a paused SSE stream send its second event.
    pub release: Notify,
    /// Set when an endless stream's body is dropped (its connection closed).
    pub stream_dropped: AtomicBool,
}

pub struct TestUpstream {
    pub addr: SocketAddr,
    pub state: Arc<UpstreamState>,
    _task: tokio::task::JoinHandle<()>,
}

impl TestUpstream {
    pub async fn start() -> TestUpstream {
        let state = Arc::new(UpstreamState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestUpstream {
            addr,
            state,
            _task: task,
        }
    }

    /// The same server behind TLS with the given certificate chain and key.
    pub async fn start_tls(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> TestUpstream {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let state = Arc::new(UpstreamState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that refuses our certificate ends the handshake: nothing to serve.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TestUpstream {
            addr,
            state,
            _task: task,
        }
    }

    /// The same server speaking only HTTP/2 in plain text (h2c with prior
    /// knowledge).
    pub async fn start_h2c() -> TestUpstream {
        let state = Arc::new(UpstreamState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let app = app.clone();
                tokio::spawn(async move {
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
                });
            }
        });
        TestUpstream {
            addr,
            state,
            _task: task,
        }
    }

    /// The same server behind TLS offering only `h2` by ALPN, serving HTTP/2.
    pub async fn start_tls_h2(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> TestUpstream {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let state = Arc::new(UpstreamState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        TestUpstream {
            addr,
            state,
            _task: task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The only request received (panics otherwise).
    pub fn only_request(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "upstream saw {} requests", seen.len());
        seen.into_iter().next().unwrap()
    }
}

async fn handle(State(state): State<Arc<UpstreamState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    state.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers.clone(),
        body: body.clone(),
        version: parts.version,
    });
    if path.ends_with("/trailers") {
        return with_trailers(body);
    }
    if let Some(code) = path
        .rsplit_once("/status/")
        .and_then(|(_, code)| code.parse::<u16>().ok())
    {
        let status = StatusCode::from_u16(code).unwrap();
        return (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::HeaderName::from_static("x-upstream"), "yes"),
            ],
            format!("{{\"upstream_error\": {code}, \"detail\": \"as the model server said\"}}"),
        )
            .into_response();
    }
    if let Some(len) = path
        .rsplit_once("/big/")
        .and_then(|(_, len)| len.parse::<usize>().ok())
    {
        // A large answer of a declared length.
        return (StatusCode::OK, vec![b'x'; len]).into_response();
    }
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
        return (StatusCode::OK, "late").into_response();
    }
    if path.ends_with("/pause") {
        tokio::time::sleep(PAUSE).await;
        return (StatusCode::OK, "paused").into_response();
    }
    if path.ends_with("/hop") {
        let mut response = (StatusCode::OK, "hop").into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("x-hop-only"));
        headers.insert("x-hop-only", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic"),
        );
        headers.insert("x-end-to-end", HeaderValue::from_static("kept"));
        // A careless upstream echoing the credential it received.
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        return response;
    }
    if path.ends_with("/forever") {
        return endless_stream(state);
    }
    // Asked for by the test: the echo without a length, in two chunks, as
    // a 500, or as one server-sent event.
    match parts
        .headers
        .get("x-test-answer")
        .map(HeaderValue::as_bytes)
    {
        Some(b"chunked") => {
            let half = body.len() / 2;
            let chunks = [body.slice(..half), body.slice(half..)];
            let stream = futures_util::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>));
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(stream),
            )
                .into_response();
        }
        Some(b"error") => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
        }
        Some(b"sse") => {
            let event = format!("data: {}\n\n", String::from_utf8_lossy(&body));
            return sse(Body::from(event));
        }
        _ => {}
    }
    let wants_stream = serde_json::from_slice::<serde_json::Value>(&body)
        .map(|value| value["stream"] == serde_json::json!(true))
        .unwrap_or(false);
    if wants_stream {
        return paused_stream(state);
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `first` now; `second` and `[DONE]` only after the test releases it.
fn paused_stream(state: Arc<UpstreamState>) -> Response {
    let stream = futures_util::stream::unfold(0, move |step| {
        let state = state.clone();
        async move {
            let event = match step {
                0 => "data: first\n\n",
                1 => {
                    let _ = tokio::time::timeout(Duration::from_secs(10), state.release.notified())
                        .await;
                    "data: second\n\n"
                }
                2 => "data: [DONE]\n\n",
                _ => return None,
            };
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(event)),
                step + 1,
            ))
        }
    });
    sse(Body::from_stream(stream))
}

struct DropFlag(Arc<UpstreamState>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.stream_dropped.store(true, Ordering::SeqCst);
    }
}

/// One event every 50 ms until the connection goes away.
fn endless_stream(state: Arc<UpstreamState>) -> Response {
    let flag = DropFlag(state);
    let stream = futures_util::stream::unfold((flag, 0u64), |(flag, n)| async move {
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from(format!("data: {n}\n\n"))),
            (flag, n + 1),
        ))
    });
    sse(Body::from_stream(stream))
}

/// The request's body back, without a length, then trailers (as gRPC
/// answers end).
fn with_trailers(body: Bytes) -> Response {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("x-checksum", HeaderValue::from_static("c0ffee"));
    let frames = [
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(body)),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/grpc")],
        Body::new(body),
    )
        .into_response()
}

fn sse(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/event-stream")],
        body,
    )
        .into_response()
}
