//! Checks of the governance parts of the file: `[[admin.tokens]]`,
//! `[governance.approval]`, `[models.approval]` and each version's risk
//! class, change reference and artifact digest.

use super::raw::{RawApproval, RawApprovalLevel, RawToken, RawVersion};
use super::validate::Checker;
use super::{AdminToken, ApprovalConfig, ApprovalLevel, ConfigError};
use std::collections::HashSet;

/// The policy when `[governance.approval]` is absent: two approvers
/// besides the proposer (four eyes), no particular roles.
pub(super) fn default_approval() -> ApprovalConfig {
    ApprovalConfig {
        default: ApprovalLevel {
            approvers: 2,
            required_roles: Vec::new(),
        },
        high_risk: None,
    }
}

/// A role as the admin API knows it.
pub(super) fn check_role(checker: &Checker<'_>, key: &str, role: &str) -> Result<(), ConfigError> {
    let known = ["admin", "proposer", "approver", "reviewer", "auditor"];
    let ok = known.contains(&role)
        || role
            .strip_prefix("approver:")
            .is_some_and(|qualifier| check_qualifier(qualifier).is_ok());
    if ok {
        Ok(())
    } else {
        Err(checker.error(
            key,
            format!(
                "unknown role `{role}`; expected admin, proposer, approver, approver:<qualifier>, reviewer or auditor"
            ),
        ))
    }
}

/// Qualifiers of approver roles (`ai_officer`): lower-case letters, digits, `_`.
fn check_qualifier(qualifier: &str) -> Result<(), String> {
    let ok = !qualifier.is_empty()
        && qualifier.len() <= 64
        && qualifier
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{qualifier}` must be 1 to 64 lower-case letters, digits or `_`"
        ))
    }
}

pub(super) fn check_tokens(
    checker: &Checker<'_>,
    raw: Vec<RawToken>,
) -> Result<Vec<AdminToken>, ConfigError> {
    let mut principals = HashSet::new();
    let mut hashes = HashSet::new();
    let mut tokens = Vec::with_capacity(raw.len());
    for (index, token) in raw.into_iter().enumerate() {
        let key = format!("admin.tokens[{index}]");
        let name_ok = !token.principal.is_empty()
            && token.principal.len() <= 128
            && token
                .principal
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
        if !name_ok {
            return Err(checker.error(
                format!("{key}.principal"),
                "must be 1 to 128 characters of letters, digits, `.`, `_`, `-` or `@`",
            ));
        }
        if !principals.insert(token.principal.clone()) {
            return Err(checker.error(
                format!("{key}.principal"),
                format!("principal `{}` has two tokens", token.principal),
            ));
        }
        if token.roles.is_empty() {
            return Err(checker.error(format!("{key}.roles"), "at least one role"));
        }
        for (i, role) in token.roles.iter().enumerate() {
            check_role(checker, &format!("{key}.roles[{i}]"), role)?;
        }
        let hash = parse_sha256(&token.token_sha256).ok_or_else(|| {
            checker.error(
                format!("{key}.token_sha256"),
                "must be 64 hex digits: the SHA-256 of the token (`govgate token` prints it)",
            )
        })?;
        if !hashes.insert(hash) {
            return Err(checker.error(
                format!("{key}.token_sha256"),
                "the same token is given to two principals",
            ));
        }
        tokens.push(AdminToken {
            principal: token.principal,
            roles: token.roles,
            token_sha256: hash,
        });
    }
    Ok(tokens)
}

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

pub(super) fn check_level(
    checker: &Checker<'_>,
    key: &str,
    approvers: u64,
    required_roles: Vec<String>,
) -> Result<ApprovalLevel, ConfigError> {
    if approvers == 0 || approvers > 16 {
        return Err(checker.error(
            format!("{key}.approvers"),
            "must be 1 to 16 (the proposer never counts, so 1 already means four eyes)",
        ));
    }
    let mut seen = HashSet::new();
    for (i, role) in required_roles.iter().enumerate() {
        let role_key = format!("{key}.required_roles[{i}]");
        check_qualifier(role).map_err(|message| {
            checker.error(
                &role_key,
                format!("{message} (the qualifier of an `approver:<qualifier>` role)"),
            )
        })?;
        if !seen.insert(role) {
            return Err(checker.error(role_key, format!("`{role}` is listed twice")));
        }
    }
    if required_roles.len() as u64 > approvers {
        return Err(checker.error(
            format!("{key}.required_roles"),
            format!(
                "{} roles must each be held by a different approver, but only {approvers} approvers are required",
                required_roles.len()
            ),
        ));
    }
    Ok(ApprovalLevel {
        approvers: approvers as usize,
        required_roles,
    })
}

pub(super) fn check_approval(
    checker: &Checker<'_>,
    key: &str,
    raw: RawApproval,
) -> Result<ApprovalConfig, ConfigError> {
    let default = check_level(checker, key, raw.approvers, raw.required_roles)?;
    let high_risk = match raw.high_risk {
        Some(RawApprovalLevel {
            approvers,
            required_roles,
        }) => {
            let level = check_level(
                checker,
                &format!("{key}.high_risk"),
                approvers,
                required_roles,
            )?;
            if level.approvers < default.approvers {
                return Err(checker.error(
                    format!("{key}.high_risk.approvers"),
                    "high-risk versions may require more approvers, not fewer",
                ));
            }
            Some(level)
        }
        None => None,
    };
    Ok(ApprovalConfig { default, high_risk })
}

/// A version's governance fields: `(risk class, change reference, artifact digest, description)`.
pub(super) fn check_version_governance(
    checker: &Checker<'_>,
    key: &str,
    raw: &mut RawVersion,
) -> Result<(String, String, Option<String>, String), ConfigError> {
    let risk_class = raw.risk_class.take().unwrap_or_else(|| "high".to_owned());
    if !["minimal", "limited", "high"].contains(&risk_class.as_str()) {
        return Err(checker.error(
            format!("{key}.risk_class"),
            format!("unknown risk class `{risk_class}`; expected minimal, limited or high"),
        ));
    }
    let change_ref = raw.change_ref.take().unwrap_or_else(|| "config".to_owned());
    if change_ref.is_empty() || change_ref.len() > 256 {
        return Err(checker.error(format!("{key}.change_ref"), "must be 1 to 256 characters"));
    }
    let description = raw.description.take().unwrap_or_default();
    if description.len() > 4096 {
        return Err(checker.error(format!("{key}.description"), "at most 4096 bytes"));
    }
    Ok((
        risk_class,
        change_ref,
        raw.artifact_digest.take(),
        description,
    ))
}
