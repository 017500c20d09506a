//! The pooled upstream client: hyper-util's legacy client over HTTP/1.1,
//! plain or TLS (rustls with the platform's roots).
//!
//! Deliberately absent: redirect following, system proxy variables, body
//! decompression, and any total deadline. Each phase has its own timeout:
//! connect (in the connector), first byte (here), idle between chunks (in
//! the response body wrapper).

use super::error::ProxyError;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A cheap-to-clone handle on the shared connection pool.
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    client: Client<Connector, Full<Bytes>>,
    first_byte_timeout: Duration,
}

impl UpstreamClient {
    /// Builds the pool. Platform CA roots that cannot be loaded leave TLS
    /// upstreams failing to connect (logged), never plain HTTP ones.
    pub(crate) fn new(connect_timeout: Duration, first_byte_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_native_roots() {
            Ok(builder) => builder,
            Err(err) => {
                tracing::warn!(error = %err, "no platform CA roots; https upstreams will fail to connect");
                let empty = rustls::ClientConfig::builder_with_provider(
                    rustls::crypto::ring::default_provider().into(),
                )
                .with_safe_default_protocol_versions()
                .map(|config| {
                    config
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
                match empty {
                    Ok(config) => {
                        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
                    }
                    // INVARIANT: ring supports the default protocol versions.
                    Err(err) => {
                        unreachable!("ring provider rejected default protocol versions: {err}")
                    }
                }
            }
        };
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Self {
            client,
            first_byte_timeout,
        }
    }

    /// Sends one request and waits for the response head, at most the
    /// first-byte timeout. Cancel-safe: dropping the future drops the request.
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
        model: &str,
    ) -> Result<Response<Incoming>, ProxyError> {
        match tokio::time::timeout(self.first_byte_timeout, self.client.request(request)).await {
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

/// The error and its sources on one line, for the log.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
