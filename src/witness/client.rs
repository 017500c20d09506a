//! The `add-checkpoint` call of C2SP tlog-witness: the request body, one
//! POST, and the answer classified as the spec defines it.
//!
//! SPEC (c2sp.org/tlog-witness): the body is `old <size>\n`, at most 63
//! base64 consistency-proof lines, an empty line, then the signed
//! checkpoint. 200: one or more cosignature lines. 409 with
//! `text/x.tlog.size`: the witness's latest cosigned size, in decimal and a
//! newline. 404 unknown origin, 403 no trusted signature, 400 bad request,
//! 422 the proof does not verify.

use crate::ledger::tree::Hash;
use crate::proxy::upstream::{error_chain, tls_config};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use std::time::Duration;

/// Most bytes of a witness's answer read (cosignature lines are ~120 bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most consistency-proof lines the spec allows.
pub(crate) const MAX_PROOF_LINES: usize = 63;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// What a witness answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 200: its signature lines (to be verified by the caller).
    Cosigned(String),
    /// 409 with a size: the size it last cosigned for this origin.
    KnownSize(u64),
    /// Any other answer: the status and the start of the body.
    Refused(StatusCode, String),
}

/// Why no answer came.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CallError {
    /// Connecting or sending failed.
    #[error("cannot reach the witness: {0}")]
    Unreachable(String),
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer could not be read.
    #[error("reading the answer: {0}")]
    Read(String),
}

/// The `add-checkpoint` request body.
pub(crate) fn request_body(old_size: u64, proof: &[Hash], signed_checkpoint: &str) -> String {
    let mut body = format!("old {old_size}\n");
    for hash in proof {
        body.push_str(&BASE64.encode(hash));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(signed_checkpoint);
    body
}

/// A pooled HTTP/1.1 client for witnesses, plain or TLS (platform roots
/// plus `upstream_tls.ca_file`'s).
#[derive(Clone)]
pub(crate) struct WitnessClient {
    client: Client<Connector, Full<Bytes>>,
}

impl WitnessClient {
    pub(crate) fn new(extra_roots: &[CertificateDer<'static>]) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(extra_roots))
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(2)
            .build(connector);
        Self { client }
    }

    /// POSTs `body` to `url` and reads the answer, all within `timeout`.
    /// Cancel-safe: dropping the future drops the request.
    pub(crate) async fn add_checkpoint(
        &self,
        url: &http::Uri,
        body: String,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let request = Request::post(url.clone())
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| CallError::Unreachable(err.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| CallError::Unreachable(error_chain(&err)))?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|err| CallError::Read(err.to_string()))?
                .to_bytes();
            Ok::<_, CallError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| CallError::Timeout(timeout))??;
        let text = String::from_utf8_lossy(&bytes);
        Ok(classify(status, &text))
    }
}

fn classify(status: StatusCode, text: &str) -> Answer {
    if status == StatusCode::OK {
        return Answer::Cosigned(text.to_owned());
    }
    if status == StatusCode::CONFLICT {
        // SPEC: the size in decimal followed by a newline. A 409 without
        // one is the old == new size, different root conflict.
        if let Some(size) = text
            .strip_suffix('\n')
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
        {
            return Answer::KnownSize(size);
        }
    }
    let mut start: String = text.chars().take(200).collect();
    start = start.trim().to_owned();
    Answer::Refused(status, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_body_follows_the_spec_example_shape() {
        let body = request_body(4, &[[0u8; 32]], "o\n5\nroot\n\n\u{2014} o sig\n");
        assert_eq!(
            body,
            "old 4\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\no\n5\nroot\n\n\u{2014} o sig\n"
        );
        assert_eq!(request_body(0, &[], "c\n"), "old 0\n\nc\n");
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            classify(StatusCode::CONFLICT, "12\n"),
            Answer::KnownSize(12)
        );
        assert!(matches!(
            classify(StatusCode::CONFLICT, "root differs"),
            Answer::Refused(StatusCode::CONFLICT, _)
        ));
        assert!(matches!(
            classify(StatusCode::OK, "\u{2014} w x\n"),
            Answer::Cosigned(_)
        ));
    }
}
