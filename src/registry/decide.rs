//! Deciding a command: every check, no change. The result is the event to
//! write to the ledger and then apply, or `None` when the command changes
//! nothing (a repeated approval, activating the active version).
//!
//! Checks run in this order: the principal's roles and the command's own
//! fields (403, 400), the model and version (404), then the version's
//! state and the four-eyes rules (409, 403).

mod checks;

use super::event::{ApprovalMark, Event, EventHead, ProposalDetail, Switch};
use super::policy::{Assessment, PolicySet, assess};
use super::record::{ModelRecord, VersionRecord};
use super::types::{Action, Principal, Role, VersionSpec, VersionState};
use super::{Command, Registry, RegistryError};
use VersionState::{Active, Approved, Proposed, Rejected, Retired, Revoked};

/// Whether the roles named `roles` allow `action` at all (the role rules
/// [`Registry::decide`] applies first; the version's state and the
/// four-eyes rules may still refuse). For showing only what may work.
pub fn roles_allow(action: Action, roles: &[String]) -> bool {
    let by = Principal {
        name: "-".to_owned(),
        roles: roles.iter().filter_map(|role| role.parse().ok()).collect(),
        issuer: None,
    };
    checks::check_roles(action, &by).is_ok()
}

impl Registry {
    /// Checks `command` by `by` against the current state and `policy`
    /// (the approval policies of the command's model) and returns the
    /// event to record, or `None` when the command is a repeat that
    /// changes nothing. Changes nothing itself.
    pub fn decide(
        &self,
        command: &Command,
        by: &Principal,
        policy: &PolicySet,
    ) -> Result<Option<Event>, RegistryError> {
        checks::check_roles(command.action(), by)?;
        checks::check_fields(command, by)?;
        let name = command.model();
        let model = self
            .models
            .get(name)
            .ok_or_else(|| RegistryError::UnknownModel {
                model: name.to_owned(),
            })?;
        let cx = Context { name, model, by };
        let event = match command {
            Command::Propose {
                version,
                spec,
                reason,
                ..
            } => cx.propose(version, spec, reason.as_ref())?,
            Command::Approve {
                version, reason, ..
            } => return cx.approve(version, reason.as_ref(), policy),
            Command::Reject {
                version, reason, ..
            } => {
                let head = cx.transition(version, Some(reason), Action::Reject, Rejected)?;
                Event::Rejected { head }
            }
            Command::Activate {
                version, reason, ..
            } => {
                // Activating the active version again is a retry (a lost
                // answer, a double click): answered with the current state
                // and no second entry, like a repeated approval.
                if cx.find(version)?.state == Active {
                    return Ok(None);
                }
                let head = cx.transition(version, reason.as_ref(), Action::Activate, Active)?;
                let switch = cx.switch(version, Action::Activate)?;
                Event::Activated { head, switch }
            }
            Command::RollBack { reason, .. } => {
                let version = cx.rollback_target()?;
                let head = cx.head(version, reason.as_ref(), Active)?;
                let switch = cx.switch(version, Action::RollBack)?;
                Event::RolledBack { head, switch }
            }
            Command::Retire {
                version, reason, ..
            } => {
                let head = cx.transition(version, reason.as_ref(), Action::Retire, Retired)?;
                Event::Retired { head }
            }
            Command::Revoke {
                version, reason, ..
            } => {
                let head = cx.transition(version, Some(reason), Action::Revoke, Revoked)?;
                Event::Revoked { head }
            }
        };
        Ok(Some(event))
    }
}

/// States each action starts from.
fn allowed_from(action: Action, state: VersionState) -> bool {
    match action {
        Action::Approve | Action::Reject => state == Proposed,
        Action::Activate => state == Approved,
        Action::Retire => matches!(state, Approved | Active),
        Action::Revoke => state != Revoked,
        // Not per-version state transitions.
        Action::Propose | Action::RollBack => false,
    }
}

/// The model a command is about, and who acts.
struct Context<'a> {
    name: &'a str,
    model: &'a ModelRecord,
    by: &'a Principal,
}

impl<'a> Context<'a> {
    fn find(&self, version: &str) -> Result<&'a VersionRecord, RegistryError> {
        self.model
            .versions
            .get(version)
            .ok_or_else(|| RegistryError::UnknownVersion {
                model: self.name.to_owned(),
                version: version.to_owned(),
            })
    }

    /// The head of an event leaving `version` in `state`.
    fn head(
        &self,
        version: &str,
        reason: Option<&String>,
        state: VersionState,
    ) -> Result<EventHead, RegistryError> {
        let record = self.find(version)?;
        Ok(EventHead {
            model: self.name.to_owned(),
            version: version.to_owned(),
            principal: self.by.clone(),
            reason: reason.cloned(),
            change_ref: record.spec.change_ref.clone(),
            risk_class: record.spec.risk_class,
            approvals: record
                .approvals
                .iter()
                .map(|approval| ApprovalMark {
                    principal: approval.principal.clone(),
                    roles: approval.roles.clone(),
                    issuer: approval.issuer.clone(),
                })
                .collect(),
            state,
        })
    }

    /// `action` moves `version` to `to`, if its state allows.
    fn transition(
        &self,
        version: &str,
        reason: Option<&String>,
        action: Action,
        to: VersionState,
    ) -> Result<EventHead, RegistryError> {
        let current = self.find(version)?.state;
        if !allowed_from(action, current) {
            return Err(RegistryError::InvalidTransition { current, action });
        }
        self.head(version, reason, to)
    }

    fn propose(
        &self,
        version: &str,
        spec: &VersionSpec,
        reason: Option<&String>,
    ) -> Result<Event, RegistryError> {
        if self.model.versions.contains_key(version) {
            return Err(RegistryError::AlreadyExists {
                model: self.name.to_owned(),
                version: version.to_owned(),
            });
        }
        Ok(Event::Proposed {
            head: EventHead {
                model: self.name.to_owned(),
                version: version.to_owned(),
                principal: self.by.clone(),
                reason: reason.cloned(),
                change_ref: spec.change_ref.clone(),
                risk_class: spec.risk_class,
                approvals: Vec::new(),
                state: Proposed,
            },
            proposal: ProposalDetail {
                upstream: spec.upstream.clone(),
                upstream_model: spec.upstream_model.clone(),
                artifact_digest: spec.artifact_digest.clone(),
                description: spec.description.clone(),
            },
        })
    }

    fn approve(
        &self,
        version: &str,
        reason: Option<&String>,
        policies: &PolicySet,
    ) -> Result<Option<Event>, RegistryError> {
        let record = self.find(version)?;
        // A repeat is answered with the current state, whatever it is now,
        // so that a retried request never fails after its first try worked.
        if record.approvals.iter().any(|a| a.principal == self.by.name) {
            return Ok(None);
        }
        if record.state != Proposed {
            return Err(RegistryError::InvalidTransition {
                current: record.state,
                action: Action::Approve,
            });
        }
        if record.proposer == self.by.name {
            return Err(RegistryError::ProposerCannotApprove);
        }
        let policy = policies.for_risk(record.spec.risk_class);
        let so_far: Vec<&[Role]> = record
            .approvals
            .iter()
            .map(|a| a.roles.as_slice())
            .collect();
        let state = match assess(policy, &so_far, &self.by.roles) {
            Assessment::CannotHelp { missing } => {
                return Err(RegistryError::RoleRequired { missing });
            }
            Assessment::Counts { complete: true } => Approved,
            Assessment::Counts { complete: false } => Proposed,
        };
        let mut head = self.head(version, reason, state)?;
        head.approvals.push(ApprovalMark {
            principal: self.by.name.clone(),
            roles: self.by.roles.clone(),
            issuer: self.by.issuer.clone(),
        });
        Ok(Some(Event::Approved {
            head,
            policy: policy.clone(),
        }))
    }

    /// The active version handing over to `version`. An approved version
    /// always has its approval seq; one without (only a damaged ledger
    /// could build it) is refused rather than activated.
    fn switch(&self, version: &str, action: Action) -> Result<Switch, RegistryError> {
        let record = self.find(version)?;
        let approval_seq = record
            .approval_seq
            .ok_or(RegistryError::InvalidTransition {
                current: record.state,
                action,
            })?;
        Ok(Switch {
            deactivated: self.model.active.clone(),
            approval_seq,
        })
    }

    /// The most recent previously active version that is still approved.
    fn rollback_target(&self) -> Result<&'a str, RegistryError> {
        let model = self.model;
        model
            .activation_history
            .iter()
            .rev()
            .find(|label| {
                model
                    .versions
                    .get(label.as_str())
                    .is_some_and(|record| record.state == Approved && record.approval_seq.is_some())
            })
            .map(String::as_str)
            .ok_or_else(|| RegistryError::NothingToRollBack {
                model: self.name.to_owned(),
            })
    }
}
