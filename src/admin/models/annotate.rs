//! What the admin API adds to a version's record for the person reading
//! it: the approval policy it is under now, what it still lacks, and
//! whether its risk class is the configuration's default.

use crate::registry::{ApprovalPolicy, VersionRecord, VersionState, outstanding};
use serde_json::{Value, json};
use std::collections::HashSet;

/// `(model, version)` pairs the configuration declares without a
/// `risk_class`, which therefore were proposed as `high` by default.
pub type DefaultRisk = HashSet<(String, String)>;

/// Adds `approval_policy`, `approvals_needed`, `missing_roles` and
/// `risk_class_default` to `value`, the JSON of `record`.
pub(super) fn annotate(
    value: &mut Value,
    record: &VersionRecord,
    policy: &ApprovalPolicy,
    risk_class_default: bool,
) {
    let roles: Vec<&[crate::registry::Role]> = record
        .approvals
        .iter()
        .map(|a| a.roles.as_slice())
        .collect();
    // Only a proposed version can still be approved; whatever it lacked
    // then no longer matters.
    let lacking = if record.state == VersionState::Proposed {
        outstanding(policy, &roles)
    } else {
        crate::registry::Outstanding::default()
    };
    let qualified = |qualifiers: &[String]| -> Vec<String> {
        qualifiers.iter().map(|q| format!("approver:{q}")).collect()
    };
    value["approval_policy"] = json!({
        "approvers": policy.needed(),
        "required_roles": qualified(&policy.required_roles),
    });
    value["approvals_needed"] = json!(lacking.approvals);
    value["missing_roles"] = json!(qualified(&lacking.qualifiers));
    value["risk_class_default"] = json!(risk_class_default);
}
