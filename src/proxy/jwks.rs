//! The background task that keeps a `jwks_url` key set: fetched at start,
//! every `jwks_refresh_secs`, and when a token names an unknown `kid` (at
//! most once per `jwks_min_refresh_secs`, see [`super::jwt`]). A fetch that
//! fails, or brings no usable key, keeps the last good set. Each fetch has
//! a deadline and reads at most [`crate::config::MAX_JWKS_BYTES`].

use super::jwt::{FetchResult, JwtMetrics, KeySet};
use crate::config::{JwksUrl, JwtConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// Keeps one issuer's key set; run by the app until shutdown.
pub struct JwksFetcher {
    config: Arc<JwtConfig>,
    url: JwksUrl,
    sender: watch::Sender<Arc<KeySet>>,
    wake: Arc<Notify>,
    metrics: JwtMetrics,
}

impl JwksFetcher {
    pub(crate) fn new(
        config: Arc<JwtConfig>,
        url: JwksUrl,
        sender: watch::Sender<Arc<KeySet>>,
        wake: Arc<Notify>,
        metrics: JwtMetrics,
    ) -> Self {
        Self {
            config,
            url,
            sender,
            wake,
            metrics,
        }
    }

    /// Fetches at once, then when woken or every refresh interval, until
    /// `stop` resolves (a fetch in progress is dropped then).
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(self.url.fetch_timeout));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(super::upstream::tls_config(&[]))
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        tokio::pin!(stop);
        let mut attempt = 0u64;
        // The set the keys in force came from: the same set fetched again
        // keeps its generation (and the verified-token cache).
        let mut in_force: Option<jsonwebtoken::jwk::JwkSet> = None;
        let mut generation = 0u64;
        loop {
            attempt += 1;
            let fetched = tokio::select! {
                fetched = fetch(&client, &self.url) => fetched,
                () = &mut stop => return,
            };
            let fresh = fetched.map(|set| {
                let keys = KeySet::of(&set, &self.config, attempt);
                (set, keys)
            });
            match fresh {
                Ok((set, mut keys)) if keys.len() > 0 => {
                    tracing::info!(url = %self.url.url, keys = keys.len(), "JWKS fetched");
                    self.metrics.count_fetch(FetchResult::Ok);
                    self.metrics.set_keys(keys.len());
                    if in_force.as_ref() != Some(&set) {
                        generation += 1;
                        in_force = Some(set);
                    }
                    keys.generation = generation;
                    self.sender.send_replace(Arc::new(keys));
                }
                failed => {
                    let (result, why) = failed
                        .err()
                        .unwrap_or_else(|| (FetchResult::ParseError, "no usable key".to_owned()));
                    self.metrics.count_fetch(result);
                    tracing::warn!(url = %self.url.url, error = %why, "JWKS fetch failed; the last good key set stays in force");
                    // The same keys under a new attempt count: a request
                    // waiting for this fetch stops waiting.
                    self.sender.send_modify(|keys| {
                        *keys = Arc::new(keys.retried(attempt));
                    });
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.url.refresh) => {}
                () = &mut stop => return,
            }
        }
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// One fetch of the key set, within its deadline and size cap; a
/// failure says how it failed (for the metrics) and why (for the log).
async fn fetch(
    client: &Client<Connector, Full<Bytes>>,
    url: &JwksUrl,
) -> Result<jsonwebtoken::jwk::JwkSet, (FetchResult, String)> {
    let http_error = |why: String| (FetchResult::HttpError, why);
    let request = http::Request::get(url.url.clone())
        .header(http::header::ACCEPT, "application/json")
        .body(Full::default())
        .map_err(|err| http_error(err.to_string()))?;
    let work = async {
        let response = client
            .request(request)
            .await
            .map_err(|err| http_error(super::upstream::error_chain(&err)))?;
        if !response.status().is_success() {
            return Err(http_error(format!("answered {}", response.status())));
        }
        let body = Limited::new(response.into_body(), crate::config::MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|err| {
                // Over the size cap is the set's fault; a broken body the transport's.
                let result = if err.is::<http_body_util::LengthLimitError>() {
                    FetchResult::ParseError
                } else {
                    FetchResult::HttpError
                };
                (result, err.to_string())
            })?
            .to_bytes();
        crate::config::parse_jwks(&body).map_err(|why| (FetchResult::ParseError, why.to_string()))
    };
    tokio::time::timeout(url.fetch_timeout, work)
        .await
        .map_err(|_| {
            (
                FetchResult::Timeout,
                format!("no answer within {:?}", url.fetch_timeout),
            )
        })?
}
