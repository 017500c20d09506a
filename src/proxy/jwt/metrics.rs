//! The JWT and JWKS metric families: tokens by result, the verified-token
//! cache's hits and misses, key-set fetches by result, the keys in force
//! and the time of the last good fetch. Labels are fixed words.

use super::TokenProblem;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// How a key-set fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchResult {
    /// A set with at least one usable key.
    Ok,
    /// No connection, or an answer other than 2xx.
    HttpError,
    /// Not a JWK set, over the size cap, or no usable key in it.
    ParseError,
    /// No whole answer within `jwks_fetch_timeout_ms`.
    Timeout,
}

impl FetchResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::HttpError => "http_error",
            Self::ParseError => "parse_error",
            Self::Timeout => "timeout",
        }
    }
}

/// Every `result` of a token's check.
const TOKEN_RESULTS: [&str; 11] = [
    "accepted",
    "malformed",
    "algorithm",
    "unknown_kid",
    "signature",
    "expired",
    "not_yet_valid",
    "issuer",
    "audience",
    "missing_claim",
    "no_caller",
];

/// Every way a fetch ends.
const FETCH_RESULTS: [FetchResult; 4] = [
    FetchResult::Ok,
    FetchResult::HttpError,
    FetchResult::ParseError,
    FetchResult::Timeout,
];

/// The `result` label of a token's check.
fn token_result(result: Result<(), TokenProblem>) -> &'static str {
    match result {
        Ok(()) => "accepted",
        Err(TokenProblem::Malformed) => "malformed",
        Err(TokenProblem::Algorithm) => "algorithm",
        Err(TokenProblem::UnknownKey) => "unknown_kid",
        Err(TokenProblem::BadSignature) => "signature",
        Err(TokenProblem::Expired) => "expired",
        Err(TokenProblem::NotYetValid) => "not_yet_valid",
        Err(TokenProblem::WrongIssuer) => "issuer",
        Err(TokenProblem::WrongAudience) => "audience",
        Err(TokenProblem::MissingClaim) => "missing_claim",
        Err(TokenProblem::NoCaller) => "no_caller",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_result_has_a_series_from_the_start() {
        let problems = [
            TokenProblem::Malformed,
            TokenProblem::Algorithm,
            TokenProblem::UnknownKey,
            TokenProblem::BadSignature,
            TokenProblem::Expired,
            TokenProblem::NotYetValid,
            TokenProblem::WrongIssuer,
            TokenProblem::WrongAudience,
            TokenProblem::MissingClaim,
            TokenProblem::NoCaller,
        ];
        let mut named: Vec<&str> = problems.map(|p| token_result(Err(p))).to_vec();
        named.push(token_result(Ok(())));
        named.sort_unstable();
        let mut listed = TOKEN_RESULTS.to_vec();
        listed.sort_unstable();
        assert_eq!(named, listed);
    }
}

/// The families; cheap to clone. [`JwtMetrics::detached`] counts into
/// families no registry serves (a verifier used outside the request path).
#[derive(Clone)]
pub struct JwtMetrics {
    tokens: IntCounterVec,
    cache: IntCounterVec,
    fetches: IntCounterVec,
    keys: IntGauge,
    last_fetch: IntGauge,
}

impl JwtMetrics {
    fn families() -> Result<Self, prometheus::Error> {
        Ok(Self {
            tokens: IntCounterVec::new(
                Opts::new(
                    "govgate_jwt_tokens_total",
                    "Caller JWTs checked, by result: accepted, or the problem that refused it.",
                ),
                &["result"],
            )?,
            cache: IntCounterVec::new(
                Opts::new(
                    "govgate_jwt_cache_lookups_total",
                    "Lookups in the verified-token cache, by result (hit, miss).",
                ),
                &["result"],
            )?,
            fetches: IntCounterVec::new(
                Opts::new(
                    "govgate_jwks_fetches_total",
                    "Fetches of auth.jwt.jwks_url, by result (ok, http_error, parse_error, timeout).",
                ),
                &["result"],
            )?,
            keys: IntGauge::new(
                "govgate_jwks_keys",
                "Usable keys in the JWT key set in force.",
            )?,
            last_fetch: IntGauge::new(
                "govgate_jwks_last_success_timestamp_seconds",
                "When auth.jwt.jwks_url was last fetched with a usable key (Unix seconds; 0 before the first, and for jwks_file).",
            )?,
        })
    }

    /// Registers the families in `registry`, every series from 0 (so a
    /// rate over them exists before the first token or fetch).
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::families()?;
        for result in TOKEN_RESULTS {
            metrics.tokens.with_label_values(&[result]);
        }
        for result in ["hit", "miss"] {
            metrics.cache.with_label_values(&[result]);
        }
        for result in FETCH_RESULTS {
            metrics.fetches.with_label_values(&[result.as_str()]);
        }
        registry.register(Box::new(metrics.tokens.clone()))?;
        registry.register(Box::new(metrics.cache.clone()))?;
        registry.register(Box::new(metrics.fetches.clone()))?;
        registry.register(Box::new(metrics.keys.clone()))?;
        registry.register(Box::new(metrics.last_fetch.clone()))?;
        Ok(metrics)
    }

    /// Families that no registry serves.
    pub fn detached() -> Self {
        // INVARIANT: the names and help texts above are valid, so building
        // the families cannot fail (registering them could, here we do not).
        Self::families().expect("INVARIANT: fixed, valid metric families")
    }

    pub(super) fn count_token(&self, result: &Result<super::Verified, TokenProblem>) {
        let result = token_result(result.as_ref().map(|_| ()).map_err(|problem| *problem));
        self.tokens.with_label_values(&[result]).inc();
    }

    pub(super) fn count_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache.with_label_values(&[result]).inc();
    }

    pub(crate) fn count_fetch(&self, result: FetchResult) {
        self.fetches.with_label_values(&[result.as_str()]).inc();
        if result == FetchResult::Ok {
            let now = jsonwebtoken::get_current_timestamp();
            self.last_fetch.set(i64::try_from(now).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn set_keys(&self, keys: usize) {
        self.keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
    }
}
