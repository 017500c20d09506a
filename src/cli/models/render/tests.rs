//! Rendering of answers shaped like the demo gateway's.

use super::*;
use serde_json::json;

fn record(state: &str, seq: u64, approvals: &[&str]) -> Value {
    json!({
        "spec": {"upstream": "http://127.0.0.1:46577", "upstream_model": null,
                 "artifact_digest": null, "risk_class": "high", "change_ref": "CHG-7",
                 "description": ""},
        "proposer": "govgate-config", "proposed_seq": seq,
        "proposed_time": "2026-11-27T14:11:15.106Z", "state": state,
        "approvals": approvals.iter().enumerate().map(|(n, p)| json!({
            "principal": p, "roles": ["approver:ai_officer"], "seq": seq + 1 + n as u64,
            "time": "2026-11-27T14:11:15.143Z"})).collect::<Vec<_>>(),
        "approval_seq": null,
        "history": [{"seq": seq, "kind": "version_proposed", "principal": "govgate-config",
                     "reason": "declared in the configuration",
                     "time": "2026-11-27T14:11:15.106Z", "state": "proposed"}],
    })
}

fn listing() -> Value {
    json!({"models": [{
        "name": "credit-scoring", "active": "9", "activation_history": [],
        "versions": {"10": record("proposed", 20, &[]), "9": record("active", 1, &["dana", "sam"])}
    }]})
}

#[test]
fn list_rows_follow_proposal_order_and_mark_the_active_version() {
    let text = list(&listing());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("MODEL"), "{text}");
    let words = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        words(lines[1]),
        ["credit-scoring", "9", "active", "high", "CHG-7", "2", "*"]
    );
    assert_eq!(
        words(lines[2]),
        ["credit-scoring", "10", "proposed", "high", "CHG-7", "0"]
    );
    assert!(text.lines().all(|line| line == line.trim_end()));
    assert_eq!(list(&json!({"models": []})), "no models\n");
}

#[test]
fn a_model_shows_its_active_version_and_rollback_line() {
    let mut answer = listing()["models"][0].clone();
    answer["activation_history"] = json!(["7", "8"]);
    let text = model(&answer);
    assert!(
        text.starts_with("model              credit-scoring\nactive version     9\n"),
        "{text}"
    );
    assert!(
        text.contains("previously active  7, 8 (a rollback goes to the last)\n"),
        "{text}"
    );
    assert!(text.contains("\nVERSION  STATE"), "{text}");
    answer["activation_history"] = json!([]);
    assert!(model(&answer).contains("previously active  -\n"));
}

#[test]
fn a_version_shows_details_approvals_and_history() {
    let mut version = record("approved", 1, &["dana", "sam"]);
    version["model"] = json!("credit-scoring");
    version["version"] = json!("9");
    version["active"] = json!(false);
    version["approval_seq"] = json!(3);
    let text = super::version(&version);
    assert!(text.contains("state            approved\n"), "{text}");
    assert!(text.contains("upstream model   -\n"), "{text}");
    assert!(
        text.contains("approvals        dana [approver:ai_officer] (ledger entry 2,"),
        "{text}"
    );
    assert!(
        text.contains("                 sam [approver:ai_officer] (ledger entry 3,"),
        "{text}"
    );
    assert!(text.contains("approval entry   3\n"), "{text}");
    assert!(
        text.contains("version_proposed  govgate-config  proposed"),
        "{text}"
    );
}

#[test]
fn changes_say_what_was_recorded() {
    let mut version = record("proposed", 1, &["dana"]);
    version["model"] = json!("m");
    version["version"] = json!("2");
    let answer =
        json!({"changed": true, "entry_seq": 12, "kind": "version_approved", "version": version});
    assert_eq!(
        change(&answer),
        "m 2: version_approved recorded as ledger entry 12\n  now proposed: approved by dana\n"
    );
    let mut answer = answer;
    answer["version"]["approvals_needed"] = json!(2);
    answer["version"]["missing_roles"] = json!(["approver:security_officer"]);
    assert!(
        change(&answer).ends_with(
            "now proposed: approved by dana; 2 more approvals needed: \
             role approver:security_officer and 1 from any approver\n"
        ),
        "{}",
        change(&answer)
    );
    answer["version"]["approvals_needed"] = json!(1);
    answer["version"]["missing_roles"] = json!([]);
    assert!(change(&answer).ends_with("1 more approval needed (any approver but the proposer)\n"));
    answer["version"]["state"] = json!("approved");
    answer["version"]["approval_seq"] = json!(12);
    assert!(
        change(&answer).contains("(approval entry 12); the approval policy is met: make it serve calls naming no version with `govgate models activate m 2`"),
        "{}",
        change(&answer)
    );
    let repeat =
        json!({"changed": false, "entry_seq": null, "kind": null, "version": answer["version"]});
    assert!(change(&repeat).contains("already recorded, nothing changed"));
}

#[test]
fn refusals_name_code_and_details() {
    let error = json!({"code": "invalid_transition", "message": "cannot activate a model version that is revoked", "current_state": "revoked"});
    assert_eq!(
        refusal(StatusCode::CONFLICT, &error),
        "govgate: refused by the admin API (409 invalid_transition): cannot activate a model version that is revoked\n  current state: revoked\n"
    );
    let error = json!({"code": "approver_role_required", "message": "m", "missing_roles": ["approver:ai_officer"]});
    assert!(refusal(StatusCode::FORBIDDEN, &error).contains("needed from: approver:ai_officer"));
}

#[test]
fn control_characters_never_reach_the_terminal() {
    assert_eq!(
        text(&json!("ok\u{1b}[2Jgone\n")),
        "ok\u{FFFD}[2Jgone\u{FFFD}"
    );
    assert_eq!(text(&json!(null)), "-");
    assert_eq!(text(&json!(7)), "7");
}
