//! What the registry knows about each model and version, as the admin API
//! shows it. Built only by applying events.

use super::types::{Role, VersionSpec, VersionState};
use serde::Serialize;
use std::collections::BTreeMap;

/// One approval of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRecord {
    /// Who approved.
    pub principal: String,
    /// Their roles when they approved.
    pub roles: Vec<Role>,
    /// The issuer of their JWT, when they signed in with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Seq of the `version_approved` entry.
    pub seq: u64,
    /// Time of that entry.
    pub time: String,
}

/// One event in a version's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryRecord {
    /// Seq of the entry.
    pub seq: u64,
    /// Entry kind (`version_activated` also appears on the version it
    /// deactivated).
    pub kind: &'static str,
    /// Who acted.
    pub principal: String,
    /// The issuer of their JWT, when they signed in with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Reason or comment.
    pub reason: Option<String>,
    /// Time of the entry.
    pub time: String,
    /// This version's state after the event.
    pub state: VersionState,
}

/// One version of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionRecord {
    /// What was proposed.
    pub spec: VersionSpec,
    /// Who proposed it (never counts as an approver).
    pub proposer: String,
    /// Seq of the `version_proposed` entry.
    pub proposed_seq: u64,
    /// Time of that entry.
    pub proposed_time: String,
    /// Where it stands.
    pub state: VersionState,
    /// Approvals in order, distinct principals.
    pub approvals: Vec<ApprovalRecord>,
    /// Seq of the approval that met the policy: what every decision
    /// served by this version cites.
    pub approval_seq: Option<u64>,
    /// Every event about this version, in order.
    pub history: Vec<HistoryRecord>,
}

/// One configured model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModelRecord {
    /// Versions by label.
    pub versions: BTreeMap<String, VersionRecord>,
    /// The version answering unversioned calls.
    pub active: Option<String>,
    /// Previously active versions, most recent last; each is still
    /// approved (a version leaves this stack when it is activated again,
    /// rolled back to, retired or revoked).
    pub activation_history: Vec<String>,
    /// The version that was active when it was revoked, until another is
    /// activated: calls naming no version are told it was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_active: Option<String>,
}
