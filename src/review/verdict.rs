//! What a policy evaluation decides: the [`Action`], its reasons and every
//! reason set that contributed.

use serde::Serialize;
use std::collections::BTreeSet;

/// What the gateway does with the request or answer. Ordered weakest to
/// strongest, so the strongest non-empty set wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// No rule fired: pass it on.
    Allow,
    /// Pass it on and queue a post-hoc review item.
    Flag,
    /// Keep the answer until a reviewer releases or rejects it.
    Hold,
    /// Refuse it.
    Deny,
}

impl Action {
    /// The name used in the ledger, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Flag => "flag",
            Action::Hold => "hold",
            Action::Deny => "deny",
        }
    }
}

/// The reasons each rule set produced, sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReasonSets {
    /// Reasons of `deny` rules.
    pub deny: BTreeSet<String>,
    /// Reasons of `hold` rules.
    pub hold: BTreeSet<String>,
    /// Reasons of `flag` rules.
    pub flag: BTreeSet<String>,
}

/// The outcome of evaluating the policies on one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The winning action: deny > hold > flag > allow.
    pub action: Action,
    /// The reasons of the winning action, sorted; empty for allow.
    pub reasons: Vec<String>,
    /// Every reason set, including those the winner overrides (a denied
    /// request that would also have been flagged says so).
    pub all: ReasonSets,
}

impl Verdict {
    /// Picks the strongest non-empty set.
    pub fn from_sets(all: ReasonSets) -> Self {
        let (action, winner) = if !all.deny.is_empty() {
            (Action::Deny, &all.deny)
        } else if !all.hold.is_empty() {
            (Action::Hold, &all.hold)
        } else if !all.flag.is_empty() {
            (Action::Flag, &all.flag)
        } else {
            return Self {
                action: Action::Allow,
                reasons: Vec::new(),
                all,
            };
        };
        // BTreeSet iterates in order, so the reasons come out sorted.
        let reasons = winner.iter().cloned().collect();
        Self {
            action,
            reasons,
            all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn precedence_is_deny_hold_flag_allow() {
        let all = ReasonSets {
            deny: set(&["d"]),
            hold: set(&["h"]),
            flag: set(&["f"]),
        };
        assert_eq!(Verdict::from_sets(all.clone()).action, Action::Deny);
        let no_deny = ReasonSets {
            deny: set(&[]),
            ..all.clone()
        };
        let v = Verdict::from_sets(no_deny.clone());
        assert_eq!((v.action, v.reasons), (Action::Hold, vec!["h".to_string()]));
        let only_flag = ReasonSets {
            hold: set(&[]),
            ..no_deny
        };
        assert_eq!(Verdict::from_sets(only_flag).action, Action::Flag);
        let none = Verdict::from_sets(ReasonSets::default());
        assert_eq!(none.action, Action::Allow);
        assert!(none.reasons.is_empty());
    }

    #[test]
    fn winning_reasons_are_sorted() {
        let v = Verdict::from_sets(ReasonSets {
            hold: set(&["b", "a", "c"]),
            ..ReasonSets::default()
        });
        assert_eq!(v.reasons, vec!["a", "b", "c"]);
    }
}
