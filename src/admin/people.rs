//! People on the admin API (`[admin.jwt]`): a JWT from the organisation's
//! identity provider, verified as the public listener verifies callers'
//! tokens ([`crate::proxy::jwt::JwtAuth`]: signature, issuer, audience,
//! expiry with the leeway), names a person by `principal_claim` and gives
//! them the govgate roles that the values of `roles_claim` map to.
//!
//! The token itself is never kept or logged; the ledger records the
//! principal and the issuer.

use super::auth::{AuthError, Caller};
use crate::config::AdminJwtConfig;
use crate::decision::CallerAuth;
use crate::proxy::jwks::JwksFetcher;
use crate::proxy::jwt::{JwtAuth, TokenProblem};
use serde_json::Value;
use std::collections::BTreeMap;

/// Most values of the roles claim looked at.
const MAX_CLAIM_VALUES: usize = 256;

/// The verifier of people's tokens and their role mapping.
#[derive(Debug)]
pub(super) struct People {
    jwt: JwtAuth,
    roles_claim: String,
    roles: BTreeMap<String, Vec<String>>,
}

impl People {
    /// The people of `config`, and the fetcher of a `jwks_url` key set.
    pub(super) fn new(config: &AdminJwtConfig) -> (Self, Option<JwksFetcher>) {
        let (jwt, fetcher) = JwtAuth::new(&config.jwt);
        let people = People {
            jwt,
            roles_claim: config.roles_claim.clone(),
            roles: config.roles.clone(),
        };
        (people, fetcher)
    }

    /// Whether `token` has the shape of a JWT (three dot-separated
    /// base64url parts); anything else is simply not a valid token.
    pub(super) fn may_hold(&self, token: &str) -> bool {
        token.split('.').count() == 3
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    }

    /// The person `token` names, with their mapped roles. Cancel-safe.
    pub(super) async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        self.jwt.prepare(token).await;
        let verified = self.jwt.verify(token).map_err(AuthError::Token)?;
        let CallerAuth::Jwt {
            issuer, subject, ..
        } = verified.auth
        else {
            // JwtAuth names every verified token by its issuer; were that
            // to change, a person without one is refused, not recorded.
            return Err(AuthError::Invalid);
        };
        if !principal_ok(&verified.caller) {
            return Err(AuthError::Token(TokenProblem::NoCaller));
        }
        let roles = self.roles_of(verified.claims.get(&self.roles_claim));
        if roles.is_empty() {
            return Err(AuthError::NoRole);
        }
        Ok(Caller {
            principal: verified.caller,
            roles,
            issuer: Some(issuer),
            subject,
        })
    }

    /// The govgate roles the claim's values map to, each once, in the
    /// mapping's order.
    fn roles_of(&self, claim: Option<&Value>) -> Vec<String> {
        let values: Vec<&str> = match claim {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many
                .iter()
                .take(MAX_CLAIM_VALUES)
                .filter_map(Value::as_str)
                .collect(),
            _ => Vec::new(),
        };
        let mut roles: Vec<String> = Vec::new();
        for (value, granted) in &self.roles {
            if values.contains(&value.as_str()) {
                for role in granted {
                    if !roles.contains(role) {
                        roles.push(role.clone());
                    }
                }
            }
        }
        roles
    }
}

/// A person's principal must be a name the ledger and the admin API show
/// as configured principals are (letters, digits, `.`, `_`, `-`, `@`; at
/// most 128 bytes), so that it compares with them exactly.
fn principal_ok(principal: &str) -> bool {
    !principal.is_empty()
        && principal.len() <= 128
        && principal
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn people(mapping: &[(&str, &[&str])]) -> People {
        let config = AdminJwtConfig {
            jwt: crate::config::JwtConfig {
                issuer: "https://idp".into(),
                audience: "govgate-admin".into(),
                algorithms: vec![jsonwebtoken::Algorithm::EdDSA],
                keys: crate::config::JwksSource::File(jsonwebtoken::jwk::JwkSet {
                    keys: Vec::new(),
                }),
                leeway_secs: 0,
                caller_claim: "sub".into(),
                policy_claims: vec!["groups".into()],
                required: false,
                cache_entries: 0,
            },
            roles_claim: "groups".into(),
            roles: mapping
                .iter()
                .map(|(value, roles)| {
                    (
                        (*value).to_owned(),
                        roles.iter().map(|r| (*r).to_owned()).collect(),
                    )
                })
                .collect(),
            sign_in: None,
        };
        People::new(&config).0
    }

    #[test]
    fn claim_values_map_to_roles_once_each() {
        let people = people(&[
            ("ai-officers", &["approver:ai_officer", "reviewer"]),
            ("reviewers", &["reviewer"]),
        ]);
        assert_eq!(
            people.roles_of(Some(&json!(["reviewers", "ai-officers", 7, "other"]))),
            vec!["approver:ai_officer", "reviewer"]
        );
        assert_eq!(people.roles_of(Some(&json!("reviewers"))), vec!["reviewer"]);
        assert!(people.roles_of(Some(&json!(["other"]))).is_empty());
        assert!(people.roles_of(Some(&json!({"x": 1}))).is_empty());
        assert!(people.roles_of(None).is_empty());
    }

    #[test]
    fn principals_are_plain_names() {
        assert!(principal_ok("dana@example.org"));
        assert!(principal_ok("00u1abcd-9"));
        assert!(!principal_ok("dana smith"));
        assert!(!principal_ok("d\u{0430}na"));
        assert!(!principal_ok(""));
    }
}
