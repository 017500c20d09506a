//! Why the registry refused a command, with a stable machine code each.
//!
//! The admin API maps these to HTTP: unknown model or version 404, role
//! failures 403, state conflicts (invalid transition, already exists,
//! nothing to roll back) 409, everything else the caller's input 400 or
//! 422. All of them are the client's doing; none carries a secret.

use super::types::{Action, VersionState};

/// A refused registry command, or an event that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The model is not configured.
    #[error("unknown model {model:?}")]
    UnknownModel {
        /// The model asked for.
        model: String,
    },
    /// The model has no such version.
    #[error("model {model:?} has no version {version:?}")]
    UnknownVersion {
        /// The model.
        model: String,
        /// The version asked for.
        version: String,
    },
    /// A version label is never reused, whatever became of the first one.
    #[error("model {model:?} already has a version {version:?}")]
    AlreadyExists {
        /// The model.
        model: String,
        /// The label already taken.
        version: String,
    },
    /// The principal lacks every role that allows the action.
    #[error("to {action} a model version, one of these roles is needed: {needed}")]
    Forbidden {
        /// What was attempted.
        action: Action,
        /// The roles that would allow it, in words.
        needed: &'static str,
    },
    /// The version's current state does not allow the action.
    #[error("cannot {action} a model version that is {current}")]
    InvalidTransition {
        /// The version's state now.
        current: VersionState,
        /// What was attempted.
        action: Action,
    },
    /// Four eyes: whoever proposed a version never approves it.
    #[error("the proposer of a model version may not approve it")]
    ProposerCannotApprove,
    /// This approval could not help meet the policy: the approvals still
    /// open are all needed for qualified approvers this principal is not.
    #[error("an approver holding one of these roles is needed: {}", missing_roles(.missing))]
    RoleRequired {
        /// Qualifiers the next approval could cover (`ai_officer`).
        missing: Vec<String>,
    },
    /// No previously active version of the model is still approved.
    #[error("model {model:?} has no previously active version that is still approved")]
    NothingToRollBack {
        /// The model.
        model: String,
    },
    /// Rejections and revocations must say why.
    #[error("a reason is required to {action} a model version")]
    ReasonRequired {
        /// What was attempted.
        action: Action,
    },
    /// A role that does not exist, or a malformed qualifier.
    #[error("unknown role {role:?}")]
    InvalidRole {
        /// The text given.
        role: String,
    },
    /// A field of the command is empty or malformed.
    #[error("invalid {field}: {problem}")]
    InvalidArgument {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Ledger members that are not a registry event of the given kind.
    #[error("malformed {kind} event: {problem}")]
    MalformedEvent {
        /// The entry kind.
        kind: String,
        /// What is wrong.
        problem: String,
    },
}

fn missing_roles(missing: &[String]) -> String {
    missing
        .iter()
        .map(|qualifier| format!("approver:{qualifier}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl RegistryError {
    /// Stable machine code for error bodies and logs.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::UnknownModel { .. } => "unknown_model",
            RegistryError::UnknownVersion { .. } => "unknown_version",
            RegistryError::AlreadyExists { .. } => "already_exists",
            RegistryError::Forbidden { .. } => "forbidden",
            RegistryError::InvalidTransition { .. } => "invalid_transition",
            RegistryError::ProposerCannotApprove => "proposer_cannot_approve",
            RegistryError::RoleRequired { .. } => "approver_role_required",
            RegistryError::NothingToRollBack { .. } => "nothing_to_roll_back",
            RegistryError::ReasonRequired { .. } => "reason_required",
            RegistryError::InvalidRole { .. } => "invalid_role",
            RegistryError::InvalidArgument { .. } => "invalid_argument",
            RegistryError::MalformedEvent { .. } => "malformed_event",
        }
    }
}
