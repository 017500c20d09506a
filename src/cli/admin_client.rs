//! A small client of the admin API (plain HTTP), for the commands that act
//! on a running gateway and for the demo's approvals.
//!
//! Transport failures (no connection, no answer in time) are errors; any
//! HTTP answer, refusals included, is returned for the caller to judge.

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

/// How long to wait for a TCP connection: an address that drops packets
/// would otherwise hang the command for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one call may take in all. A change waits for its ledger entry
/// to be durable, which takes milliseconds; a minute means something is
/// wrong.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Calls the admin API at `base` with a bearer token.
pub(crate) struct AdminClient {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    /// A client of the admin API at `base` (`http://host:port`).
    pub(crate) fn new(base: &str, token: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The base URL calls go to, for messages.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `method path` with a JSON `body`; the status and the JSON answer
    /// (a string holding the text when the answer is not JSON).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let (status, bytes) = self.call_raw(method, path, body).await?;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, value))
    }

    /// `method path` with a JSON `body`; the status and the answer's bytes
    /// exactly as sent.
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let request = self.request(method, path, body)?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .context("reading the admin API's answer")?
                .to_bytes();
            anyhow::Ok((status, bytes))
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .with_context(|| {
                format!(
                    "the admin API at {} did not answer within {} s",
                    self.base,
                    CALL_TIMEOUT.as_secs()
                )
            })?
    }

    /// The request for `method path` with a JSON `body` and the token.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let url = format!("{}{path}", self.base);
        let payload = body.map(Value::to_string).unwrap_or_default();
        // Checked on its own so that the error can say what is wrong
        // without echoing the token.
        let bearer = HeaderValue::try_from(format!("Bearer {}", self.token))
            .ok()
            .context("the admin token holds characters an HTTP header cannot carry")?;
        Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, bearer)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))
            .with_context(|| format!("bad admin URL {url}"))
    }

    /// `GET path`, answered by a body to read as it comes (a download):
    /// the head must arrive within `head_timeout`; reading the body is the
    /// caller's, with its own timeouts.
    pub(crate) async fn get_streaming(
        &self,
        path: &str,
        head_timeout: Duration,
    ) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        let request = self.request(Method::GET, path, None)?;
        tokio::time::timeout(head_timeout, self.client.request(request))
            .await
            .with_context(|| {
                format!(
                    "the admin API at {} did not answer within {} s",
                    self.base,
                    head_timeout.as_secs()
                )
            })?
            .with_context(|| format!("cannot reach the admin API at {}", self.base))
    }
}
