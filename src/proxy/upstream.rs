//! The pooled upstream client: hyper-util's legacy client, plain or TLS
//! (rustls with the platform's roots), one pool per HTTP version setting
//! ([`UpstreamHttp`]): HTTP/1.1 (ALPN `http/1.1`), HTTP/2 (ALPN `h2`, or h2c
//! with prior knowledge in plain text), or auto (ALPN `h2` then `http/1.1`
//! over TLS, HTTP/1.1 in plain text). An HTTP/2 pool keeps one
//! multiplexed connection per upstream.
//!
//! Deliberately absent: redirect following, system proxy variables, body
//! decompression, and any total deadline. Each phase has its own timeout:
//! connect (in the connector), first byte (here), idle between chunks (in
//! the response body wrapper). Idle pooled connections are bounded per
//! host and closed after `timeouts.upstream_pool_idle_ms` (the pool needs a
//! timer for that, else they stay open until the upstream closes them).

use super::error::ProxyError;
use crate::config::UpstreamHttp;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Most bytes read ahead from one upstream connection.
const UPSTREAM_READ_BUFFER: usize = 64 * 1024;

/// HTTP/2 flow-control windows towards upstreams: what one answer's stream,
/// and all streams of a connection together, may send before the gateway
/// passes it on (a slow client holds at most this much of its answer here).
const UPSTREAM_H2_STREAM_WINDOW: u32 = 256 * 1024;
const UPSTREAM_H2_CONNECTION_WINDOW: u32 = 1024 * 1024;

/// How the pool connects and how long it keeps connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSettings {
    /// TCP (and TLS) connect.
    pub(crate) connect_timeout: Duration,
    /// From sending a request to the response head.
    pub(crate) first_byte_timeout: Duration,
    /// How long an idle connection stays in the pool.
    pub(crate) idle_timeout: Duration,
    /// Most idle connections kept per host.
    pub(crate) max_idle_per_host: usize,
}

/// A cheap-to-clone handle on the shared connection pools.
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    http1: Client<Connector, Full<Bytes>>,
    http2: Client<Connector, Full<Bytes>>,
    auto: Client<Connector, Full<Bytes>>,
    first_byte_timeout: Duration,
}

impl UpstreamClient {
    /// Builds the pool. `extra_roots` are trusted for `https://` upstreams
    /// besides the platform's CA roots (read from the OS trust store here:
    /// it is the platform's, not configuration).
    pub(crate) fn new(pool: PoolSettings, extra_roots: &[CertificateDer<'static>]) -> Self {
        let PoolSettings {
            connect_timeout,
            first_byte_timeout,
            idle_timeout,
            max_idle_per_host,
        } = pool;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let tls = tls_config(extra_roots);
        let connector = |versions: UpstreamHttp| {
            let builder = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http();
            match versions {
                UpstreamHttp::Http1 => builder.enable_http1().wrap_connector(http.clone()),
                UpstreamHttp::Http2 => builder.enable_http2().wrap_connector(http.clone()),
                UpstreamHttp::Auto => builder.enable_all_versions().wrap_connector(http.clone()),
            }
        };
        let pool = |versions: UpstreamHttp| {
            let mut builder = Client::builder(TokioExecutor::new());
            builder
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(idle_timeout)
                .pool_max_idle_per_host(max_idle_per_host)
                // Bounds what one upstream connection buffers (and the size of
                // the frames a stream passes on): a slow client holds at most
                // this much of its answer here, not the whole answer.
                .http1_max_buf_size(UPSTREAM_READ_BUFFER)
                .http2_initial_stream_window_size(UPSTREAM_H2_STREAM_WINDOW)
                .http2_initial_connection_window_size(UPSTREAM_H2_CONNECTION_WINDOW)
                // `http2` in plain text: h2c with prior knowledge.
                .http2_only(versions == UpstreamHttp::Http2);
            builder.build(connector(versions))
        };
        Self {
            http1: pool(UpstreamHttp::Http1),
            http2: pool(UpstreamHttp::Http2),
            auto: pool(UpstreamHttp::Auto),
            first_byte_timeout,
        }
    }

    /// Sends one request over the pool for `http` and waits for the
    /// response head, at most the first-byte timeout. Cancel-safe: dropping
    /// the future drops the request.
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
        model: &str,
        http: UpstreamHttp,
    ) -> Result<Response<Incoming>, ProxyError> {
        let client = match http {
            UpstreamHttp::Http1 => &self.http1,
            UpstreamHttp::Http2 => &self.http2,
            UpstreamHttp::Auto => &self.auto,
        };
        match tokio::time::timeout(self.first_byte_timeout, client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) if err.is_connect() => Err(ProxyError::UpstreamUnreachable {
                model: model.to_owned(),
                detail: error_chain(&err),
            }),
            Ok(Err(err)) => Err(ProxyError::UpstreamFailed {
                model: model.to_owned(),
                detail: error_chain(&err),
            }),
            Err(_) => Err(ProxyError::UpstreamTimeout {
                model: model.to_owned(),
                after: self.first_byte_timeout,
            }),
        }
    }
}

/// rustls (ring provider, TLS 1.2 and 1.3) trusting the platform's roots
/// plus `extra_roots`. Without any root, `https://` upstreams fail to
/// connect (502, logged) and plain HTTP is unaffected.
pub(crate) fn tls_config(extra_roots: &[CertificateDer<'static>]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::warn!(error = %err, "platform CA roots: some could not be loaded");
    }
    let (platform, _unusable) = roots.add_parsable_certificates(native.certs);
    let (extra, unusable) = roots.add_parsable_certificates(extra_roots.iter().cloned());
    if unusable > 0 {
        tracing::warn!(
            unusable,
            "upstream_tls.ca_file: some certificates are not usable as roots"
        );
    }
    if roots.is_empty() {
        tracing::warn!("no CA roots: https upstreams will fail to connect");
    }
    tracing::debug!(platform, extra, "upstream TLS roots loaded");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
        // INVARIANT: the ring provider supports rustls' default protocol versions.
        Err(err) => unreachable!("ring provider rejected the default protocol versions: {err}"),
    }
}

/// The error and its sources on one line, for the log.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
