//! `[rate_limit]` and `[models.rate_limit]`: how many requests one caller
//! may send to one model, as a token bucket.

use super::ConfigError;
use super::validate::Checker;
use serde::Deserialize;

/// Callers tracked at once unless `rate_limit.max_tracked_callers` says.
const DEFAULT_MAX_TRACKED: u64 = 100_000;

/// One caller's allowance on one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second: the sustained rate.
    pub per_second: f64,
    /// Bucket size: requests that may come at once after a quiet spell.
    pub burst: u32,
}

/// The gateway-wide rule and the bound on what is tracked.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// For models without a rule of their own; `None`: unlimited.
    pub default: Option<RateLimit>,
    /// (caller, model) pairs tracked at once.
    pub max_tracked: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            default: None,
            max_tracked: DEFAULT_MAX_TRACKED as usize,
        }
    }
}

/// `[rate_limit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimits {
    #[serde(default)]
    pub(crate) requests_per_second: Option<f64>,
    #[serde(default)]
    pub(crate) burst: Option<u64>,
    #[serde(default)]
    pub(crate) max_tracked_callers: Option<u64>,
}

/// `[models.rate_limit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModelRateLimit {
    pub(crate) requests_per_second: f64,
    #[serde(default)]
    pub(crate) burst: Option<u64>,
}

/// A rate and its burst, or `None` for a rate of 0 (unlimited).
fn rule(
    checker: &Checker<'_>,
    key: &str,
    per_second: f64,
    burst: Option<u64>,
) -> Result<Option<RateLimit>, ConfigError> {
    if !(0.0..=1e9).contains(&per_second) {
        return Err(checker.error(
            format!("{key}.requests_per_second"),
            "must be a number from 0 (no limit) to 1e9",
        ));
    }
    if per_second == 0.0 {
        return Ok(None);
    }
    // By default a caller may send one second's worth at once (at least 1).
    let burst = burst.unwrap_or(per_second.ceil() as u64);
    let burst = u32::try_from(burst)
        .ok()
        .filter(|burst| *burst >= 1)
        .ok_or_else(|| checker.error(format!("{key}.burst"), "must be 1 to 4294967295"))?;
    Ok(Some(RateLimit { per_second, burst }))
}

pub(super) fn check(checker: &Checker<'_>, raw: RawRateLimits) -> Result<RateLimits, ConfigError> {
    let default = match raw.requests_per_second {
        Some(rate) => rule(checker, "rate_limit", rate, raw.burst)?,
        None if raw.burst.is_some() => {
            return Err(checker.error("rate_limit.burst", "needs rate_limit.requests_per_second"));
        }
        None => None,
    };
    let max_tracked = raw.max_tracked_callers.unwrap_or(DEFAULT_MAX_TRACKED);
    let max_tracked = usize::try_from(max_tracked)
        .ok()
        .filter(|max| (1..=100_000_000).contains(max))
        .ok_or_else(|| checker.error("rate_limit.max_tracked_callers", "must be 1 to 100000000"))?;
    Ok(RateLimits {
        default,
        max_tracked,
    })
}

/// A model's own rule: `Some(None)` when it turns limiting off.
pub(super) fn check_model(
    checker: &Checker<'_>,
    key: &str,
    raw: Option<RawModelRateLimit>,
) -> Result<Option<Option<RateLimit>>, ConfigError> {
    raw.map(|raw| rule(checker, key, raw.requests_per_second, raw.burst))
        .transpose()
}
