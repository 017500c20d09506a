//! The registry's vocabulary: risk classes, version states, roles,
//! principals, version specs and the actions a principal may take.

use super::RegistryError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Risk class of a model version (EU AI Act style), chosen by the proposer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskClass {
    /// Minimal risk.
    Minimal,
    /// Limited risk (transparency obligations).
    Limited,
    /// High risk: may need a stricter approval policy.
    High,
}

impl RiskClass {
    /// Parses the lower-case name.
    pub fn parse(text: &str) -> Option<RiskClass> {
        match text {
            "minimal" => Some(RiskClass::Minimal),
            "limited" => Some(RiskClass::Limited),
            "high" => Some(RiskClass::High),
            _ => None,
        }
    }

    /// The lower-case name used in the ledger and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskClass::Minimal => "minimal",
            RiskClass::Limited => "limited",
            RiskClass::High => "high",
        }
    }
}

impl fmt::Display for RiskClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a model version stands in its lifecycle.
///
/// `proposed -> approved -> active <-> approved -> retired`,
/// `proposed -> rejected`, and anything but `revoked` -> `revoked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Waiting for approvals; not servable.
    Proposed,
    /// Approval policy met; servable when asked for explicitly.
    Approved,
    /// The one version answering unversioned calls for its model.
    Active,
    /// Taken out of service; not servable.
    Retired,
    /// Turned down during approval; not servable.
    Rejected,
    /// Withdrawn for cause; refused with its own error.
    Revoked,
}

impl VersionState {
    /// The lower-case name used in the ledger, the admin API and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Proposed => "proposed",
            VersionState::Approved => "approved",
            VersionState::Active => "active",
            VersionState::Retired => "retired",
            VersionState::Rejected => "rejected",
            VersionState::Revoked => "revoked",
        }
    }

    /// Whether a version in this state may serve traffic.
    pub fn is_servable(self) -> bool {
        matches!(self, VersionState::Approved | VersionState::Active)
    }
}

impl fmt::Display for VersionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An admin-API role, written `admin`, `proposer`, `approver`,
/// `approver:<qualifier>`, `reviewer` or `auditor`.
///
/// Qualifiers are 1 to 64 characters of `a-z`, `0-9` and `_`
/// (`approver:ai_officer`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Runs the registry: activates, rolls back, retires, revokes, proposes.
    Admin,
    /// Proposes versions, activates and rolls back approved ones.
    Proposer,
    /// Approves, rejects or revokes versions; covers no required qualifier.
    Approver,
    /// An approver who also covers one required qualifier.
    QualifiedApprover(String),
    /// Decides held decisions (not a registry role).
    Reviewer,
    /// Reads the ledger (not a registry role).
    Auditor,
}

/// Longest accepted approver qualifier.
const MAX_QUALIFIER_LEN: usize = 64;

impl Role {
    /// Whether this role lets its holder approve, reject or revoke.
    pub fn is_approver(&self) -> bool {
        matches!(self, Role::Approver | Role::QualifiedApprover(_))
    }

    /// The qualifier of an `approver:<qualifier>` role.
    pub fn qualifier(&self) -> Option<&str> {
        match self {
            Role::QualifiedApprover(qualifier) => Some(qualifier),
            _ => None,
        }
    }
}

/// Whether `text` is an acceptable approver qualifier.
pub(crate) fn is_valid_qualifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_QUALIFIER_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl FromStr for Role {
    type Err = RegistryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "admin" => Ok(Role::Admin),
            "proposer" => Ok(Role::Proposer),
            "approver" => Ok(Role::Approver),
            "reviewer" => Ok(Role::Reviewer),
            "auditor" => Ok(Role::Auditor),
            _ => match text.strip_prefix("approver:") {
                Some(qualifier) if is_valid_qualifier(qualifier) => {
                    Ok(Role::QualifiedApprover(qualifier.to_owned()))
                }
                _ => Err(RegistryError::InvalidRole {
                    role: text.to_owned(),
                }),
            },
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Admin => f.write_str("admin"),
            Role::Proposer => f.write_str("proposer"),
            Role::Approver => f.write_str("approver"),
            Role::QualifiedApprover(qualifier) => write!(f, "approver:{qualifier}"),
            Role::Reviewer => f.write_str("reviewer"),
            Role::Auditor => f.write_str("auditor"),
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Someone acting on the registry, as the admin API authenticated them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable, unique name (the token's subject).
    pub name: String,
    /// Roles granted to the token.
    pub roles: Vec<Role>,
    /// The issuer of a person's JWT (`[admin.jwt]`); `None` for a
    /// configured token. Recorded only: approvers are told apart by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl Principal {
    /// A principal with these roles.
    pub fn new(name: impl Into<String>, roles: Vec<Role>) -> Self {
        Principal {
            name: name.into(),
            roles,
            issuer: None,
        }
    }

    /// The same principal, authenticated by a token of `issuer`.
    pub fn with_issuer(self, issuer: Option<String>) -> Self {
        Principal { issuer, ..self }
    }

    /// A principal whose roles are given as text (`"approver:ai_officer"`);
    /// any unknown role is an error.
    pub fn parse<S: AsRef<str>>(
        name: impl Into<String>,
        roles: impl IntoIterator<Item = S>,
    ) -> Result<Self, RegistryError> {
        let roles = roles
            .into_iter()
            .map(|role| role.as_ref().parse())
            .collect::<Result<Vec<Role>, _>>()?;
        Ok(Principal::new(name, roles))
    }

    /// Whether the principal holds `role`.
    pub fn has(&self, role: &Role) -> bool {
        self.roles.contains(role)
    }

    /// Whether the principal holds a plain or qualified approver role.
    pub fn is_approver(&self) -> bool {
        self.roles.iter().any(Role::is_approver)
    }

    /// Whether the principal holds `approver:<qualifier>`.
    pub fn has_qualifier(&self, qualifier: &str) -> bool {
        self.roles
            .iter()
            .any(|role| role.qualifier() == Some(qualifier))
    }
}

/// What a proposer says about a new model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSpec {
    /// Name of the configured upstream that serves this version.
    pub upstream: String,
    /// Model name to send upstream, when it differs from the public one.
    pub upstream_model: Option<String>,
    /// Digest of the model artifact (`sha256:...`), when known.
    pub artifact_digest: Option<String>,
    /// Risk class; selects the approval policy.
    pub risk_class: RiskClass,
    /// Change reference (ticket id); mandatory.
    pub change_ref: String,
    /// Free text for reviewers.
    pub description: String,
}

/// A registry action, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Propose a new version.
    Propose,
    /// Approve a proposed version.
    Approve,
    /// Reject a proposed version.
    Reject,
    /// Make an approved version the active one.
    Activate,
    /// Go back to the previously active version.
    RollBack,
    /// Take a version out of service.
    Retire,
    /// Withdraw a version for cause.
    Revoke,
}

impl Action {
    /// The verb, as used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Propose => "propose",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Activate => "activate",
            Action::RollBack => "roll back",
            Action::Retire => "retire",
            Action::Revoke => "revoke",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
