//! Policy-set events as ledger entry members, and back
//! (docs/audit-format.md, "Policy sets under change control").
//!
//! Members, besides the ledger's own `seq`, `time`, `kind`, `origin` and
//! `prev_hash`:
//!
//! - every kind: `principal`, `principal_roles`, `principal_issuer` (the
//!   issuer of a person's JWT; absent for a configured token and in
//!   older entries), `reason` (absent when none), `set_sha256`;
//! - `policy_set_proposed`: `source` (`folder`, `upload`), `files`
//!   (`[{"file", "sha256", "text"}]`, sorted by file);
//! - `policy_set_approved`: `proposal_seq`, `approvals`
//!   (`[{"principal", "roles", "issuer"}]`, `issuer` as `principal_issuer`,
//!   this one last), `policy`
//!   (`{"approvers", "required_roles"}`), `state` (`proposed`, `approved`);
//! - `policy_set_activated`, `policy_set_rolled_back`: `proposal_seq`,
//!   `approval_seq`, `files` (`[{"file", "sha256"}]`), `deactivated` (the
//!   proposal seq of the set that was in force; absent when none).
//!
//! In a fleet every entry also has `control_seq` (docs/fleet.md), which
//! decoding ignores. Decoding refuses any other member.

use super::{ChangeEvent, SetFile, SetState, SetSwitch};
use crate::registry::{ApprovalMark, ApprovalPolicy, Principal, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a policy-set entry's members do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedChange {
    /// A member is of the wrong type, or not one of this kind's.
    #[error("{0}")]
    Members(String),
    /// A member this kind needs is absent.
    #[error("{kind} without {member}")]
    Missing {
        /// The entry's kind.
        kind: String,
        /// What it lacks.
        member: &'static str,
    },
    /// An approval's `state` is neither `proposed` nor `approved`.
    #[error("{kind} with state {state:?}")]
    State {
        /// The entry's kind.
        kind: String,
        /// The state it gives.
        state: Option<String>,
    },
    /// The kind is not one of [`super::CHANGE_KINDS`].
    #[error("{0} is not a policy-set event")]
    NotAChange(String),
}

/// Members the ledger adds to every entry; never produced here.
const LEDGER_MEMBERS: [&str; 5] = ["seq", "time", "kind", "origin", "prev_hash"];

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFile {
    file: String,
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    principal: String,
    principal_roles: Vec<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal_issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    set_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<Vec<WireFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proposal_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approvals: Option<Vec<ApprovalMark>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<ApprovalPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deactivated: Option<u64>,
}

impl Wire {
    fn new(principal: &Principal, reason: &Option<String>, set_sha256: &str) -> Wire {
        Wire {
            principal: principal.name.clone(),
            principal_roles: principal.roles.clone(),
            principal_issuer: principal.issuer.clone(),
            reason: reason.clone(),
            set_sha256: set_sha256.to_owned(),
            source: None,
            files: None,
            proposal_seq: None,
            approvals: None,
            policy: None,
            state: None,
            approval_seq: None,
            deactivated: None,
        }
    }

    fn with_switch(mut self, switch: &SetSwitch) -> Wire {
        self.proposal_seq = Some(switch.proposal_seq);
        self.approval_seq = Some(switch.approval_seq);
        self.deactivated = switch.deactivated;
        self.files = Some(
            switch
                .files
                .iter()
                .map(|(file, sha256)| WireFile {
                    file: file.clone(),
                    sha256: sha256.clone(),
                    text: None,
                })
                .collect(),
        );
        self
    }
}

impl ChangeEvent {
    /// The entry's members (without the ledger's own).
    pub fn to_members(&self) -> Map<String, Value> {
        let wire = match self {
            ChangeEvent::Proposed {
                principal,
                source,
                reason,
                set_sha256,
                files,
            } => {
                let mut wire = Wire::new(principal, reason, set_sha256);
                wire.source = Some(source.clone());
                wire.files = Some(
                    files
                        .iter()
                        .map(|f| WireFile {
                            file: f.file.clone(),
                            sha256: f.sha256.clone(),
                            text: Some(f.text.clone()),
                        })
                        .collect(),
                );
                wire
            }
            ChangeEvent::Approved {
                proposal_seq,
                set_sha256,
                principal,
                reason,
                approvals,
                policy,
                state,
            } => {
                let mut wire = Wire::new(principal, reason, set_sha256);
                wire.proposal_seq = Some(*proposal_seq);
                wire.approvals = Some(approvals.clone());
                wire.policy = Some(policy.clone());
                wire.state = Some(state.as_str().to_owned());
                wire
            }
            ChangeEvent::Activated {
                principal,
                reason,
                switch,
            }
            | ChangeEvent::RolledBack {
                principal,
                reason,
                switch,
            } => Wire::new(principal, reason, &switch.set_sha256).with_switch(switch),
        };
        match serde_json::to_value(wire) {
            Ok(Value::Object(map)) => map,
            // INVARIANT: a struct of strings, numbers and lists serializes
            // to an object; anything else would be a serde bug.
            _ => Map::new(),
        }
    }

    /// Decodes the members of an entry of `kind` (one of
    /// [`super::CHANGE_KINDS`]); the ledger's own members are ignored.
    pub fn from_members(
        kind: &str,
        entry: &Map<String, Value>,
    ) -> Result<ChangeEvent, MalformedChange> {
        let members: Map<String, Value> = entry
            .iter()
            // In a fleet every entry also names its control event.
            .filter(|(name, _)| {
                !LEDGER_MEMBERS.contains(&name.as_str())
                    && *name != crate::registry::shared::CONTROL_SEQ_MEMBER
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let wire: Wire = serde_json::from_value(Value::Object(members))
            .map_err(|err| MalformedChange::Members(err.to_string()))?;
        let principal = Principal::new(wire.principal.clone(), wire.principal_roles.clone())
            .with_issuer(wire.principal_issuer.clone());
        let need = |member: &'static str| MalformedChange::Missing {
            kind: kind.to_owned(),
            member,
        };
        let files = wire.files.unwrap_or_default();
        let switch = || -> Result<SetSwitch, MalformedChange> {
            Ok(SetSwitch {
                proposal_seq: wire.proposal_seq.ok_or_else(|| need("proposal_seq"))?,
                approval_seq: wire.approval_seq.ok_or_else(|| need("approval_seq"))?,
                set_sha256: wire.set_sha256.clone(),
                files: files
                    .iter()
                    .map(|f| (f.file.clone(), f.sha256.clone()))
                    .collect(),
                deactivated: wire.deactivated,
            })
        };
        match kind {
            "policy_set_proposed" => Ok(ChangeEvent::Proposed {
                principal,
                source: wire.source.clone().ok_or_else(|| need("source"))?,
                reason: wire.reason.clone(),
                set_sha256: wire.set_sha256.clone(),
                files: files
                    .iter()
                    .map(|f| {
                        Ok(SetFile {
                            file: f.file.clone(),
                            sha256: f.sha256.clone(),
                            text: f.text.clone().ok_or_else(|| need("a file's text"))?,
                        })
                    })
                    .collect::<Result<_, MalformedChange>>()?,
            }),
            "policy_set_approved" => Ok(ChangeEvent::Approved {
                proposal_seq: wire.proposal_seq.ok_or_else(|| need("proposal_seq"))?,
                set_sha256: wire.set_sha256.clone(),
                principal,
                reason: wire.reason.clone(),
                approvals: wire.approvals.clone().ok_or_else(|| need("approvals"))?,
                policy: wire.policy.clone().ok_or_else(|| need("policy"))?,
                state: match wire.state.as_deref() {
                    Some("proposed") => SetState::Proposed,
                    Some("approved") => SetState::Approved,
                    other => {
                        return Err(MalformedChange::State {
                            kind: kind.to_owned(),
                            state: other.map(str::to_owned),
                        });
                    }
                },
            }),
            "policy_set_activated" => Ok(ChangeEvent::Activated {
                principal,
                reason: wire.reason.clone(),
                switch: switch()?,
            }),
            "policy_set_rolled_back" => Ok(ChangeEvent::RolledBack {
                principal,
                reason: wire.reason.clone(),
                switch: switch()?,
            }),
            other => Err(MalformedChange::NotAChange(other.to_owned())),
        }
    }
}
