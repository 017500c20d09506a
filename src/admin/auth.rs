//! Who is calling the admin API: bearer tokens checked against the SHA-256
//! hashes in the configuration, in constant time, and the roles of the
//! principal they belong to.
//!
//! Only hashes are held, so a leaked config or memory dump does not leak
//! usable tokens; the presented token is hashed and compared with every
//! configured hash without stopping early, so timing says nothing about
//! which one (if any) nearly matched.

use crate::config::AdminToken;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// An authenticated caller of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal's name, as recorded in the ledger.
    pub principal: String,
    /// Its roles, as configured.
    pub roles: Vec<String>,
}

impl Caller {
    /// Whether any of `roles` is held; `approver` also matches every
    /// qualified `approver:<q>` role.
    pub fn has_any(&self, roles: &[&str]) -> bool {
        self.roles.iter().any(|held| {
            roles.iter().any(|wanted| {
                held == wanted || (*wanted == "approver" && held.starts_with("approver:"))
            })
        })
    }

    /// `Ok` if any of `roles` is held, else the 403 naming them.
    pub fn require(&self, roles: &[&str]) -> Result<(), AuthError> {
        if self.has_any(roles) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                needed: roles.join(" or "),
            })
        }
    }
}

/// The configured principals.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Arc<Vec<AdminToken>>,
}

/// Why an admin call is refused before it does anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("an `Authorization: Bearer <token>` header is required")]
    Missing,
    /// The token matches no configured principal.
    #[error("the bearer token is not valid")]
    Invalid,
    /// Authenticated, but without a role this call needs.
    #[error("this call needs the role {needed}")]
    Forbidden {
        /// The roles that would do.
        needed: String,
    },
}

impl AuthError {
    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "unauthenticated",
            AuthError::Invalid => "invalid_token",
            AuthError::Forbidden { .. } => "forbidden",
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = match self {
            AuthError::Missing | AuthError::Invalid => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
        };
        let body =
            serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } });
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl Tokens {
    /// The principals of `tokens`.
    pub fn new(tokens: Vec<AdminToken>) -> Self {
        Self {
            tokens: Arc::new(tokens),
        }
    }

    /// The caller presenting `headers`' bearer token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or(AuthError::Missing)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Missing);
        }
        let presented: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let mut found: Option<&AdminToken> = None;
        for candidate in self.tokens.iter() {
            // Every hash is compared, whatever matched before.
            if bool::from(candidate.token_sha256.ct_eq(&presented)) {
                found = Some(candidate);
            }
        }
        found
            .map(|token| Caller {
                principal: token.principal.clone(),
                roles: token.roles.clone(),
            })
            .ok_or(AuthError::Invalid)
    }
}

/// The SHA-256 of a token, as `token_sha256` in the config wants it.
pub fn token_hash_hex(token: &str) -> String {
    crate::ledger::entry::hex(&Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let token = |principal: &str, roles: &[&str], secret: &str| AdminToken {
            principal: principal.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            token_sha256: Sha256::digest(secret.as_bytes()).into(),
        };
        Tokens::new(vec![
            token("alice", &["proposer"], "alice-secret"),
            token("bob", &["approver:ai_officer"], "bob-secret"),
        ])
    }

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn tokens_map_to_their_principal_and_roles() {
        let bob = tokens().authenticate(&bearer("Bearer bob-secret")).unwrap();
        assert_eq!(bob.principal, "bob");
        assert!(
            bob.has_any(&["approver"]),
            "qualified approvers are approvers"
        );
        assert!(!bob.has_any(&["proposer", "admin"]));
        assert_eq!(
            bob.require(&["admin"]),
            Err(AuthError::Forbidden {
                needed: "admin".into()
            })
        );
        let alice = tokens()
            .authenticate(&bearer("bearer  alice-secret "))
            .unwrap();
        assert_eq!(alice.principal, "alice");
    }

    #[test]
    fn missing_or_wrong_tokens_are_refused() {
        let tokens = tokens();
        assert_eq!(
            tokens.authenticate(&HeaderMap::new()),
            Err(AuthError::Missing)
        );
        assert_eq!(
            tokens.authenticate(&bearer("Basic YWxpY2U6eA==")),
            Err(AuthError::Missing)
        );
        assert_eq!(
            tokens.authenticate(&bearer("Bearer alice-secreT")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            Tokens::default().authenticate(&bearer("Bearer x")),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn the_printed_hash_is_what_the_config_expects() {
        assert_eq!(
            token_hash_hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
