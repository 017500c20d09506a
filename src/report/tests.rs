//! The report's fold on hand-made entries: the period's bounds (by time,
//! and by the seq a report_issued entry records), and figures that need
//! no gateway to check.

use super::{Fed, Outside, Period, Run, controls::ControlMap};
use serde_json::{Value, json};

fn entry(seq: u64, second: u32, kind: &str, members: Value) -> Vec<u8> {
    let mut object = members.as_object().cloned().unwrap_or_default();
    object.insert("seq".to_owned(), json!(seq));
    object.insert("kind".to_owned(), json!(kind));
    object.insert("origin".to_owned(), json!("o"));
    object.insert(
        "time".to_owned(),
        json!(format!("2026-12-06T10:00:{second:02}.000Z")),
    );
    serde_json::to_vec(&Value::Object(object)).unwrap()
}

fn decision(seq: u64, second: u32, caller: &str, outcome: &str, version: &str) -> Vec<u8> {
    entry(
        seq,
        second,
        "decision",
        json!({"caller": caller, "outcome": outcome, "model": "m", "version": version,
               "approval_seq": 1, "error_code": null}),
    )
}

fn outside() -> Outside {
    Outside {
        checkpoint: (100, "o\n100\nROOT=\n\n— o sig\n".to_owned()),
        verified: true,
        made_from: super::MADE_FROM_LEDGER,
    }
}

fn report(entries: &[Vec<u8>], from: u32, to: u32, until: Option<u64>) -> Value {
    let period = Period::new(
        &format!("2026-12-06T10:00:{from:02}Z"),
        &format!("2026-12-06T10:00:{to:02}Z"),
    )
    .unwrap();
    let mut run = Run::new(period, ControlMap::shipped()).until(until);
    for (seq, bytes) in entries.iter().enumerate() {
        if run.feed(seq as u64, bytes).unwrap() == Fed::Done {
            break;
        }
    }
    run.finish(&outside()).unwrap()
}

#[test]
fn the_period_is_cut_by_time_and_by_the_recorded_last_seq() {
    let entries = vec![
        decision(0, 1, "a", "served", "v1"),
        decision(1, 2, "a", "served", "v1"),
        decision(2, 3, "b", "denied", "v1"),
        decision(3, 4, "b", "served", "v1"),
    ];
    let cut = report(&entries, 2, 4, None);
    assert_eq!(cut["scope"]["first_seq"], 1);
    assert_eq!(cut["scope"]["last_seq"], 2);
    assert_eq!(cut["traffic"]["decisions"], 2);
    assert_eq!(
        cut["traffic"]["by_outcome"]["counts"],
        json!({"served": 1, "denied": 1})
    );
    let until = report(&entries, 0, 59, Some(1));
    assert_eq!(until["scope"]["last_seq"], 1);
    assert_eq!(until["traffic"]["by_caller"]["counts"], json!({"a": 2}));
}

#[test]
fn a_rollback_is_timed_to_the_first_answer_of_the_restored_version() {
    let entries = vec![
        decision(0, 1, "a", "served", "v2"),
        entry(
            1,
            2,
            "version_rolled_back",
            json!({"model": "m", "version": "v1", "deactivated": "v2", "reason": "slow"}),
        ),
        // Refused answers do not count as served by the restored version.
        decision(2, 3, "a", "blocked", "v1"),
        decision(3, 5, "a", "served", "v1"),
        decision(4, 6, "a", "served", "v1"),
    ];
    let made = report(&entries, 0, 59, None);
    let rollback = &made["rollback_performance"]["rollbacks"][0];
    assert_eq!(rollback["seq"], 1);
    assert_eq!(rollback["first_decision_seq"], 3);
    assert_eq!(rollback["restore_ms"], 3000);
    assert_eq!(made["incidents"]["listed"][0]["reason"], "slow");
}

#[test]
fn four_eyes_fails_when_the_proposer_approves() {
    let proposed = json!({"model": "m", "version": "v9", "principal": "pat", "state": "proposed"});
    let approved = json!({"model": "m", "version": "v9", "principal": "pat", "state": "approved",
        "approvals": [{"principal": "pat", "roles": ["approver"]}],
        "policy": {"approvers": 1, "required_roles": []}});
    let entries = vec![
        entry(0, 1, "version_proposed", proposed),
        entry(1, 2, "version_approved", approved),
    ];
    let made = report(&entries, 0, 59, None);
    let change = &made["changes"]["four_eyes"]["changes"][0];
    assert_eq!(change["proposer_not_approver"], false);
    assert_eq!(change["compliant"], false);
    assert_eq!(made["changes"]["four_eyes"]["compliant"], 0);
}

#[test]
fn callers_beyond_the_top_are_counted_as_others() {
    let entries: Vec<Vec<u8>> = (0..60)
        .map(|seq| decision(seq, 1, &format!("c{seq:02}"), "served", "v1"))
        .collect();
    let made = report(&entries, 0, 59, None);
    let callers = &made["traffic"]["by_caller"];
    assert_eq!(callers["counts"].as_object().unwrap().len(), 50);
    assert_eq!(callers["others"], 10);
}

#[test]
fn an_empty_period_is_refused() {
    let period = Period::new("2026-12-06T10:00:00Z", "2026-12-06T10:00:01Z").unwrap();
    let run = Run::new(period, ControlMap::shipped());
    assert!(run.finish(&outside()).is_err());
    assert!(Period::new("2026-12-06T10:00:01Z", "2026-12-06T10:00:01Z").is_err());
    assert!(Period::new("yesterday", "2026-12-06T10:00:01Z").is_err());
}

#[test]
fn erasures_are_told_apart_by_who_asked() {
    let entries = vec![
        entry(
            0,
            1,
            "payload_erased",
            json!({"reason": "retention: m keeps payloads 200d (models.retention.payloads)", "erased_seq": 0}),
        ),
        entry(
            1,
            2,
            "payload_erased",
            json!({"reason": "ticket 7", "erased_seq": 0, "principal": "ops"}),
        ),
        entry(
            2,
            3,
            "retention_run",
            json!({"more": false, "models": [{"model": "m", "payloads": "200d", "cutoff": "2026-06-06T10:00:00.000Z", "erased": 1, "through_seq": 1}]}),
        ),
    ];
    let made = report(&entries, 0, 59, None);
    let retention = &made["retention"];
    assert_eq!(
        retention["payloads_erased"],
        json!({"by_retention": 1, "on_request": 1, "on_request_by_admin_api": 1})
    );
    assert_eq!(retention["retention_by_model"]["m"]["erased"], 1);
    assert_eq!(retention["seqs"], json!([0, 1, 2]));
}
