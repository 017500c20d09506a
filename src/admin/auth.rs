//! Who is calling the admin API: bearer tokens checked against the SHA-256
//! hashes in the configuration, in constant time, and the roles of the
//! principal they belong to; or, with `[admin.jwt]`, a person's JWT from
//! the identity provider (people.rs), named by its issuer and claims.
//!
//! Only hashes are held, so a leaked config or memory dump does not leak
//! usable tokens; the presented token is hashed and compared with every
//! configured hash without stopping early, so timing says nothing about
//! which one (if any) nearly matched.

use super::people::People;
use crate::config::{AdminJwtConfig, AdminToken};
use crate::proxy::jwks::JwksFetcher;
use crate::proxy::jwt::TokenProblem;
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
    /// The token's issuer (`iss`) for a person with a JWT; `None` for a
    /// configured token. Recorded beside the principal.
    pub issuer: Option<String>,
    /// The token's `sub` for a person with a JWT (compared with a
    /// request's JWT subject by the rule "nobody decides their own request").
    pub subject: Option<String>,
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

    /// The caller as a ledger entry records who acted.
    pub fn acted_by(&self) -> crate::ledger::entry::ActedBy {
        crate::ledger::entry::ActedBy {
            principal: self.principal.clone(),
            roles: self.roles.clone(),
            issuer: self.issuer.clone(),
        }
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

/// The configured principals, and the people of `[admin.jwt]`.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Arc<Vec<AdminToken>>,
    people: Option<Arc<People>>,
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
    /// A JWT that is not a configured token was refused (`[admin.jwt]`).
    #[error("{}", .0.describe())]
    Token(TokenProblem),
    /// A verified JWT whose roles claim maps to no govgate role.
    #[error("the token's roles claim maps to no govgate role ([admin.jwt.roles])")]
    NoRole,
}

impl AuthError {
    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "unauthenticated",
            AuthError::Invalid => "invalid_token",
            AuthError::Forbidden { .. } => "forbidden",
            AuthError::Token(TokenProblem::Expired) => "token_expired",
            AuthError::Token(_) => "invalid_token",
            AuthError::NoRole => "no_role",
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = match self {
            AuthError::Missing | AuthError::Invalid | AuthError::Token(_) => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::Forbidden { .. } | AuthError::NoRole => StatusCode::FORBIDDEN,
        };
        // RFC 6750 section 3: a refused token says so, and why.
        let challenge = match &self {
            AuthError::Token(problem) => HeaderValue::from_str(&format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                problem.describe()
            ))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\"")),
            _ => HeaderValue::from_static("Bearer"),
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
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl Tokens {
    /// The principals of `tokens`.
    pub fn new(tokens: Vec<AdminToken>) -> Self {
        Self {
            tokens: Arc::new(tokens),
            people: None,
        }
    }

    /// These principals and the people of `jwt`; for a `jwks_url`, also
    /// the fetcher that keeps its key set, for the app to run and drain.
    pub fn with_people(self, jwt: &AdminJwtConfig) -> (Self, Option<JwksFetcher>) {
        let (people, fetcher) = People::new(jwt);
        let tokens = Self {
            people: Some(Arc::new(people)),
            ..self
        };
        (tokens, fetcher)
    }

    /// The caller presenting `headers`' bearer token: a configured token,
    /// else (with `[admin.jwt]`) a person's JWT. Waits only when a JWT
    /// names a key the issuer's set in force lacks (at most the JWKS fetch
    /// timeout). Cancel-safe.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let token = match self.configured(headers) {
            Err(AuthError::Invalid) => bearer(headers)?,
            done => return done,
        };
        match &self.people {
            Some(people) if people.may_hold(token) => people.authenticate(token).await,
            _ => Err(AuthError::Invalid),
        }
    }

    /// The configured principal whose token `headers` present.
    fn configured(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let token = bearer(headers)?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
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
                issuer: None,
                subject: None,
            })
            .ok_or(AuthError::Invalid)
    }
}

/// The token of `Authorization: Bearer <token>`, trimmed.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
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

    #[tokio::test]
    async fn tokens_map_to_their_principal_and_roles() {
        let bob = tokens()
            .authenticate(&bearer("Bearer bob-secret"))
            .await
            .unwrap();
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
            .await
            .unwrap();
        assert_eq!(alice.principal, "alice");
    }

    #[tokio::test]
    async fn missing_or_wrong_tokens_are_refused() {
        let tokens = tokens();
        assert_eq!(
            tokens.authenticate(&HeaderMap::new()).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            tokens.authenticate(&bearer("Basic YWxpY2U6eA==")).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            tokens.authenticate(&bearer("Bearer alice-secreT")).await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            Tokens::default().authenticate(&bearer("Bearer x")).await,
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
