//! Who is calling: a verified TLS client certificate (`[auth.mtls]`), else
//! an API key presented as `Authorization: Bearer` (`[[auth.api_keys]]`),
//! else a JWT presented so (`[auth.jwt]`, verified in jwt.rs), else the caller header where it is believed (`[auth.trusted_header]`),
//! else `anonymous`. A key is looked up by the
//! SHA-256 of what was presented; the key itself is never kept, logged or
//! recorded, only its id.

use crate::config::{ApiKey, AuthConfig, CertificateIdentity, HeaderTrust};
use crate::decision::CallerAuth;
use http::{HeaderMap, HeaderName, header};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;

/// Every gateway API key starts so (`govgate token --caller`): a bearer
/// token without it is not the gateway's, and goes to the upstream as
/// before (for models whose callers bring their own upstream key).
pub const API_KEY_PREFIX: &str = "ggk_";

/// Why the caller's claim is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The caller header came from outside the trusted networks.
    UntrustedHeader,
    /// A gateway key that is not configured.
    UnknownKey,
    /// A configured key past its expiry.
    ExpiredKey,
    /// `auth.require_api_key` and no key.
    NoKey,
    /// A verified client certificate without the configured name in it.
    CertificateWithoutName,
    /// A JWT bearer token that does not verify.
    InvalidToken(super::jwt::TokenProblem),
    /// `auth.jwt.required` and no token, key or client certificate.
    NoToken,
}

impl Refusal {
    /// Said to the client (never which key, never the key).
    pub fn describe(self) -> &'static str {
        match self {
            Self::UntrustedHeader => "the caller header is only accepted from the trusted networks",
            Self::UnknownKey => "the API key is not valid",
            Self::ExpiredKey => "the API key has expired",
            Self::NoKey => "an API key is required (Authorization: Bearer ggk_...)",
            Self::CertificateWithoutName => {
                "the client certificate does not carry the name the gateway identifies callers by"
            }
            Self::InvalidToken(problem) => problem.describe(),
            Self::NoToken => "a bearer token is required (Authorization: Bearer <JWT>)",
        }
    }

    /// Whether the answer names the Bearer scheme (`WWW-Authenticate`).
    pub(crate) fn is_about_keys(self) -> bool {
        matches!(
            self,
            Self::UnknownKey
                | Self::ExpiredKey
                | Self::NoKey
                | Self::InvalidToken(_)
                | Self::NoToken
        )
    }
}

/// The outcome of identifying one request.
#[derive(Debug, Default)]
pub(crate) struct Identified {
    /// The caller's name, if any was established.
    pub(crate) caller: Option<String>,
    /// The key that established it.
    pub(crate) key: Option<Arc<ApiKey>>,
    /// How it was established, as the decision records it.
    pub(crate) auth: CallerAuth,
    /// A verified token's claims for the policies (`auth.jwt.policy_claims`).
    pub(crate) claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
    /// Why the request must be refused, if it must.
    pub(crate) refusal: Option<Refusal>,
}

/// Identifies a request from its client certificate, its headers and its
/// TCP peer.
pub(crate) fn identify(
    auth: &AuthConfig,
    caller_header: &HeaderName,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    client_certificate: Option<&CertificateDer<'_>>,
    jwt: Option<super::jwt::RequestToken<'_>>,
    now_unix: impl Fn() -> i64,
) -> Identified {
    if let (Some(mtls), Some(certificate)) = (&auth.mtls, client_certificate) {
        // The listener verified the chain; only the name is read here.
        return match certificate_name(certificate, mtls.identity) {
            Some(name) => Identified {
                caller: Some(name),
                auth: CallerAuth::Mtls {
                    cert_sha256: Sha256::digest(certificate.as_ref()).into(),
                },
                ..Identified::default()
            },
            None => Identified {
                refusal: Some(Refusal::CertificateWithoutName),
                ..Identified::default()
            },
        };
    }
    if !auth.api_keys.is_empty()
        && let Some(token) = gateway_key(headers)
    {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        return match auth.api_keys.get(&hash) {
            Some(key) if key.expires_unix.is_some_and(|at| now_unix() >= at) => Identified {
                refusal: Some(Refusal::ExpiredKey),
                ..Identified::default()
            },
            Some(key) => Identified {
                caller: Some(key.caller.clone()),
                auth: CallerAuth::ApiKey {
                    key_id: key.id.clone(),
                },
                key: Some(key.clone()),
                ..Identified::default()
            },
            None => Identified {
                refusal: Some(Refusal::UnknownKey),
                ..Identified::default()
            },
        };
    }
    if let Some(jwt) = jwt
        && let Some(token) = super::jwt::bearer_jwt(headers)
    {
        return match jwt.verify(token) {
            Ok(verified) => Identified {
                caller: Some(verified.caller),
                auth: verified.auth,
                claims: Some(verified.claims),
                ..Identified::default()
            },
            Err(problem) => Identified {
                refusal: Some(Refusal::InvalidToken(problem)),
                ..Identified::default()
            },
        };
    }
    if auth.require_api_key {
        return Identified {
            refusal: Some(Refusal::NoKey),
            ..Identified::default()
        };
    }
    if auth.jwt.as_ref().is_some_and(|jwt| jwt.required) {
        return Identified {
            refusal: Some(Refusal::NoToken),
            ..Identified::default()
        };
    }
    let Some(claimed) = headers.get(caller_header).filter(|value| !value.is_empty()) else {
        return Identified::default();
    };
    let network = match auth.header_trust(peer) {
        // A name claimed from outside the trusted networks is not the
        // caller: the request is refused, as `anonymous`.
        HeaderTrust::Refused => {
            return Identified {
                refusal: Some(Refusal::UntrustedHeader),
                ..Identified::default()
            };
        }
        HeaderTrust::Anyone => None,
        HeaderTrust::Network(network) => Some(network.to_string()),
    };
    Identified {
        // Non-ASCII identities are kept (lossily decoded).
        caller: Some(String::from_utf8_lossy(claimed.as_bytes()).into_owned()),
        auth: CallerAuth::Header { network },
        ..Identified::default()
    }
}

/// The caller's name in a client certificate.
pub(crate) fn certificate_name(
    certificate: &CertificateDer<'_>,
    identity: CertificateIdentity,
) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    match identity {
        CertificateIdentity::SubjectCn => parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        CertificateIdentity::SanUri | CertificateIdentity::SanDns => {
            let names = parsed.subject_alternative_name().ok()??;
            names
                .value
                .general_names
                .iter()
                .find_map(|name| match (identity, name) {
                    (CertificateIdentity::SanUri, GeneralName::URI(uri)) => Some((*uri).to_owned()),
                    (CertificateIdentity::SanDns, GeneralName::DNSName(dns)) => {
                        Some((*dns).to_owned())
                    }
                    _ => None,
                })
        }
    }
    .filter(|name| !name.is_empty())
}

/// The bearer token of `Authorization`, when it is a gateway key.
pub(crate) fn gateway_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && token.starts_with(API_KEY_PREFIX)).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn auth(expires_unix: Option<i64>, require_api_key: bool) -> AuthConfig {
        let hash: [u8; 32] = Sha256::digest(b"ggk_good").into();
        AuthConfig {
            api_keys: HashMap::from([(
                hash,
                Arc::new(ApiKey {
                    id: "k1".into(),
                    caller: "svc-loans".into(),
                    expires_unix,
                    models: None,
                }),
            )]),
            require_api_key,
            ..AuthConfig::default()
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (HeaderName::from_static(name), value.parse().unwrap()))
            .collect()
    }

    fn who(auth: &AuthConfig, pairs: &[(&'static str, &str)]) -> Identified {
        let caller_header = HeaderName::from_static("x-govgate-caller");
        identify(
            auth,
            &caller_header,
            &headers(pairs),
            None,
            None,
            None,
            || 1_000,
        )
    }

    #[test]
    fn a_key_names_the_caller_whatever_the_header_claims() {
        let found = who(
            &auth(None, false),
            &[
                ("authorization", "Bearer ggk_good"),
                ("x-govgate-caller", "root"),
            ],
        );
        assert_eq!(found.caller.as_deref(), Some("svc-loans"));
        assert_eq!(
            found.auth,
            CallerAuth::ApiKey {
                key_id: "k1".into()
            }
        );
        assert_eq!(found.key.unwrap().id, "k1");
        assert_eq!(found.refusal, None);
    }

    #[test]
    fn unknown_expired_and_missing_keys_are_refused() {
        let refusal = |auth: &AuthConfig, pairs: &[(&'static str, &str)]| who(auth, pairs).refusal;
        assert_eq!(
            refusal(&auth(None, false), &[("authorization", "Bearer ggk_bad")]),
            Some(Refusal::UnknownKey)
        );
        assert_eq!(
            refusal(
                &auth(Some(1_000), false),
                &[("authorization", "bearer ggk_good")]
            ),
            Some(Refusal::ExpiredKey)
        );
        assert_eq!(
            refusal(
                &auth(Some(1_001), false),
                &[("authorization", "Bearer ggk_good")]
            ),
            None
        );
        assert_eq!(
            refusal(&auth(None, true), &[("x-govgate-caller", "svc")]),
            Some(Refusal::NoKey)
        );
        // Not a gateway key: the upstream's business, as without keys.
        let other = who(
            &auth(None, false),
            &[
                ("authorization", "Bearer sk-upstream"),
                ("x-govgate-caller", "svc"),
            ],
        );
        assert_eq!(
            (other.caller.as_deref(), other.refusal),
            (Some("svc"), None)
        );
    }
}
