//! `[review]`: where the Rego policies are, what a failed evaluation
//! means, and how long a held answer waits for a reviewer.

use super::raw::{RawPolicyApproval, RawReview, RawTimeoutRule};
use super::validate::Checker;
use super::{ConfigError, ModelConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a policy evaluation that fails at run time decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnPolicyError {
    /// Refuse the request (fail closed; the default).
    #[default]
    Deny,
    /// Hold the answer for a reviewer.
    Hold,
    /// Let it pass (fail open; counted and logged).
    Allow,
}

impl OnPolicyError {
    /// The name in config, ledger and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            OnPolicyError::Deny => "deny",
            OnPolicyError::Hold => "hold",
            OnPolicyError::Allow => "allow",
        }
    }
}

/// What happens to a held answer nobody decided in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// The client gets 403 `review_timed_out` (the default).
    #[default]
    Reject,
    /// The client gets the original answer.
    Release,
}

impl OnTimeout {
    /// The name in config, ledger and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Reject => "reject",
            OnTimeout::Release => "release",
        }
    }
}

/// A timeout for holds of one model and/or with a reason that starts
/// with a prefix. The first matching rule wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutRule {
    /// Only holds of this model, if set.
    pub model: Option<String>,
    /// Only holds with a reason starting with this, if set.
    pub reason_prefix: Option<String>,
    /// How long the hold waits.
    pub timeout: Duration,
    /// What then happens.
    pub on_timeout: OnTimeout,
}

/// The most `review.max_pending` may be: each pending review has a timer
/// task and an entry in memory.
const MAX_PENDING_LIMIT: u64 = 1_000_000;

/// The checked `[review]` section.
#[derive(Debug, Clone)]
pub struct ReviewConfig {
    /// Folder of the Rego policies, if any; without it nothing is reviewed.
    pub policies_dir: Option<PathBuf>,
    /// What a failed evaluation decides (default deny).
    pub on_error: OnPolicyError,
    /// How long a hold waits when no rule matches (default 24 h).
    pub timeout: Duration,
    /// What then happens (default reject).
    pub on_timeout: OnTimeout,
    /// Per model or reason timeouts, first match wins.
    pub timeout_rules: Vec<TimeoutRule>,
    /// The longest `Prefer: wait=N` honoured on a poll (default 60 s).
    pub max_wait: Duration,
    /// How long a decided review's answer stays available to polls (default 24 h).
    pub keep_decided: Duration,
    /// The largest answer that can be held (default 16 MiB).
    pub max_held_bytes: usize,
    /// Pending reviews (holds and flags) at most (default 10 000): a hold
    /// beyond is refused, a flag beyond is not opened.
    pub max_pending: usize,
    /// Bytes of request and answer bodies the open and recently decided
    /// reviews keep in memory at most (default 256 MiB): a hold beyond is
    /// refused, a flag beyond is opened without its bodies.
    pub max_kept_bytes: usize,
    /// Who must approve a policy set before it is evaluated; `None`
    /// (`policy_approval = "none"`, the default) loads sets as they are.
    pub policy_approval: Option<super::ApprovalLevel>,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            policies_dir: None,
            on_error: OnPolicyError::Deny,
            timeout: Duration::from_secs(86_400),
            on_timeout: OnTimeout::Reject,
            timeout_rules: Vec::new(),
            max_wait: Duration::from_secs(60),
            keep_decided: Duration::from_secs(86_400),
            max_held_bytes: 16 << 20,
            max_pending: 10_000,
            max_kept_bytes: 256 << 20,
            policy_approval: None,
        }
    }
}

impl ReviewConfig {
    /// The timeout and its outcome for a hold of `model` with `reasons`.
    pub fn timeout_for(&self, model: &str, reasons: &[String]) -> (Duration, OnTimeout) {
        self.timeout_rules
            .iter()
            .find(|rule| {
                rule.model.as_deref().is_none_or(|m| m == model)
                    && rule.reason_prefix.as_deref().is_none_or(|prefix| {
                        reasons.iter().any(|reason| reason.starts_with(prefix))
                    })
            })
            .map_or((self.timeout, self.on_timeout), |rule| {
                (rule.timeout, rule.on_timeout)
            })
    }
}

pub(super) fn check(
    checker: &Checker<'_>,
    raw: RawReview,
    base_dir: &Path,
    models: &[ModelConfig],
) -> Result<ReviewConfig, ConfigError> {
    let defaults = ReviewConfig::default();
    let on_error = match raw.on_error.as_deref() {
        None | Some("deny") => OnPolicyError::Deny,
        Some("hold") => OnPolicyError::Hold,
        Some("allow") => OnPolicyError::Allow,
        Some(other) => {
            return Err(checker.error(
                "review.on_error",
                format!("`{other}` is not deny, hold or allow"),
            ));
        }
    };
    let timeout_rules = raw
        .timeouts
        .into_iter()
        .enumerate()
        .map(|(i, rule)| check_rule(checker, &format!("review.timeouts[{i}]"), rule, models))
        .collect::<Result<_, _>>()?;
    let max_held_bytes = match raw.max_held_bytes {
        Some(0) => return Err(checker.error("review.max_held_bytes", "must be greater than 0")),
        Some(bytes) => usize::try_from(bytes)
            .map_err(|_| checker.error("review.max_held_bytes", "is too large"))?,
        None => defaults.max_held_bytes,
    };
    let max_kept_bytes = match raw.max_kept_bytes {
        Some(bytes) => usize::try_from(bytes)
            .map_err(|_| checker.error("review.max_kept_bytes", "is too large"))?,
        None => defaults.max_kept_bytes.max(max_held_bytes),
    };
    if max_kept_bytes < max_held_bytes {
        // Otherwise an answer the size the config allows to hold could
        // never be held.
        return Err(checker.error(
            "review.max_kept_bytes",
            format!("must be at least review.max_held_bytes ({max_held_bytes})"),
        ));
    }
    Ok(ReviewConfig {
        policies_dir: raw.policies_dir.map(|dir| base_dir.join(dir)),
        on_error,
        timeout: seconds(checker, "review.timeout_secs", raw.timeout_secs)?
            .unwrap_or(defaults.timeout),
        on_timeout: on_timeout(checker, "review.on_timeout", raw.on_timeout.as_deref())?,
        timeout_rules,
        max_wait: seconds(checker, "review.max_wait_secs", raw.max_wait_secs)?
            .unwrap_or(defaults.max_wait),
        keep_decided: seconds(checker, "review.keep_decided_secs", raw.keep_decided_secs)?
            .unwrap_or(defaults.keep_decided),
        max_held_bytes,
        max_pending: match raw.max_pending {
            Some(count @ 1..=MAX_PENDING_LIMIT) => count as usize,
            Some(_) => {
                return Err(checker.error(
                    "review.max_pending",
                    format!("must be between 1 and {MAX_PENDING_LIMIT}"),
                ));
            }
            None => defaults.max_pending,
        },
        max_kept_bytes,
        policy_approval: policy_approval(checker, raw.policy_approval)?,
    })
}

/// `review.policy_approval`: `"none"` (or absent) for no change control,
/// else the approval policy of policy sets, checked as
/// `[governance.approval]` is.
fn policy_approval(
    checker: &Checker<'_>,
    raw: Option<RawPolicyApproval>,
) -> Result<Option<super::ApprovalLevel>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(RawPolicyApproval::Word(word)) if word == "none" => Ok(None),
        Some(RawPolicyApproval::Word(word)) => Err(checker.error(
            "review.policy_approval",
            format!(
                "`{word}` is not \"none\" nor a table {{ approvers = N, required_roles = [...] }}"
            ),
        )),
        Some(RawPolicyApproval::Level(level)) => super::governance::check_level(
            checker,
            "review.policy_approval",
            level.approvers,
            level.required_roles,
        )
        .map(Some),
    }
}

fn check_rule(
    checker: &Checker<'_>,
    key: &str,
    raw: RawTimeoutRule,
    models: &[ModelConfig],
) -> Result<TimeoutRule, ConfigError> {
    if let Some(model) = &raw.model
        && !models.iter().any(|m| &m.name == model)
    {
        return Err(checker.error(
            format!("{key}.model"),
            format!("no model is named `{model}`"),
        ));
    }
    if raw.model.is_none() && raw.reason_prefix.is_none() {
        return Err(checker.error(
            key,
            "needs `model`, `reason_prefix` or both (the default is `review.timeout_secs`)",
        ));
    }
    let timeout = seconds(
        checker,
        &format!("{key}.timeout_secs"),
        Some(raw.timeout_secs),
    )?
    .unwrap_or_default();
    Ok(TimeoutRule {
        model: raw.model,
        reason_prefix: raw.reason_prefix,
        timeout,
        on_timeout: on_timeout(
            checker,
            &format!("{key}.on_timeout"),
            raw.on_timeout.as_deref(),
        )?,
    })
}

fn seconds(
    checker: &Checker<'_>,
    key: &str,
    value: Option<u64>,
) -> Result<Option<Duration>, ConfigError> {
    match value {
        Some(0) => Err(checker.error(key, "must be greater than 0")),
        Some(secs) => Ok(Some(Duration::from_secs(secs))),
        None => Ok(None),
    }
}

fn on_timeout(
    checker: &Checker<'_>,
    key: &str,
    value: Option<&str>,
) -> Result<OnTimeout, ConfigError> {
    match value {
        None | Some("reject") => Ok(OnTimeout::Reject),
        Some("release") => Ok(OnTimeout::Release),
        Some(other) => Err(checker.error(key, format!("`{other}` is not reject or release"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        model: Option<&str>,
        prefix: Option<&str>,
        secs: u64,
        outcome: OnTimeout,
    ) -> TimeoutRule {
        TimeoutRule {
            model: model.map(str::to_owned),
            reason_prefix: prefix.map(str::to_owned),
            timeout: Duration::from_secs(secs),
            on_timeout: outcome,
        }
    }

    #[test]
    fn first_matching_rule_wins_else_the_default() {
        let config = ReviewConfig {
            timeout_rules: vec![
                rule(Some("credit"), Some("borderline"), 60, OnTimeout::Release),
                rule(Some("credit"), None, 120, OnTimeout::Reject),
                rule(None, Some("high-risk"), 30, OnTimeout::Release),
            ],
            ..ReviewConfig::default()
        };
        let reasons = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            config.timeout_for("credit", &reasons(&["borderline score 0.5"])),
            (Duration::from_secs(60), OnTimeout::Release)
        );
        assert_eq!(
            config.timeout_for("credit", &reasons(&["other"])),
            (Duration::from_secs(120), OnTimeout::Reject)
        );
        assert_eq!(
            config.timeout_for("fraud", &reasons(&["high-risk version"])),
            (Duration::from_secs(30), OnTimeout::Release)
        );
        assert_eq!(
            config.timeout_for("fraud", &reasons(&["other"])),
            (Duration::from_secs(86_400), OnTimeout::Reject)
        );
    }
}
