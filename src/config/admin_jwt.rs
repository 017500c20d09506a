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
    })
}
