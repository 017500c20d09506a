//! Signing in at the identity provider (OpenID Connect authorization code
//! flow with PKCE, RFC 7636; a public client, or a confidential one with
//! its client secret sent by HTTP Basic authentication): the browser
//! goes to the provider with a fresh `state` and code challenge, comes back
//! to `/console/sign-in/callback` with a code, and the gateway exchanges
//! code and verifier for tokens at the token endpoint. The access token is
//! then checked as any bearer token of `[admin.jwt]` (issuer, audience,
//! keys, roles): the provider's word alone makes no session.

use crate::config::SignInConfig;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A sign-in not finished within this is forgotten.
const PENDING_FOR: Duration = Duration::from_secs(10 * 60);
/// Sign-ins under way at most (the oldest goes first).
const MAX_PENDING: usize = 1024;
/// The token endpoint's answer is read up to this.
const MAX_TOKEN_ANSWER: usize = 64 << 10;
/// The token endpoint answers within this.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a sign-in at the provider did not end in a session.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignInError {
    /// The callback's `state` names no sign-in under way (the client's).
    #[error("this sign-in is unknown or took longer than 10 minutes; sign in again")]
    UnknownState,
    /// The provider said no (its `error` parameter).
    #[error("the identity provider refused: {0}")]
    Refused(String),
    /// The token endpoint failed (the provider's).
    #[error("the identity provider's token endpoint: {0}")]
    Token(String),
}

/// The sign-ins under way and the client to the token endpoint.
pub(crate) struct Provider {
    config: SignInConfig,
    pending: Mutex<HashMap<String, (String, Instant)>>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// `Basic base64(id ":" secret)`, each form-urlencoded first as RFC 6749
/// section 2.3.1 asks; marked sensitive so it is never logged.
fn basic_authorization(client_id: &str, secret: &str) -> http::HeaderValue {
    // The value of a one-pair form, without its `v=`.
    let encode =
        |text: &str| serde_urlencoded::to_string([("v", text)]).unwrap_or_default()[2..].to_owned();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    let mut value = http::HeaderValue::from_str(&format!("Basic {}", BASE64.encode(pair)))
        .unwrap_or_else(|_| http::HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

fn random() -> String {
    B64URL.encode(rand::random::<[u8; 32]>())
}

impl Provider {
    pub(crate) fn new(config: SignInConfig) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(TOKEN_TIMEOUT));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::proxy::upstream::tls_config(&[]))
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            config,
            pending: Mutex::new(HashMap::new()),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Where to send the browser: the authorization endpoint with a new
    /// `state` and the S256 challenge of a new verifier (both kept).
    pub(crate) fn start(&self) -> String {
        let (state, verifier) = (random(), random());
        let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            pending.retain(|_, (_, at)| now.duration_since(*at) < PENDING_FOR);
            if pending.len() >= MAX_PENDING
                && let Some(oldest) = pending
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(state, _)| state.clone())
            {
                pending.remove(&oldest);
            }
            pending.insert(state.clone(), (verifier, now));
        }
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", self.config.client_id.as_str()),
            ("redirect_uri", self.config.redirect_url.as_str()),
            ("scope", &self.config.scopes.join(" ")),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .unwrap_or_default();
        let joiner = if self.config.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{joiner}{query}", self.config.authorization_endpoint)
    }

    /// The access token for the callback's `code` and `state` (each state
    /// serves once).
    pub(crate) async fn finish(&self, state: &str, code: &str) -> Result<String, SignInError> {
        let verifier = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.remove(state) {
                Some((verifier, at)) if at.elapsed() < PENDING_FOR => verifier,
                _ => return Err(SignInError::UnknownState),
            }
        };
        let form = serde_urlencoded::to_string([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_url.as_str()),
            ("client_id", self.config.client_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .unwrap_or_default();
        let mut request = http::Request::post(&self.config.token_endpoint)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json");
        if let Some(secret) = &self.config.client_secret {
            request = request.header(
                http::header::AUTHORIZATION,
                basic_authorization(&self.config.client_id, &secret.0),
            );
        }
        let request = request
            .body(Full::new(Bytes::from(form)))
            .map_err(|err| SignInError::Token(err.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| SignInError::Token(err.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_TOKEN_ANSWER)
                .collect()
                .await
                .map_err(|err| SignInError::Token(err.to_string()))?
                .to_bytes();
            let answer: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|_| SignInError::Token(format!("answered {status}, not JSON")))?;
            if !status.is_success() {
                return Err(SignInError::Token(format!(
                    "answered {status}: {}",
                    answer["error"].as_str().unwrap_or("no error code")
                )));
            }
            answer["access_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| SignInError::Token("no access_token in its answer".to_owned()))
        };
        tokio::time::timeout(TOKEN_TIMEOUT, exchange)
            .await
            .map_err(|_| SignInError::Token(format!("no answer within {TOKEN_TIMEOUT:?}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::basic_authorization;

    #[test]
    fn client_credentials_are_form_encoded_before_basic_encoding() {
        // RFC 6749 2.3.1: "a b" and "p:w&" form-encoded, then base64.
        let value = basic_authorization("a b", "p:w&");
        // base64("a+b:p%3Aw%26")
        assert_eq!(value.to_str().unwrap(), "Basic YStiOnAlM0F3JTI2");
        assert!(value.is_sensitive());
    }
}
