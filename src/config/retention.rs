//! Payload retention: `[models.retention] payloads = "200d"` erases a
//! decision's payloads (never its entry or proofs) that long after it was
//! recorded; `[retention] every_secs` says how often the gateway looks.
//!
//! The EU AI Act asks deployers and providers to keep the logs of a
//! high-risk system for at least six months (Art. 19(1), 26(6)). The
//! entries always stay; the payloads are what a shorter setting removes,
//! and a setting under [`MINIMUM`] is refused unless the model says so
//! explicitly (`payloads_below_minimum = true`).

use super::ConfigError;
use super::validate::Checker;
use serde::Deserialize;
use std::time::Duration;

/// Six months, rounded up to whole days: the floor a shorter setting must
/// override explicitly.
pub(super) const MINIMUM: Duration = Duration::from_secs(183 * 86_400);
/// Default interval between retention runs.
const DEFAULT_EVERY_SECS: u64 = 3_600;

/// `[retention]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRetention {
    pub(crate) every_secs: u64,
}

impl Default for RawRetention {
    fn default() -> Self {
        Self {
            every_secs: DEFAULT_EVERY_SECS,
        }
    }
}

/// `[models.retention]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModelRetention {
    pub(crate) payloads: String,
    #[serde(default)]
    pub(crate) payloads_below_minimum: bool,
}

/// How often retention runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Between two runs.
    pub every: Duration,
}

/// One model's payload retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadRetention {
    /// How long after a decision was recorded its payloads stay.
    pub keep: Duration,
    /// The setting as written (`"200d"`), for entries and messages.
    pub written: String,
}

pub(super) fn check(
    checker: &Checker<'_>,
    raw: RawRetention,
) -> Result<RetentionConfig, ConfigError> {
    if raw.every_secs == 0 {
        return Err(checker.error("retention.every_secs", "must be at least 1"));
    }
    Ok(RetentionConfig {
        every: Duration::from_secs(raw.every_secs),
    })
}

pub(super) fn check_model(
    checker: &Checker<'_>,
    key: &str,
    raw: RawModelRetention,
) -> Result<PayloadRetention, ConfigError> {
    let keep = parse_duration(&raw.payloads).ok_or_else(|| {
        checker.error(
            format!("{key}.payloads"),
            format!(
                "{:?} is not a duration: a whole number and a unit, d, h, m or s (\"200d\")",
                raw.payloads
            ),
        )
    })?;
    if keep < MINIMUM && !raw.payloads_below_minimum {
        return Err(checker.error(
            format!("{key}.payloads"),
            format!(
                "{:?} is shorter than six months (183d), the minimum the EU AI Act sets for \
                 keeping a high-risk system's logs (Art. 19(1), 26(6)); set \
                 payloads_below_minimum = true if this model may keep its payloads for less",
                raw.payloads
            ),
        ));
    }
    Ok(PayloadRetention {
        keep,
        written: raw.payloads,
    })
}

/// `"200d"`, `"12h"`, `"30m"`, `"45s"`: a positive whole number and a unit.
fn parse_duration(text: &str) -> Option<Duration> {
    let unit = match text.chars().last()? {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return None,
    };
    let number = &text[..text.len() - 1];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = number.parse::<u64>().ok()?.checked_mul(unit)?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_are_a_whole_number_and_a_unit() {
        assert_eq!(
            parse_duration("200d"),
            Some(Duration::from_secs(200 * 86_400))
        );
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        for bad in [
            "",
            "d",
            "0d",
            "1.5d",
            "-1d",
            "10",
            "10w",
            "1 d",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
