//! Registry events as ledger entry members, and back.
//!
//! Members (snake_case), besides the ledger's own `seq`, `time`, `kind`,
//! `origin` and `prev_hash`:
//!
//! - every kind: `model`, `version`, `principal`, `principal_roles`
//!   (array of role strings), `principal_issuer` (the issuer of a person's
//!   JWT; absent for a configured token), `reason` (absent when none),
//!   `change_ref`, `risk_class`, `approvals` (array of `{"principal",
//!   "roles"}`, with `"issuer"` for a person with a JWT), `state` (the
//!   version's state after the event);
//! - `version_proposed`: `upstream`, `upstream_model` and
//!   `artifact_digest` (each absent when none), `description`;
//! - `version_approved`: `policy` (`{"approvers", "required_roles"}`);
//! - `version_activated`, `version_rolled_back`: `deactivated` (absent
//!   when no version was active), `approval_seq`.
//!
//! In a fleet every registry entry also has `control_seq`: the control
//! event it records (`shared`).
//!
//! Decoding accepts `null` for an absent optional member, ignores the
//! ledger's own five members and `control_seq`, and refuses any other
//! member.

use super::RegistryError;
use super::event::{ApprovalMark, Event, EventHead, ProposalDetail, Switch};
use super::policy::ApprovalPolicy;
use super::types::{Principal, RiskClass, Role, VersionState};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Members the ledger adds to every entry; never produced here.
const LEDGER_MEMBERS: [&str; 5] = ["seq", "time", "kind", "origin", "prev_hash"];

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    model: String,
    version: String,
    principal: String,
    principal_roles: Vec<Role>,
    // Absent, not null, for a configured token: entries written before
    // people could sign in with a JWT keep their bytes and their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal_issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    change_ref: String,
    risk_class: RiskClass,
    approvals: Vec<ApprovalMark>,
    state: VersionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upstream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upstream_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<ApprovalPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deactivated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval_seq: Option<u64>,
}

impl Wire {
    fn from_head(head: &EventHead) -> Self {
        Wire {
            model: head.model.clone(),
            version: head.version.clone(),
            principal: head.principal.name.clone(),
            principal_roles: head.principal.roles.clone(),
            principal_issuer: head.principal.issuer.clone(),
            reason: head.reason.clone(),
            change_ref: head.change_ref.clone(),
            risk_class: head.risk_class,
            approvals: head.approvals.clone(),
            state: head.state,
            upstream: None,
            upstream_model: None,
            artifact_digest: None,
            description: None,
            policy: None,
            deactivated: None,
            approval_seq: None,
        }
    }

    fn head(&self) -> EventHead {
        EventHead {
            model: self.model.clone(),
            version: self.version.clone(),
            principal: Principal::new(self.principal.clone(), self.principal_roles.clone())
                .with_issuer(self.principal_issuer.clone()),
            reason: self.reason.clone(),
            change_ref: self.change_ref.clone(),
            risk_class: self.risk_class,
            approvals: self.approvals.clone(),
            state: self.state,
        }
    }

    /// Names of the kind-specific members present.
    fn extras(&self) -> Vec<&'static str> {
        let present = [
            ("upstream", self.upstream.is_some()),
            ("upstream_model", self.upstream_model.is_some()),
            ("artifact_digest", self.artifact_digest.is_some()),
            ("description", self.description.is_some()),
            ("policy", self.policy.is_some()),
            ("deactivated", self.deactivated.is_some()),
            ("approval_seq", self.approval_seq.is_some()),
        ];
        present
            .into_iter()
            .filter_map(|(name, is)| is.then_some(name))
            .collect()
    }
}

impl Event {
    /// The entry members of this event (all but the ledger's own).
    pub fn to_members(&self) -> Map<String, Value> {
        let mut wire = Wire::from_head(self.head());
        match self {
            Event::Proposed { proposal, .. } => {
                wire.upstream = Some(proposal.upstream.clone());
                wire.upstream_model = proposal.upstream_model.clone();
                wire.artifact_digest = proposal.artifact_digest.clone();
                wire.description = Some(proposal.description.clone());
            }
            Event::Approved { policy, .. } => wire.policy = Some(policy.clone()),
            Event::Activated { switch, .. } | Event::RolledBack { switch, .. } => {
                wire.deactivated = switch.deactivated.clone();
                wire.approval_seq = Some(switch.approval_seq);
            }
            Event::Rejected { .. } | Event::Retired { .. } | Event::Revoked { .. } => {}
        }
        match serde_json::to_value(&wire) {
            Ok(Value::Object(members)) => members,
            // INVARIANT: a struct of strings, integers, enums and vectors
            // always serializes to a JSON object.
            _ => unreachable!("registry event members serialize to an object"),
        }
    }

    /// Rebuilds an event from an entry's kind and members. The ledger's
    /// own members may be present and are ignored.
    pub fn from_members(kind: &str, members: &Map<String, Value>) -> Result<Event, RegistryError> {
        let malformed = |problem: String| RegistryError::MalformedEvent {
            kind: kind.to_owned(),
            problem,
        };
        if !Event::is_kind(kind) {
            return Err(malformed("not a registry event kind".to_owned()));
        }
        let own: Map<String, Value> = members
            .iter()
            .filter(|(name, _)| {
                !LEDGER_MEMBERS.contains(&name.as_str())
                    && *name != super::shared::CONTROL_SEQ_MEMBER
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let wire: Wire =
            serde_json::from_value(Value::Object(own)).map_err(|err| malformed(err.to_string()))?;
        let allowed: &[&str] = match kind {
            "version_proposed" => &[
                "upstream",
                "upstream_model",
                "artifact_digest",
                "description",
            ],
            "version_approved" => &["policy"],
            "version_activated" | "version_rolled_back" => &["deactivated", "approval_seq"],
            _ => &[],
        };
        if let Some(extra) = wire
            .extras()
            .into_iter()
            .find(|name| !allowed.contains(name))
        {
            return Err(malformed(format!(
                "member {extra:?} does not belong to this kind"
            )));
        }
        let missing = |name: &str| malformed(format!("member {name:?} is missing"));
        let head = wire.head();
        Ok(match kind {
            "version_proposed" => Event::Proposed {
                head,
                proposal: ProposalDetail {
                    upstream: wire.upstream.ok_or_else(|| missing("upstream"))?,
                    upstream_model: wire.upstream_model,
                    artifact_digest: wire.artifact_digest,
                    description: wire.description.ok_or_else(|| missing("description"))?,
                },
            },
            "version_approved" => Event::Approved {
                head,
                policy: wire.policy.ok_or_else(|| missing("policy"))?,
            },
            "version_activated" | "version_rolled_back" => {
                let switch = Switch {
                    deactivated: wire.deactivated,
                    approval_seq: wire.approval_seq.ok_or_else(|| missing("approval_seq"))?,
                };
                if kind == "version_activated" {
                    Event::Activated { head, switch }
                } else {
                    Event::RolledBack { head, switch }
                }
            }
            "version_rejected" => Event::Rejected { head },
            "version_retired" => Event::Retired { head },
            _ => Event::Revoked { head },
        })
    }
}
