//! `[admin.jwt]`: people on the admin API named by a JWT bearer token (an
//! OIDC access token) from the organisation's identity provider, besides
//! the `[[admin.tokens]]`. The token checks are those of `[auth.jwt]`
//! (jwt.rs); what differs is which claim names the person
//! (`principal_claim`) and how a claim's values (`roles_claim`, e.g. the
//! person's groups) map to govgate roles (`[admin.jwt.roles]`).

use super::ConfigError;
use super::jwt::{self, JwtConfig, RawJwt};
use super::validate::Checker;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Most entries of `[admin.jwt.roles]`.
const MAX_MAPPED_VALUES: usize = 256;

/// How people's tokens are checked and what roles they get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminJwtConfig {
    /// The token checks. Its `caller_claim` is `principal_claim` and its
    /// only `policy_claims` entry is `roles_claim`.
    pub jwt: JwtConfig,
    /// The claim whose values are looked up in `roles`.
    pub roles_claim: String,
    /// A value of `roles_claim` -> the govgate roles it grants.
    pub roles: BTreeMap<String, Vec<String>>,
    /// `[admin.jwt.sign_in]`: the console signs people in at the identity
    /// provider (OpenID Connect authorization code with PKCE).
    pub sign_in: Option<SignInConfig>,
}

/// `[admin.jwt.sign_in]`: the identity provider's endpoints for the
/// console's sign-in (PKCE always; a client secret when the provider
/// registered the console as a confidential client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInConfig {
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Where the gateway exchanges the code for tokens.
    pub token_endpoint: String,
    /// The console's client id at the provider.
    pub client_id: String,
    /// The console's callback URL as registered at the provider (ends in
    /// `/console/sign-in/callback`).
    pub redirect_url: String,
    /// The scopes asked for (`openid` at least).
    pub scopes: Vec<String>,
    /// The client secret of a confidential client, sent to the token
    /// endpoint with HTTP Basic authentication (RFC 6749 2.3.1).
    pub client_secret: Option<ClientSecret>,
}

/// A client secret: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// `client_secret = { env = "NAME" }` or `{ file = "path" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecret {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<std::path::PathBuf>,
}

impl RawSecret {
    /// The secret itself, read from its variable or file.
    pub(super) fn resolve(
        &self,
        checker: &Checker<'_>,
        key: &str,
        env: &super::Environment,
    ) -> Result<String, ConfigError> {
        super::validate::secret(checker, key, self.env.as_deref(), self.file.as_deref(), env)
    }
}

/// `[admin.jwt.sign_in]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSignIn {
    authorization_endpoint: String,
    token_endpoint: String,
    client_id: String,
    redirect_url: String,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    #[serde(default)]
    client_secret: Option<RawSecret>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".to_owned()]
}

fn check_sign_in(
    checker: &Checker<'_>,
    raw: RawSignIn,
    env: &super::Environment,
) -> Result<SignInConfig, ConfigError> {
    for (key, url) in [
        ("authorization_endpoint", &raw.authorization_endpoint),
        ("token_endpoint", &raw.token_endpoint),
        ("redirect_url", &raw.redirect_url),
    ] {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(checker.error(
                format!("admin.jwt.sign_in.{key}"),
                "an http:// or https:// URL",
            ));
        }
    }
    if !raw.redirect_url.ends_with("/console/sign-in/callback") {
        return Err(checker.error(
            "admin.jwt.sign_in.redirect_url",
            "the console's callback: https://HOST:PORT/console/sign-in/callback",
        ));
    }
    if raw.client_id.trim().is_empty() {
        return Err(checker.error("admin.jwt.sign_in.client_id", "must not be empty"));
    }
    if !raw.scopes.iter().any(|scope| scope == "openid") {
        return Err(checker.error("admin.jwt.sign_in.scopes", "must hold \"openid\""));
    }
    Ok(SignInConfig {
        authorization_endpoint: raw.authorization_endpoint,
        token_endpoint: raw.token_endpoint,
        client_id: raw.client_id,
        redirect_url: raw.redirect_url,
        scopes: raw.scopes,
        client_secret: match raw.client_secret {
            Some(secret) => Some(ClientSecret(secret.resolve(
                checker,
                "admin.jwt.sign_in.client_secret",
                env,
            )?)),
            None => None,
        },
    })
}

/// `[admin.jwt]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdminJwt {
    issuer: String,
    audience: String,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    jwks_file: Option<std::path::PathBuf>,
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default = "jwt::default_min_refresh")]
    jwks_min_refresh_secs: u64,
    #[serde(default = "jwt::default_refresh")]
    jwks_refresh_secs: u64,
    #[serde(default = "jwt::default_fetch_timeout")]
    jwks_fetch_timeout_ms: u64,
    #[serde(default = "jwt::default_leeway")]
    leeway_secs: u64,
    #[serde(default = "jwt::default_caller_claim")]
    principal_claim: String,
    #[serde(default = "default_roles_claim")]
    roles_claim: String,
    #[serde(default)]
    roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    sign_in: Option<RawSignIn>,
}

fn default_roles_claim() -> String {
    "groups".to_owned()
}

pub(super) fn check(
    checker: &Checker<'_>,
    raw: RawAdminJwt,
    env: &super::Environment,
) -> Result<AdminJwtConfig, ConfigError> {
    const SECTION: &str = "admin.jwt";
    if raw.principal_claim.is_empty() {
        return Err(checker.error("admin.jwt.principal_claim", "must not be empty"));
    }
    if raw.roles_claim.is_empty() {
        return Err(checker.error("admin.jwt.roles_claim", "must not be empty"));
    }
    if raw.roles.is_empty() {
        return Err(checker.error(
            "admin.jwt.roles",
            "map at least one value of the roles claim to govgate roles (`\"ai-officers\" = [\"approver:ai_officer\"]`)",
        ));
    }
    if raw.roles.len() > MAX_MAPPED_VALUES {
        return Err(checker.error(
            "admin.jwt.roles",
            format!("at most {MAX_MAPPED_VALUES} values"),
        ));
    }
    for (value, roles) in &raw.roles {
        let key = format!("admin.jwt.roles.{value:?}");
        if value.is_empty() {
            return Err(checker.error(key, "a claim value must not be empty"));
        }
        if roles.is_empty() {
            return Err(checker.error(key, "at least one role"));
        }
        for (i, role) in roles.iter().enumerate() {
            super::governance::check_role(checker, &format!("{key}[{i}]"), role)?;
        }
    }
    let sign_in = raw
        .sign_in
        .map(|sign_in| check_sign_in(checker, sign_in, env))
        .transpose()?;
    let shared = RawJwt {
        issuer: raw.issuer,
        audience: raw.audience,
        algorithms: raw.algorithms,
        jwks_file: raw.jwks_file,
        jwks_url: raw.jwks_url,
        jwks_min_refresh_secs: raw.jwks_min_refresh_secs,
        jwks_refresh_secs: raw.jwks_refresh_secs,
        jwks_fetch_timeout_ms: raw.jwks_fetch_timeout_ms,
        leeway_secs: raw.leeway_secs,
        caller_claim: raw.principal_claim,
        policy_claims: vec![raw.roles_claim.clone()],
        required: false,
        // A person's few calls gain little from the verified-token cache;
        // its default bound keeps it small either way.
        cache_entries: jwt::default_cache_entries(),
    };
    let jwt = jwt::check_in(checker, SECTION, shared, env)?;
    Ok(AdminJwtConfig {
        jwt,
        roles_claim: raw.roles_claim,
        roles: raw.roles,
        sign_in,
    })
}
