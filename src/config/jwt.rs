//! `[auth.jwt]`: callers named by a JWT bearer token (an OIDC access
//! token) signed by the configured issuer: the accepted algorithms, the key
//! set (a JWKS file read here, or a URL the gateway fetches), the clock
//! skew, which claim is the caller and which claims the policies see.

use super::ConfigError;
use super::validate::Checker;
use serde::Deserialize;
use std::time::Duration;

/// The algorithms a token may be signed with: asymmetric only. `none` and
/// the HMAC family are never accepted (an HMAC "signed" with the public
/// key would pass a verifier that took the key set's bytes as a secret).
const ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// Most keys kept from one key set.
const MAX_KEYS: usize = 64;

/// Most entries `auth.jwt.cache_entries` may ask for (about 300 bytes each).
const MAX_CACHE_ENTRIES: usize = 1_000_000;

/// Most bytes of a fetched (or read) key set.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// How tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry (one of its values).
    pub audience: String,
    /// The accepted algorithms, a subset of [`ALGORITHMS`].
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Where the verification keys come from.
    pub keys: JwksSource,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// The claim whose (string) value is the caller.
    pub caller_claim: String,
    /// Claims handed to the policies as `input.claims`.
    pub policy_claims: Vec<String>,
    /// Refuse requests that establish no caller by token, key or certificate.
    pub required: bool,
    /// How many verified tokens are remembered (by their hash) so a token
    /// seen again skips the signature check; 0 turns the cache off.
    pub cache_entries: usize,
}

/// The key set's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `jwks_file`, read at start.
    File(jsonwebtoken::jwk::JwkSet),
    /// `jwks_url`, fetched by the gateway.
    Url(JwksUrl),
}

/// `jwks_url` and how it is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    /// The key set's address (`https://`, or `http://` for a local issuer).
    pub url: http::Uri,
    /// A token with an unknown `kid` triggers a fetch at most this often.
    pub min_refresh: Duration,
    /// The set is fetched again this often regardless (so removed keys go).
    pub refresh: Duration,
    /// One fetch's deadline.
    pub fetch_timeout: Duration,
}

/// `[auth.jwt]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    pub(super) issuer: String,
    pub(super) audience: String,
    #[serde(default)]
    pub(super) algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub(super) jwks_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub(super) jwks_url: Option<String>,
    #[serde(default = "default_min_refresh")]
    pub(super) jwks_min_refresh_secs: u64,
    #[serde(default = "default_refresh")]
    pub(super) jwks_refresh_secs: u64,
    #[serde(default = "default_fetch_timeout")]
    pub(super) jwks_fetch_timeout_ms: u64,
    #[serde(default = "default_leeway")]
    pub(super) leeway_secs: u64,
    #[serde(default = "default_caller_claim")]
    pub(super) caller_claim: String,
    #[serde(default)]
    pub(super) policy_claims: Vec<String>,
    #[serde(default)]
    pub(super) required: bool,
    #[serde(default = "default_cache_entries")]
    pub(super) cache_entries: usize,
}

pub(super) fn default_min_refresh() -> u64 {
    30
}
pub(super) fn default_refresh() -> u64 {
    600
}
pub(super) fn default_fetch_timeout() -> u64 {
    5_000
}
pub(super) fn default_leeway() -> u64 {
    60
}
pub(super) fn default_cache_entries() -> usize {
    10_000
}
pub(super) fn default_caller_claim() -> String {
    "sub".to_owned()
}

pub(super) fn check(
    checker: &Checker<'_>,
    raw: RawJwt,
    env: &super::Environment,
) -> Result<JwtConfig, ConfigError> {
    check_in(checker, "auth.jwt", raw, env)
}

/// [`check`] for the table `section` (`auth.jwt`, `admin.jwt`), whose
/// name the errors give.
pub(super) fn check_in(
    checker: &Checker<'_>,
    section: &str,
    mut raw: RawJwt,
    env: &super::Environment,
) -> Result<JwtConfig, ConfigError> {
    let key = |name: &str| format!("{section}.{name}");
    if raw.issuer.is_empty() || raw.issuer.len() > crate::decision::MAX_NAME_BYTES {
        return Err(checker.error(
            key("issuer"),
            format!("1 to {} bytes", crate::decision::MAX_NAME_BYTES),
        ));
    }
    if raw.audience.is_empty() {
        return Err(checker.error(key("audience"), "must not be empty"));
    }
    let names = raw
        .algorithms
        .take()
        .unwrap_or_else(|| ALGORITHMS.iter().map(|a| (*a).to_owned()).collect());
    if names.is_empty() {
        return Err(checker.error(key("algorithms"), "list at least one algorithm"));
    }
    let mut algorithms = Vec::new();
    for name in &names {
        if !ALGORITHMS.contains(&name.as_str()) {
            return Err(checker.error(
                key("algorithms"),
                format!(
                    "`{name}` is not accepted: one of {} (never `none` or HS*: a token must be signed by the issuer's private key)",
                    ALGORITHMS.join(", ")
                ),
            ));
        }
        let algorithm = name
            .parse::<jsonwebtoken::Algorithm>()
            .map_err(|err| checker.error(key("algorithms"), err.to_string()))?;
        if !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    let keys = match (raw.jwks_file.take(), raw.jwks_url.take()) {
        (Some(file), None) => {
            let key = key("jwks_file");
            let path = env.base_dir().join(&file);
            let bytes = std::fs::read(&path).map_err(|err| {
                checker.error(&key, format!("cannot read `{}`: {err}", path.display()))
            })?;
            let set = parse_jwks(&bytes)
                .map_err(|err| checker.error(&key, format!("`{}`: {err}", path.display())))?;
            JwksSource::File(set)
        }
        (None, Some(url)) => JwksSource::Url(jwks_url(checker, section, &url, &raw)?),
        _ => {
            return Err(checker.error(section, "set exactly one of jwks_file and jwks_url"));
        }
    };
    if raw.caller_claim.is_empty() {
        return Err(checker.error(key("caller_claim"), "must not be empty"));
    }
    if raw.policy_claims.len() > 32 {
        return Err(checker.error(key("policy_claims"), "at most 32 claims"));
    }
    if raw.cache_entries > MAX_CACHE_ENTRIES {
        return Err(checker.error(
            key("cache_entries"),
            format!("at most {MAX_CACHE_ENTRIES} (0 turns the cache off)"),
        ));
    }
    Ok(JwtConfig {
        issuer: raw.issuer,
        audience: raw.audience,
        algorithms,
        keys,
        leeway_secs: raw.leeway_secs,
        caller_claim: raw.caller_claim,
        policy_claims: raw.policy_claims,
        required: raw.required,
        cache_entries: raw.cache_entries,
    })
}

fn jwks_url(
    checker: &Checker<'_>,
    section: &str,
    url: &str,
    raw: &RawJwt,
) -> Result<JwksUrl, ConfigError> {
    let key = |name: &str| format!("{section}.{name}");
    let parsed: http::Uri = url
        .parse()
        .map_err(|err| checker.error(key("jwks_url"), format!("`{url}`: {err}")))?;
    if !matches!(parsed.scheme_str(), Some("https" | "http")) || parsed.host().is_none() {
        return Err(checker.error(
            key("jwks_url"),
            format!("`{url}`: an https:// (or http://) URL with a host"),
        ));
    }
    if raw.jwks_min_refresh_secs == 0 || raw.jwks_refresh_secs == 0 {
        return Err(checker.error(
            key("jwks_min_refresh_secs"),
            "jwks_min_refresh_secs and jwks_refresh_secs must be at least 1",
        ));
    }
    if raw.jwks_fetch_timeout_ms == 0 {
        return Err(checker.error(key("jwks_fetch_timeout_ms"), "must be at least 1"));
    }
    Ok(JwksUrl {
        url: parsed,
        min_refresh: Duration::from_secs(raw.jwks_min_refresh_secs),
        refresh: Duration::from_secs(raw.jwks_refresh_secs),
        fetch_timeout: Duration::from_millis(raw.jwks_fetch_timeout_ms),
    })
}

/// Why bytes are not a JWK set the gateway takes.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Over [`MAX_JWKS_BYTES`].
    #[error("larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// Not JSON with a `keys` array.
    #[error("not a JWK set: {0}")]
    NotASet(#[source] serde_json::Error),
    /// More than [`MAX_KEYS`] keys.
    #[error("more than {MAX_KEYS} keys")]
    TooManyKeys,
}

/// A JWK set (RFC 7517 section 5) from its JSON bytes, at most
/// [`MAX_JWKS_BYTES`] and [`MAX_KEYS`] keys. Keys of kinds the gateway
/// does not verify with (symmetric `oct` keys, unknown curves) are kept
/// here and skipped when the set is put to use.
pub fn parse_jwks(bytes: &[u8]) -> Result<jsonwebtoken::jwk::JwkSet, JwksError> {
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    // Keys one at a time: a key of a kind this library does not know (an
    // unknown `kty` or curve) is dropped, not the whole set.
    #[derive(Deserialize)]
    struct Loose {
        keys: Vec<serde_json::Value>,
    }
    let loose: Loose = serde_json::from_slice(bytes).map_err(JwksError::NotASet)?;
    if loose.keys.len() > MAX_KEYS {
        return Err(JwksError::TooManyKeys);
    }
    let keys = loose
        .keys
        .into_iter()
        .filter_map(|key| serde_json::from_value(key).ok())
        .collect();
    Ok(jsonwebtoken::jwk::JwkSet { keys })
}
