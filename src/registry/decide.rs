//! Deciding a command: every check, no change. The result is the event to
//! write to the ledger and then apply, or `None` when the command changes
//! nothing (a repeated approval).
//!
//! Checks run in this order: the principal's roles and the command's own
//! fields (403, 400), the model and version (404), then the version's
//! state and the four-eyes rules (409, 403).

use super::event::{ApprovalMark, Event, EventHead, ProposalDetail, Switch};
use super::policy::{Assessment, PolicySet, assess};
use super::record::{ModelRecord, VersionRecord};
use super::types::{Action, Principal, Role, VersionSpec, VersionState};
use super::{Command, Registry, RegistryError};

/// Longest version label, change reference or upstream name accepted.
const MAX_LABEL_LEN: usize = 128;

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
        let action = command.action();
        check_roles(action, by)?;
        check_fields(command, by)?;
        let model_name = command.model();
        let model = self
            .models
            .get(model_name)
            .ok_or_else(|| RegistryError::UnknownModel {
                model: model_name.to_owned(),
            })?;
        match command {
            Command::Propose {
                version,
                spec,
                reason,
                ..
            } => propose(model_name, model, version, spec, reason, by).map(Some),
            Command::Approve {
                version, reason, ..
            } => {
                let record = find(model_name, model, version)?;
                approve(model_name, version, record, reason, by, policy)
            }
            Command::Reject {
                version, reason, ..
            } => {
                let record = find(model_name, model, version)?;
                require_state(record, Action::Reject, &[VersionState::Proposed])?;
                let head = head(
                    model_name,
                    version,
                    record,
                    by,
                    Some(reason),
                    VersionState::Rejected,
                );
                Ok(Some(Event::Rejected { head }))
            }
            Command::Activate {
                version, reason, ..
            } => {
                let record = find(model_name, model, version)?;
                require_state(record, Action::Activate, &[VersionState::Approved])?;
                let switch = switch(model, record, Action::Activate)?;
                let head = head(
                    model_name,
                    version,
                    record,
                    by,
                    reason.as_ref(),
                    VersionState::Active,
                );
                Ok(Some(Event::Activated { head, switch }))
            }
            Command::RollBack { reason, .. } => {
                let (version, record) =
                    rollback_target(model).ok_or_else(|| RegistryError::NothingToRollBack {
                        model: model_name.to_owned(),
                    })?;
                let switch = switch(model, record, Action::RollBack)?;
                let head = head(
                    model_name,
                    version,
                    record,
                    by,
                    reason.as_ref(),
                    VersionState::Active,
                );
                Ok(Some(Event::RolledBack { head, switch }))
            }
            Command::Retire {
                version, reason, ..
            } => {
                let record = find(model_name, model, version)?;
                let from = [VersionState::Approved, VersionState::Active];
                require_state(record, Action::Retire, &from)?;
                let head = head(
                    model_name,
                    version,
                    record,
                    by,
                    reason.as_ref(),
                    VersionState::Retired,
                );
                Ok(Some(Event::Retired { head }))
            }
            Command::Revoke {
                version, reason, ..
            } => {
                let record = find(model_name, model, version)?;
                if record.state == VersionState::Revoked {
                    return Err(RegistryError::InvalidTransition {
                        current: record.state,
                        action: Action::Revoke,
                    });
                }
                let head = head(
                    model_name,
                    version,
                    record,
                    by,
                    Some(reason),
                    VersionState::Revoked,
                );
                Ok(Some(Event::Revoked { head }))
            }
        }
    }
}

/// Role rules: who may do what.
fn check_roles(action: Action, by: &Principal) -> Result<(), RegistryError> {
    let admin = by.has(&Role::Admin);
    let proposer = by.has(&Role::Proposer);
    let approver = by.is_approver();
    let (allowed, needed) = match action {
        Action::Propose | Action::Activate | Action::RollBack => {
            (admin || proposer, "admin, proposer")
        }
        Action::Approve | Action::Reject => (approver, "approver, approver:<qualifier>"),
        Action::Retire => (admin, "admin"),
        Action::Revoke => (admin || approver, "admin, approver, approver:<qualifier>"),
    };
    if allowed {
        Ok(())
    } else {
        Err(RegistryError::Forbidden { action, needed })
    }
}

/// Field rules that need no state.
fn check_fields(command: &Command, by: &Principal) -> Result<(), RegistryError> {
    if by.name.trim().is_empty() {
        return Err(invalid("principal", "must not be empty"));
    }
    match command {
        Command::Propose { version, spec, .. } => {
            check_label(version)?;
            check_text("upstream", &spec.upstream)?;
            check_text("change_ref", &spec.change_ref)
        }
        Command::Reject { reason, .. } | Command::Revoke { reason, .. } => {
            if reason.trim().is_empty() {
                Err(RegistryError::ReasonRequired {
                    action: command.action(),
                })
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn invalid(field: &'static str, problem: &'static str) -> RegistryError {
    RegistryError::InvalidArgument { field, problem }
}

/// A version label appears in URL paths (`/versions/{v}`) and metric
/// labels: 1 to 128 of `A-Z a-z 0-9 . _ + -`, not `.` or `..`.
fn check_label(label: &str) -> Result<(), RegistryError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-');
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(invalid("version", "must be 1 to 128 characters"));
    }
    if !label.bytes().all(allowed) || label == "." || label == ".." {
        return Err(invalid(
            "version",
            "only letters, digits and . _ + - are allowed",
        ));
    }
    Ok(())
}

fn check_text(field: &'static str, text: &str) -> Result<(), RegistryError> {
    if text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if text.len() > MAX_LABEL_LEN || text.chars().any(char::is_control) {
        return Err(invalid(
            field,
            "must be at most 128 characters, no control characters",
        ));
    }
    Ok(())
}

fn find<'a>(
    model_name: &str,
    model: &'a ModelRecord,
    version: &str,
) -> Result<&'a VersionRecord, RegistryError> {
    model
        .versions
        .get(version)
        .ok_or_else(|| RegistryError::UnknownVersion {
            model: model_name.to_owned(),
            version: version.to_owned(),
        })
}

fn require_state(
    record: &VersionRecord,
    action: Action,
    allowed: &[VersionState],
) -> Result<(), RegistryError> {
    if allowed.contains(&record.state) {
        Ok(())
    } else {
        Err(RegistryError::InvalidTransition {
            current: record.state,
            action,
        })
    }
}

fn marks(record: &VersionRecord) -> Vec<ApprovalMark> {
    record
        .approvals
        .iter()
        .map(|approval| ApprovalMark {
            principal: approval.principal.clone(),
            roles: approval.roles.clone(),
        })
        .collect()
}

fn head(
    model: &str,
    version: &str,
    record: &VersionRecord,
    by: &Principal,
    reason: Option<&String>,
    state: VersionState,
) -> EventHead {
    EventHead {
        model: model.to_owned(),
        version: version.to_owned(),
        principal: by.clone(),
        reason: reason.cloned(),
        change_ref: record.spec.change_ref.clone(),
        risk_class: record.spec.risk_class,
        approvals: marks(record),
        state,
    }
}

fn propose(
    model_name: &str,
    model: &ModelRecord,
    version: &str,
    spec: &VersionSpec,
    reason: &Option<String>,
    by: &Principal,
) -> Result<Event, RegistryError> {
    if model.versions.contains_key(version) {
        return Err(RegistryError::AlreadyExists {
            model: model_name.to_owned(),
            version: version.to_owned(),
        });
    }
    Ok(Event::Proposed {
        head: EventHead {
            model: model_name.to_owned(),
            version: version.to_owned(),
            principal: by.clone(),
            reason: reason.clone(),
            change_ref: spec.change_ref.clone(),
            risk_class: spec.risk_class,
            approvals: Vec::new(),
            state: VersionState::Proposed,
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
    model_name: &str,
    version: &str,
    record: &VersionRecord,
    reason: &Option<String>,
    by: &Principal,
    policies: &PolicySet,
) -> Result<Option<Event>, RegistryError> {
    // A repeat is answered with the current state, whatever it is now,
    // so that a retried request never fails after its first try worked.
    if record.approvals.iter().any(|a| a.principal == by.name) {
        return Ok(None);
    }
    require_state(record, Action::Approve, &[VersionState::Proposed])?;
    if record.proposer == by.name {
        return Err(RegistryError::ProposerCannotApprove);
    }
    let policy = policies.for_risk(record.spec.risk_class);
    let so_far: Vec<&[Role]> = record
        .approvals
        .iter()
        .map(|a| a.roles.as_slice())
        .collect();
    let state = match assess(policy, &so_far, &by.roles) {
        Assessment::CannotHelp { missing } => return Err(RegistryError::RoleRequired { missing }),
        Assessment::Counts { complete: true } => VersionState::Approved,
        Assessment::Counts { complete: false } => VersionState::Proposed,
    };
    let mut head = head(model_name, version, record, by, reason.as_ref(), state);
    head.approvals.push(ApprovalMark {
        principal: by.name.clone(),
        roles: by.roles.clone(),
    });
    Ok(Some(Event::Approved {
        head,
        policy: policy.clone(),
    }))
}

/// The active version handing over to `record`. An approved version
/// always has its approval seq; one without (only a damaged ledger could
/// build it) is refused rather than activated.
fn switch(
    model: &ModelRecord,
    record: &VersionRecord,
    action: Action,
) -> Result<Switch, RegistryError> {
    let approval_seq = record
        .approval_seq
        .ok_or(RegistryError::InvalidTransition {
            current: record.state,
            action,
        })?;
    Ok(Switch {
        deactivated: model.active.clone(),
        approval_seq,
    })
}

/// The most recent previously active version that is still approved.
fn rollback_target(model: &ModelRecord) -> Option<(&str, &VersionRecord)> {
    model.activation_history.iter().rev().find_map(|label| {
        let record = model.versions.get(label)?;
        (record.state == VersionState::Approved && record.approval_seq.is_some())
            .then_some((label.as_str(), record))
    })
}
