//! Commands: what the admin API asks of the registry on a principal's behalf.

use super::types::{Action, VersionSpec};

/// One requested change. `reason` is mandatory (non-blank) for `Reject`
/// and `Revoke`, an optional comment for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Register a new version of a configured model; it starts `proposed`.
    Propose {
        /// The model.
        model: String,
        /// New version label (`1.4.0`); never reused.
        version: String,
        /// What the version is.
        spec: VersionSpec,
        /// Optional comment.
        reason: Option<String>,
    },
    /// Approve a proposed version.
    Approve {
        /// The model.
        model: String,
        /// The version.
        version: String,
        /// Optional comment.
        reason: Option<String>,
    },
    /// Turn down a proposed version.
    Reject {
        /// The model.
        model: String,
        /// The version.
        version: String,
        /// Why; mandatory.
        reason: String,
    },
    /// Make an approved version the one answering unversioned calls.
    Activate {
        /// The model.
        model: String,
        /// The version.
        version: String,
        /// Optional comment.
        reason: Option<String>,
    },
    /// Put back the most recent previously active version still approved.
    RollBack {
        /// The model.
        model: String,
        /// Optional comment.
        reason: Option<String>,
    },
    /// Take an approved or active version out of service.
    Retire {
        /// The model.
        model: String,
        /// The version.
        version: String,
        /// Optional comment.
        reason: Option<String>,
    },
    /// Withdraw a version for cause, whatever its state.
    Revoke {
        /// The model.
        model: String,
        /// The version.
        version: String,
        /// Why; mandatory.
        reason: String,
    },
}

impl Command {
    /// The action this command performs.
    pub fn action(&self) -> Action {
        match self {
            Command::Propose { .. } => Action::Propose,
            Command::Approve { .. } => Action::Approve,
            Command::Reject { .. } => Action::Reject,
            Command::Activate { .. } => Action::Activate,
            Command::RollBack { .. } => Action::RollBack,
            Command::Retire { .. } => Action::Retire,
            Command::Revoke { .. } => Action::Revoke,
        }
    }

    /// The model the command is about.
    pub fn model(&self) -> &str {
        match self {
            Command::Propose { model, .. }
            | Command::Approve { model, .. }
            | Command::Reject { model, .. }
            | Command::Activate { model, .. }
            | Command::RollBack { model, .. }
            | Command::Retire { model, .. }
            | Command::Revoke { model, .. } => model,
        }
    }
}
