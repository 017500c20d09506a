//! Approval policies and the four-eyes rule: how many distinct approvers a
//! version needs, which qualified approvers must be among them, and
//! whether one more approval can still help.
//!
//! Required qualifiers are slots: each must be covered by a *different*
//! approver holding `approver:<qualifier>`. Whether the approvals so far
//! cover them is a maximum bipartite matching (slots to approvers), found
//! with augmenting paths (Kuhn); policies name a handful of slots, so the
//! cubic worst case does not matter.

use super::types::{RiskClass, Role};
use serde::{Deserialize, Serialize};

/// How a version gets approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// Distinct approvers needed, never counting the proposer.
    pub approvers: usize,
    /// Qualifiers (`ai_officer`) each to be held by a different approver;
    /// a qualifier listed twice needs two such approvers.
    pub required_roles: Vec<String>,
}

impl ApprovalPolicy {
    /// A policy of `approvers` distinct approvers covering `required_roles`.
    pub fn new<S: Into<String>>(
        approvers: usize,
        required_roles: impl IntoIterator<Item = S>,
    ) -> Self {
        ApprovalPolicy {
            approvers,
            required_roles: required_roles.into_iter().map(Into::into).collect(),
        }
    }

    /// Approvals actually needed: at least one (four eyes), and at least
    /// one per required qualifier, whatever `approvers` says.
    pub fn needed(&self) -> usize {
        self.approvers.max(self.required_roles.len()).max(1)
    }
}

/// The approval policies of one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySet {
    /// Policy for every version without a more specific one.
    pub default: ApprovalPolicy,
    /// Policy for high-risk versions, when stricter.
    pub high_risk: Option<ApprovalPolicy>,
}

impl PolicySet {
    /// The policy that governs a version of this risk class.
    pub fn for_risk(&self, risk: RiskClass) -> &ApprovalPolicy {
        match (risk, &self.high_risk) {
            (RiskClass::High, Some(policy)) => policy,
            _ => &self.default,
        }
    }
}

/// What one more approval would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Assessment {
    /// Recorded; `complete` when the policy is met with it.
    Counts {
        /// The policy is met once this approval is recorded.
        complete: bool,
    },
    /// Refused: the approval cannot help, these qualifiers could.
    CannotHelp {
        /// Qualifiers the next approval could cover, sorted, distinct.
        missing: Vec<String>,
    },
}

/// Judges one more approval by `candidate` against `policy`, given the
/// roles of the approvals recorded so far (distinct principals, the
/// candidate not among them).
///
/// Refused when all three hold: qualifiers would still be uncovered after
/// it, the approvals still open (needed minus so far) are no more than
/// those uncovered qualifiers, and it covers none of them.
pub(crate) fn assess(
    policy: &ApprovalPolicy,
    so_far: &[&[Role]],
    candidate: &[Role],
) -> Assessment {
    let slots = &policy.required_roles;
    let before = max_matching(slots, so_far);
    let mut with = so_far.to_vec();
    with.push(candidate);
    let after = max_matching(slots, &with);
    let uncovered_after = slots.len() - after;
    let open = policy.needed().saturating_sub(so_far.len());
    if uncovered_after > 0 && open <= uncovered_after && after == before {
        return Assessment::CannotHelp {
            missing: coverable(slots, so_far, before),
        };
    }
    Assessment::Counts {
        complete: uncovered_after == 0 && with.len() >= policy.needed(),
    }
}

/// What a version still needs before its policy is met.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outstanding {
    /// Further approvals needed (0 once the policy is met).
    pub approvals: usize,
    /// Qualifiers still uncovered, sorted; each needs a different further
    /// approver holding `approver:<qualifier>` (one needed twice is listed
    /// twice). The other further approvals may come from any approver.
    pub qualifiers: Vec<String>,
}

/// What approvals with the roles `so_far` (distinct principals) still
/// lack to meet `policy`.
pub fn outstanding(policy: &ApprovalPolicy, so_far: &[&[Role]]) -> Outstanding {
    let slots = &policy.required_roles;
    // Hypothetical approvers each holding one qualifier are added while
    // one grows the matching: the qualifiers they hold are what is missing.
    // Each round covers one more slot, so there are at most `slots` rounds.
    let mut added: Vec<[Role; 1]> = Vec::new();
    loop {
        let mut with = so_far.to_vec();
        with.extend(added.iter().map(|role| role.as_slice()));
        let before = max_matching(slots, &with);
        if before == slots.len() {
            break;
        }
        let Some(qualifier) = coverable(slots, &with, before).into_iter().next() else {
            break;
        };
        added.push([Role::QualifiedApprover(qualifier)]);
    }
    let mut qualifiers: Vec<String> = added
        .into_iter()
        .filter_map(|[role]| role.qualifier().map(str::to_owned))
        .collect();
    qualifiers.sort();
    Outstanding {
        approvals: policy
            .needed()
            .saturating_sub(so_far.len())
            .max(qualifiers.len()),
        qualifiers,
    }
}

/// Whether approvals with these roles meet `policy`.
#[cfg(test)]
pub(crate) fn is_met(policy: &ApprovalPolicy, approvals: &[&[Role]]) -> bool {
    approvals.len() >= policy.needed()
        && max_matching(&policy.required_roles, approvals) == policy.required_roles.len()
}

/// Qualifiers that one more approver holding just that qualifier would
/// cover (the matching would grow), sorted and distinct.
fn coverable(slots: &[String], so_far: &[&[Role]], before: usize) -> Vec<String> {
    let mut qualifiers: Vec<&String> = slots.iter().collect();
    qualifiers.sort();
    qualifiers.dedup();
    qualifiers
        .into_iter()
        .filter(|qualifier| {
            let role = [Role::QualifiedApprover((*qualifier).clone())];
            let mut with = so_far.to_vec();
            with.push(&role);
            max_matching(slots, &with) > before
        })
        .cloned()
        .collect()
}

/// Size of a maximum matching of required slots to approvers, where an
/// approver fits a slot when it holds `approver:<slot>`.
fn max_matching(slots: &[String], approvers: &[&[Role]]) -> usize {
    // owner[a] = the slot approver a covers, if any.
    let mut owner: Vec<Option<usize>> = vec![None; approvers.len()];
    let mut size = 0;
    for slot in 0..slots.len() {
        let mut visited = vec![false; approvers.len()];
        if augment(slot, slots, approvers, &mut owner, &mut visited) {
            size += 1;
        }
    }
    size
}

fn augment(
    slot: usize,
    slots: &[String],
    approvers: &[&[Role]],
    owner: &mut [Option<usize>],
    visited: &mut [bool],
) -> bool {
    for (approver, roles) in approvers.iter().enumerate() {
        if visited[approver] || !roles.iter().any(|r| r.qualifier() == Some(&slots[slot])) {
            continue;
        }
        visited[approver] = true;
        let free = match owner[approver] {
            None => true,
            Some(other) => augment(other, slots, approvers, owner, visited),
        };
        if free {
            owner[approver] = Some(slot);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(text: &[&str]) -> Vec<Role> {
        text.iter().map(|r| r.parse().unwrap()).collect()
    }

    #[test]
    fn matching_needs_different_approvers_per_slot() {
        let slots = vec!["ai".to_owned(), "sec".to_owned()];
        let both = roles(&["approver:ai", "approver:sec"]);
        assert_eq!(max_matching(&slots, &[&both]), 1);
        let ai = roles(&["approver:ai"]);
        // `both` must take sec so that `ai` can take ai: needs augmenting.
        assert_eq!(max_matching(&slots, &[&both, &ai]), 2);
        assert_eq!(max_matching(&slots, &[&ai, &both]), 2);
        let ai2 = roles(&["approver:ai"]);
        assert_eq!(max_matching(&slots, &[&ai, &ai2]), 1);
    }

    #[test]
    fn duplicate_qualifiers_need_two_holders() {
        let policy = ApprovalPolicy::new(2, ["ai", "ai"]);
        let ai = roles(&["approver:ai"]);
        let plain = roles(&["approver"]);
        assert!(!is_met(&policy, &[&ai, &plain]));
        assert_eq!(
            assess(&policy, &[&ai], &plain),
            Assessment::CannotHelp {
                missing: vec!["ai".to_owned()]
            }
        );
        assert_eq!(
            assess(&policy, &[&ai], &ai),
            Assessment::Counts { complete: true }
        );
    }

    #[test]
    fn plain_approver_counts_while_slots_remain() {
        let policy = ApprovalPolicy::new(3, ["ai"]);
        let plain = roles(&["approver"]);
        let ai = roles(&["approver:ai"]);
        assert_eq!(
            assess(&policy, &[], &plain),
            Assessment::Counts { complete: false }
        );
        assert_eq!(
            assess(&policy, &[&plain], &plain),
            Assessment::Counts { complete: false }
        );
        assert!(matches!(
            assess(&policy, &[&plain, &plain], &plain),
            Assessment::CannotHelp { .. }
        ));
        assert_eq!(
            assess(&policy, &[&plain, &plain], &ai),
            Assessment::Counts { complete: true }
        );
    }

    #[test]
    fn holder_of_both_qualifiers_helps_once_only() {
        let policy = ApprovalPolicy::new(2, ["ai", "sec"]);
        let both = roles(&["approver:ai", "approver:sec"]);
        let plain = roles(&["approver"]);
        assert_eq!(
            assess(&policy, &[], &both),
            Assessment::Counts { complete: false }
        );
        assert_eq!(
            assess(&policy, &[&both], &plain),
            Assessment::CannotHelp {
                missing: vec!["ai".to_owned(), "sec".to_owned()]
            }
        );
        let sec = roles(&["approver:sec"]);
        assert_eq!(
            assess(&policy, &[&both], &sec),
            Assessment::Counts { complete: true }
        );
    }

    #[test]
    fn outstanding_names_uncovered_qualifiers_and_the_count() {
        let policy = ApprovalPolicy::new(3, ["ai", "sec"]);
        let ai = roles(&["approver:ai"]);
        let sec = roles(&["approver:sec"]);
        let both = roles(&["approver:ai", "approver:sec"]);
        let none = outstanding(&policy, &[]);
        assert_eq!(none.approvals, 3);
        assert_eq!(none.qualifiers, vec!["ai".to_owned(), "sec".to_owned()]);
        let one = outstanding(&policy, &[&ai]);
        assert_eq!((one.approvals, one.qualifiers), (2, vec!["sec".to_owned()]));
        let two = outstanding(&policy, &[&ai, &sec]);
        assert_eq!((two.approvals, two.qualifiers), (1, vec![]));
        // A holder of both covers one slot only.
        let dual = outstanding(&ApprovalPolicy::new(1, ["ai", "sec"]), &[&both]);
        assert_eq!(dual.approvals, 1);
        assert_eq!(dual.qualifiers.len(), 1);
        let twice = outstanding(&ApprovalPolicy::new(1, ["ai", "ai"]), &[]);
        assert_eq!((twice.approvals, twice.qualifiers.len()), (2, 2));
        let met = outstanding(&policy, &[&ai, &sec, &both]);
        assert_eq!(met, Outstanding::default());
    }

    #[test]
    fn needed_is_never_below_one_or_the_slot_count() {
        assert_eq!(ApprovalPolicy::new(0, Vec::<String>::new()).needed(), 1);
        assert_eq!(ApprovalPolicy::new(1, ["a", "b"]).needed(), 2);
        assert_eq!(ApprovalPolicy::new(3, ["a"]).needed(), 3);
    }
}
