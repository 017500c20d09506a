//! The demo's policy sets under four eyes (`review.policy_approval`): the
//! approval policy of its configuration, the approval and activation of
//! the set the gateway proposed from its folder at start (two officers
//! approve, ops activates, as for the sample versions), and a changed
//! copy of the folder that the tour's last step proposes, has approved,
//! activates, tries and rolls back.

use super::super::admin_client::AdminClient;
use anyhow::Context;
use http::Method;
use serde_json::json;
use std::path::{Path, PathBuf};

/// `review.policy_approval` of the demo: the same two officers as for
/// model versions.
pub(super) const CONFIG: &str = "policy_approval = { approvers = 2, required_roles = [\"ai_officer\", \"security_officer\"] }\n";

/// The changed copy of the policies, in the data directory.
const CHANGE_DIR: &str = "policies-change";

/// The rule the change edits (in caller_groups.rego) and what it becomes:
/// the chat model too serves service accounts only.
const RULE: &str = "caller_prefix := {\"credit-scoring\": \"svc-\"}";
const CHANGED_RULE: &str = "# CHG-7: support-chat too serves service accounts only.\n\
caller_prefix := {\"credit-scoring\": \"svc-\", \"support-chat\": \"svc-\"}";

/// Writes the policies served from `policies` into a new folder next to
/// it with the caller rule changed; that folder's path. A folder whose
/// caller rule was edited has nothing to change: an error.
pub(super) fn write_change(data_dir: &Path, policies: &Path) -> anyhow::Result<PathBuf> {
    let files = crate::review::read_sources(policies)
        .with_context(|| format!("reading {}", policies.display()))?;
    let dir = data_dir.join(CHANGE_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut changed = false;
    for (name, text) in files {
        let text = if text.contains(RULE) {
            changed = true;
            text.replacen(RULE, CHANGED_RULE, 1)
        } else {
            text
        };
        let path = dir.join(&name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(
        changed,
        "no policy in {} has the rule `{RULE}` to change",
        policies.display()
    );
    Ok(dir)
}

/// Has the set the gateway proposed from its folder approved by dana and
/// sam and activated by ops, printing each step and its ledger entry.
/// Until then every request is denied (no approved set is active). A set
/// already in force (a data directory used again) is left as it is.
pub(super) async fn approve_folder_set(admin: &str) -> anyhow::Result<()> {
    let ops = AdminClient::new(admin, super::token("ops"));
    let (status, listing) = ops.call(Method::GET, "/admin/policies/sets", None).await?;
    anyhow::ensure!(
        status.is_success(),
        "listing the policy sets: {status} {listing}"
    );
    let folder_set = listing["sets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|set| set["source"] == "folder")
        .max_by_key(|set| set["seq"].as_u64());
    let Some(set) = folder_set else {
        anyhow::bail!("the gateway proposed no policy set from its folder: {listing}");
    };
    let seq = set["seq"].as_u64().context("a policy set without a seq")?;
    if listing["in_force"]["proposal_seq"].as_u64().is_some() {
        println!(
            "\nA policy set approved in an earlier run is in force; the gateway proposed its folder as set {seq}."
        );
        return Ok(());
    }
    println!(
        "\nThe gateway proposed its review policies as policy set {seq}; until a set is approved and\n\
         activated every request is denied. Two officers approve it (four eyes), ops activates it:"
    );
    let steps = [
        ("dana", "approve", "approver:ai_officer"),
        ("sam", "approve", "approver:security_officer"),
        ("ops", "activate", "admin"),
    ];
    for (principal, action, role) in steps {
        let client = AdminClient::new(admin, super::token(principal));
        let body = json!({ "reason": "demo: review policies reviewed" });
        let (status, answer) = client
            .call(
                Method::POST,
                &format!("/admin/policies/sets/{seq}/{action}"),
                Some(&body),
            )
            .await?;
        anyhow::ensure!(
            status.is_success(),
            "{action} policy set {seq}: {status} {answer}"
        );
        println!(
            "  {principal} ({role}) {action}s policy set {seq}: now {}, ledger entry {}",
            answer["set"]["state"].as_str().unwrap_or("?"),
            answer["entry_seq"]
        );
    }
    Ok(())
}

/// The chat call of the tour's last step, as `caller` asking `question`.
fn chat_call(public: &str, caller: &str, question: &str) -> String {
    let body = json!({"model": crate::demo::CHAT_MODEL,
        "messages": [{"role": "user", "content": question}]});
    format!(
        "curl -s {public}/v1/chat/completions -H 'content-type: application/json' -H 'x-govgate-caller: {caller}' \\\n  -d '{body}'"
    )
}

/// The tour's last step: a policy change under four eyes.
pub(super) fn print_step(public: &str, admin: &str, cli: &str, change: &Path) {
    let change = super::shell_quoted(&change.display().to_string());
    let chat = crate::demo::CHAT_MODEL;
    let denied = chat_call(public, "bob", "Am I still served?");
    let served = chat_call(public, "bob", "And after the rollback?");
    println!(
        r#"
# 16. A policy change under four eyes. The policies in force are a set two officers approved
#     (`policies sets`: each set, its approvals, the one in force). A copy with one rule changed
#     (caller_groups.rego: {chat} too serves service accounts only) is in
#     {change}
#     ops proposes it; it judges nothing until dana and sam approved it and ops activated it.
#     Then bob's chat call is denied; a rollback puts the set before back in one call, and
#     bob is served again. The ledger holds each step, and the decisions name the set in force
export GOVGATE_TOKEN=demo-token-ops GOVGATE_ADMIN_URL={admin}
{cli} policies propose {change} --reason 'CHG-7: {chat} for service accounts only'
set=$({cli} policies sets | awk '$2 == "proposed" {{set = $1}} END {{print set}}')
{cli} policies sets
GOVGATE_TOKEN=demo-token-dana {cli} policies approve $set --reason 'policy review CHG-7'
GOVGATE_TOKEN=demo-token-sam {cli} policies approve $set --reason 'security review CHG-7'
{cli} policies activate $set --reason 'CHG-7'
{denied}
{cli} policies rollback --reason 'CHG-7 withdrawn'
{served}
curl -s "{admin}/ledger/entries?from=$set&count=7"
"#
    );
}
