//! Changes: every model-version and policy-set entry of the period (who,
//! with which roles and issuer, when, why), and for each change that was
//! approved in the period whether four eyes saw it: enough distinct
//! approvers, the proposer not among them, every required role covered by
//! a different approver.

use super::{Entry, Evidence, Facts, Section};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// At most this many change entries are listed, and changes judged.
const MAX_CHANGES: usize = 10_000;

/// The kinds this section lists.
fn is_change(kind: &str) -> bool {
    kind.starts_with("version_")
        || matches!(
            kind,
            "policy_set_proposed"
                | "policy_set_approved"
                | "policy_set_activated"
                | "policy_set_rolled_back"
        )
}

/// A change, as four-eyes is judged: a model version, or a policy set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Version(String, String),
    PolicySet(u64),
}

impl Key {
    fn of(entry: &Entry) -> Option<Self> {
        let kind = entry.kind();
        if kind.starts_with("version_") {
            return Some(Key::Version(
                entry.str("model")?.to_owned(),
                entry.str("version")?.to_owned(),
            ));
        }
        if kind == "policy_set_proposed" {
            return Some(Key::PolicySet(entry.seq));
        }
        entry.u64("proposal_seq").map(Key::PolicySet)
    }

    fn label(&self) -> String {
        match self {
            Key::Version(model, version) => format!("model {model} version {version}"),
            Key::PolicySet(seq) => format!("policy set proposed at seq {seq}"),
        }
    }
}

#[derive(Debug, Default)]
struct Judged {
    proposer: Option<(String, u64)>,
    /// The approval entry that completed it: its seq, approvals, policy.
    approved: Option<(u64, Value, Value)>,
    seqs: Vec<u64>,
}

/// The changes section.
#[derive(Debug, Default)]
pub(super) struct Changes {
    listed: Vec<Value>,
    left_off: u64,
    judged: BTreeMap<Key, Judged>,
    by_kind: BTreeMap<String, u64>,
}

impl Section for Changes {
    fn name(&self) -> &'static str {
        "changes"
    }

    fn observe(&mut self, entry: &Entry) {
        let kind = entry.kind();
        if !is_change(kind) {
            return;
        }
        *self.by_kind.entry(kind.to_owned()).or_default() += 1;
        if self.listed.len() < MAX_CHANGES {
            let mut item = Map::new();
            item.insert("seq".to_owned(), json!(entry.seq));
            item.insert("time".to_owned(), json!(entry.time_text()));
            item.insert("kind".to_owned(), json!(kind));
            for name in [
                "model",
                "version",
                "proposal_seq",
                "principal",
                "principal_roles",
                "principal_issuer",
                "reason",
                "state",
                "change_ref",
                "risk_class",
                "deactivated",
                "approval_seq",
                "set_sha256",
                // On a fleet's replica: the change's place in the fleet.
                "control_seq",
            ] {
                if let Some(value) = entry.get(name) {
                    item.insert(name.to_owned(), value.clone());
                }
            }
            self.listed.push(Value::Object(item));
        } else {
            self.left_off += 1;
        }
        let Some(key) = Key::of(entry) else { return };
        if self.judged.len() >= MAX_CHANGES && !self.judged.contains_key(&key) {
            return;
        }
        let judged = self.judged.entry(key).or_default();
        if judged.seqs.len() < 64 {
            judged.seqs.push(entry.seq);
        }
        let principal = entry.str("principal").unwrap_or_default().to_owned();
        match kind {
            "version_proposed" | "policy_set_proposed" => {
                judged.proposer = Some((principal, entry.seq));
            }
            "version_approved" | "policy_set_approved"
                if entry.str("state") == Some("approved") && judged.approved.is_none() =>
            {
                judged.approved =
                    Some((entry.seq, entry.value("approvals"), entry.value("policy")));
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>, _facts: &Facts<'_>) -> Value {
        let mut evidence = Evidence::default();
        for item in &self.listed {
            if let Some(seq) = item["seq"].as_u64() {
                evidence.add(seq);
            }
        }
        let mut four_eyes = Vec::new();
        let mut compliant = 0u64;
        for (key, judged) in &self.judged {
            let Some((approval_seq, approvals, policy)) = &judged.approved else {
                continue;
            };
            let check = judge(judged.proposer.as_ref(), approvals, policy);
            if check["compliant"] == true {
                compliant += 1;
            }
            let mut object = check.as_object().cloned().unwrap_or_default();
            object.insert("change".to_owned(), json!(key.label()));
            object.insert("approval_seq".to_owned(), json!(approval_seq));
            object.insert(
                "proposal_seq".to_owned(),
                json!(judged.proposer.as_ref().map(|(_, seq)| seq)),
            );
            object.insert("seqs".to_owned(), json!(judged.seqs));
            four_eyes.push(Value::Object(object));
        }
        let mut object = Map::new();
        object.insert("entries".to_owned(), Value::Array(self.listed));
        object.insert("entries_left_off".to_owned(), json!(self.left_off));
        object.insert("by_kind".to_owned(), json!(self.by_kind));
        object.insert(
            "four_eyes".to_owned(),
            json!({
                "approved_changes": four_eyes.len(),
                "compliant": compliant,
                "changes": four_eyes,
            }),
        );
        evidence.put(&mut object);
        Value::Object(object)
    }
}

/// Four eyes for one approved change: `approvals` (`[{"principal",
/// "roles"}]`) against `policy` (`{"approvers", "required_roles"}`).
fn judge(proposer: Option<&(String, u64)>, approvals: &Value, policy: &Value) -> Value {
    let listed = approvals.as_array().map(Vec::as_slice).unwrap_or_default();
    let approvals: Vec<(String, Vec<String>)> = listed
        .iter()
        .map(|approval| {
            let principal = approval["principal"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let roles = strings(&approval["roles"]);
            (principal, roles)
        })
        .collect();
    let required = strings(&policy["required_roles"]);
    let wanted = policy["approvers"].as_u64().unwrap_or(1) as usize;
    let mut names: Vec<&String> = approvals.iter().map(|(name, _)| name).collect();
    names.sort();
    names.dedup();
    let needed = wanted.max(required.len()).max(1);
    let distinct = names.len() == approvals.len() && names.len() >= needed;
    let proposer_not_approver = proposer.map(|(who, _)| !names.contains(&who));
    let roles_covered = covers(&approvals, &required);
    json!({
        "approvers": names,
        "approvals": listed,
        "approvers_needed": needed,
        "required_roles": required,
        "proposer": proposer.map(|(who, _)| who),
        "distinct_approvers": distinct,
        "proposer_not_approver": proposer_not_approver,
        "required_roles_covered": roles_covered,
        "compliant": distinct && roles_covered && proposer_not_approver != Some(false),
    })
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// Whether each required qualifier is held (`approver:<q>`) by a
/// different approver: a matching, found by trying each approver for the
/// first role left (policies name a handful of roles).
fn covers(approvals: &[(String, Vec<String>)], required: &[String]) -> bool {
    fn assign(
        approvals: &[(String, Vec<String>)],
        required: &[String],
        used: &mut Vec<bool>,
    ) -> bool {
        let Some((role, rest)) = required.split_first() else {
            return true;
        };
        let held = format!("approver:{role}");
        for (index, (_, roles)) in approvals.iter().enumerate() {
            if !used[index] && roles.contains(&held) {
                used[index] = true;
                if assign(approvals, rest, used) {
                    return true;
                }
                used[index] = false;
            }
        }
        false
    }
    if required.len() > 16 {
        return false;
    }
    assign(approvals, required, &mut vec![false; approvals.len()])
}

#[cfg(test)]
mod tests {
    use super::covers;

    fn approval(name: &str, roles: &[&str]) -> (String, Vec<String>) {
        (
            name.to_owned(),
            roles.iter().map(|r| (*r).to_owned()).collect(),
        )
    }

    #[test]
    fn each_required_role_needs_its_own_approver() {
        let roles = ["ai".to_owned(), "sec".to_owned()];
        let both = approval("a", &["approver:ai", "approver:sec"]);
        assert!(!covers(std::slice::from_ref(&both), &roles));
        assert!(covers(
            &[both.clone(), approval("b", &["approver:ai"])],
            &roles
        ));
        assert!(!covers(&[approval("b", &["approver"])], &roles[..1]));
        assert!(covers(&[], &[]));
    }
}
