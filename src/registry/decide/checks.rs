//! Checks that need no registry state: who may do what, and the shape of
//! a command's fields.

use crate::registry::types::{Action, Principal, Role};
use crate::registry::{Command, RegistryError};

/// Longest version label, change reference or upstream name accepted.
const MAX_LABEL_LEN: usize = 128;

/// Role rules: admin or proposer propose, activate and roll back; plain or
/// qualified approvers approve and reject; admin retires; admin or any
/// approver revokes.
pub(super) fn check_roles(action: Action, by: &Principal) -> Result<(), RegistryError> {
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

/// Field rules: a named principal, a usable label and spec for proposals,
/// a reason for rejections and revocations.
pub(super) fn check_fields(command: &Command, by: &Principal) -> Result<(), RegistryError> {
    if by.name.trim().is_empty() {
        return Err(invalid("principal", "must not be empty"));
    }
    match command {
        Command::Propose { version, spec, .. } => {
            check_label(version)?;
            check_text("upstream", &spec.upstream)?;
            check_text("change_ref", &spec.change_ref)
        }
        Command::Reject { reason, .. } | Command::Revoke { reason, .. }
            if reason.trim().is_empty() =>
        {
            Err(RegistryError::ReasonRequired {
                action: command.action(),
            })
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

/// Names and ticket ids: not blank, at most 128 bytes, no control characters.
fn check_text(field: &'static str, text: &str) -> Result<(), RegistryError> {
    if text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if text.len() > MAX_LABEL_LEN || text.chars().any(char::is_control) {
        return Err(invalid(field, "at most 128 bytes, no control characters"));
    }
    Ok(())
}
