//! Registry events: one per accepted command, written to the ledger before
//! the registry changes, and replayed from it at start.
//!
//! An event is self-contained for audit: who acted with which roles, the
//! version's change reference and risk class, the approvals recorded so
//! far, and the state the version ends in. Applying an event never
//! consults a policy; it sets what the event says.

use super::policy::ApprovalPolicy;
use super::types::{Principal, RiskClass, Role, VersionSpec, VersionState};
use serde::{Deserialize, Serialize};

/// One recorded approval, as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalMark {
    /// Who approved.
    pub principal: String,
    /// Their roles when they approved.
    pub roles: Vec<Role>,
    /// The issuer of their JWT; absent for a configured token (and in
    /// entries written before people could sign in with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// Members every registry event has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHead {
    /// The model.
    pub model: String,
    /// The version acted on (for a rollback: the version made active).
    pub version: String,
    /// Who acted, with the roles they held.
    pub principal: Principal,
    /// Reason (rejections, revocations) or comment.
    pub reason: Option<String>,
    /// The version's change reference.
    pub change_ref: String,
    /// The version's risk class.
    pub risk_class: RiskClass,
    /// The version's approvals, including this one for an approval event.
    pub approvals: Vec<ApprovalMark>,
    /// The version's state once the event is applied.
    pub state: VersionState,
}

/// The part of a proposal that is not already in the [`EventHead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalDetail {
    /// [`VersionSpec::upstream`].
    pub upstream: String,
    /// [`VersionSpec::upstream_model`].
    pub upstream_model: Option<String>,
    /// [`VersionSpec::artifact_digest`].
    pub artifact_digest: Option<String>,
    /// [`VersionSpec::description`].
    pub description: String,
}

/// The active version changing hands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    /// The version that was active before, now approved again.
    pub deactivated: Option<String>,
    /// The approval entry of the version made active.
    pub approval_seq: u64,
}

/// A registry event. Its ledger entry kind is [`Event::kind`]; its other
/// members come from [`Event::to_members`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `version_proposed`: a new version, now `proposed`.
    Proposed {
        /// Common members.
        head: EventHead,
        /// The rest of the spec.
        proposal: ProposalDetail,
    },
    /// `version_approved`: one approval; `head.state` is `approved` when it
    /// met the policy, `proposed` otherwise.
    Approved {
        /// Common members.
        head: EventHead,
        /// The policy the approval was judged against.
        policy: ApprovalPolicy,
    },
    /// `version_rejected`: turned down, now `rejected`.
    Rejected {
        /// Common members.
        head: EventHead,
    },
    /// `version_activated`: now `active`; the one before is `approved`
    /// and may be rolled back to.
    Activated {
        /// Common members.
        head: EventHead,
        /// The version deactivated.
        switch: Switch,
    },
    /// `version_rolled_back`: the version in `head` is `active` again and
    /// the one deactivated is `approved`.
    RolledBack {
        /// Common members.
        head: EventHead,
        /// The version deactivated.
        switch: Switch,
    },
    /// `version_retired`: now `retired`.
    Retired {
        /// Common members.
        head: EventHead,
    },
    /// `version_revoked`: now `revoked`.
    Revoked {
        /// Common members.
        head: EventHead,
    },
}

/// Every event kind, in lifecycle order.
pub const EVENT_KINDS: [&str; 7] = [
    "version_proposed",
    "version_approved",
    "version_rejected",
    "version_activated",
    "version_rolled_back",
    "version_retired",
    "version_revoked",
];

impl Event {
    /// The ledger entry kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Proposed { .. } => "version_proposed",
            Event::Approved { .. } => "version_approved",
            Event::Rejected { .. } => "version_rejected",
            Event::Activated { .. } => "version_activated",
            Event::RolledBack { .. } => "version_rolled_back",
            Event::Retired { .. } => "version_retired",
            Event::Revoked { .. } => "version_revoked",
        }
    }

    /// Whether `kind` is a registry event kind.
    pub fn is_kind(kind: &str) -> bool {
        EVENT_KINDS.contains(&kind)
    }

    /// The members every event has.
    pub fn head(&self) -> &EventHead {
        match self {
            Event::Proposed { head, .. }
            | Event::Approved { head, .. }
            | Event::Rejected { head }
            | Event::Activated { head, .. }
            | Event::RolledBack { head, .. }
            | Event::Retired { head }
            | Event::Revoked { head } => head,
        }
    }

    /// The full spec of a proposal.
    pub fn spec(&self) -> Option<VersionSpec> {
        match self {
            Event::Proposed { head, proposal } => Some(VersionSpec {
                upstream: proposal.upstream.clone(),
                upstream_model: proposal.upstream_model.clone(),
                artifact_digest: proposal.artifact_digest.clone(),
                risk_class: head.risk_class,
                change_ref: head.change_ref.clone(),
                description: proposal.description.clone(),
            }),
            _ => None,
        }
    }
}
