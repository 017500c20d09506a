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

fn register(seq: u64, second: u32, sha: &str) -> Vec<u8> {
    entry(
        seq,
        second,
        "risk_register_set",
        json!({"sha256": sha, "eval_every_secs": 1, "window_secs": 2,
               "risks": [{"id": "r", "title": "T", "owner": "o", "models": ["m@v1"],
                          "controls": ["c"],
                          "indicators": [{"kpi": "error_rate", "threshold": 0.1, "direction": "above"},
                                         {"kpi": "psi", "feature": "age", "threshold": 0.2, "direction": "above"}]}]}),
    )
}

fn breached(seq: u64, second: u32, risk: &str, indicator: u64, model: &str) -> Vec<u8> {
    entry(
        seq,
        second,
        "risk_indicator_breached",
        json!({"risk": risk, "indicator": indicator, "model": model, "kpi": "error_rate",
               "threshold": 0.1, "direction": "above", "value": 0.5,
               "counts": {"errors": 5, "requests": 10}, "register_sha256": "aa"}),
    )
}

fn recovered(seq: u64, second: u32, breach_seq: u64, model: &str) -> Vec<u8> {
    entry(
        seq,
        second,
        "risk_indicator_recovered",
        json!({"risk": "r", "indicator": 0, "model": model, "kpi": "error_rate",
               "threshold": 0.1, "direction": "above", "value": 0.0, "breach_seq": breach_seq,
               "breached_secs": 3, "register_sha256": "aa"}),
    )
}

#[test]
fn breaches_pair_with_their_recoveries_and_open_ones_are_timed_to_the_period_end() {
    let entries = vec![
        register(0, 1, "aa"),
        breached(1, 2, "r", 0, "m@v1"),
        breached(2, 3, "r", 0, "m"),
        recovered(3, 5, 1, "m@v1"),
        decision(4, 9, "a", "served", "v1"),
    ];
    let made = report(&entries, 0, 59, None);
    let risks = &made["risks"];
    assert_eq!(risks["register"]["seq"], 0);
    assert_eq!(risks["register"]["sha256"], "aa");
    assert_eq!(
        (
            &risks["breaches"],
            &risks["recoveries"],
            &risks["open_at_end"]
        ),
        (&json!(2), &json!(1), &json!(1))
    );
    let risk = &risks["risks"][0];
    assert_eq!(risk["in_register"], true);
    assert_eq!(risk["owner"], "o");
    let indicator = &risk["indicators"][0];
    assert_eq!(indicator["breach_count"], 2);
    assert_eq!(indicator["recoveries"][0]["breach_seq"], 1);
    assert_eq!(indicator["recoveries"][0]["duration_ms"], 3000);
    assert_eq!(indicator["open_at_end"], json!([2]));
    // 3 s for the recovered breach, 6 s for the one open at the last entry.
    assert_eq!(indicator["breached_ms_in_period"], 9000);
    let second = &risk["indicators"][1];
    assert_eq!(
        (&second["kpi"], &second["subject"], &second["breach_count"]),
        (&json!("psi"), &json!("age"), &json!(0))
    );
    assert_eq!(second["breached_ms_in_period"], 0);
    // Linked to v1 (pinned) and to every version (breach on the model).
    assert_eq!(
        made["inventory"]["versions"][0]["linked_risks"],
        json!(["r"])
    );
    assert_eq!(made["incidents"]["by_kind"]["risk_indicator_breach"], 2);
    assert_eq!(risks["seqs"], json!([0, 1, 2, 3]));
}

#[test]
fn a_breach_before_the_period_is_timed_from_its_start_and_the_register_is_named_by_digest() {
    let entries = vec![
        register(0, 1, "aa"),
        breached(1, 5, "r", 0, "m"),
        recovered(2, 12, 1, "m"),
        decision(3, 14, "a", "served", "v1"),
    ];
    let made = report(&entries, 10, 59, None);
    let risks = &made["risks"];
    assert_eq!(risks["register"], Value::Null);
    assert_eq!(risks["register_sha256_cited"], json!(["aa"]));
    let risk = &risks["risks"][0];
    assert_eq!(risk["in_register"], false);
    assert_eq!(risk["title"], Value::Null);
    let indicator = &risk["indicators"][0];
    assert_eq!(indicator["kpi"], "error_rate");
    assert_eq!(indicator["recoveries"][0]["duration_ms"], Value::Null);
    assert_eq!(indicator["recoveries"][0]["breached_secs"], 3);
    assert_eq!(indicator["breached_ms_in_period"], 2000);
    assert_eq!(indicator["open_at_end"], json!([]));
}

#[test]
fn the_risks_figures_are_capped() {
    // More indicators than followed: the rest counted.
    let mut entries: Vec<Vec<u8>> = (0..1_001)
        .map(|seq| breached(seq, 1, &format!("r{seq:04}"), 0, "m"))
        .collect();
    // A breach whose counts list more groups than shown.
    let groups: Vec<Value> = (0..20)
        .map(|g| json!({"group": format!("g{g:02}"), "rows": 1, "selected": 1}))
        .collect();
    entries.push(entry(
        1_001,
        2,
        "risk_indicator_breached",
        json!({"risk": "r0000", "indicator": 0, "model": "m", "value": 1,
               "counts": {"rows_in_window": 20, "eligible_groups": groups}}),
    ));
    let made = report(&entries, 0, 59, None);
    let risks = &made["risks"];
    assert_eq!(risks["breaches"], 1_002);
    assert_eq!(risks["indicators_left_off"], 1);
    assert_eq!(risks["risks"].as_array().unwrap().len(), 1_000);
    let counts = &risks["risks"][0]["indicators"][0]["breaches"][1]["counts"];
    assert_eq!(counts["eligible_groups"].as_array().unwrap().len(), 16);
    assert_eq!(counts["eligible_groups_left_off"], 4);
    assert_eq!(counts["rows_in_window"], 20);
}

#[test]
fn a_report_of_format_1_is_computed_without_the_risks() {
    let entries = [
        register(0, 1, "aa"),
        breached(1, 2, "r", 0, "m"),
        decision(2, 3, "a", "served", "v1"),
    ];
    let period = Period::new("2026-12-06T10:00:00Z", "2026-12-06T10:00:59Z").unwrap();
    let mut run = Run::new(period, ControlMap::shipped())
        .in_format(super::FORMAT_1)
        .unwrap();
    for (seq, bytes) in entries.iter().enumerate() {
        run.feed(seq as u64, bytes).unwrap();
    }
    let made = run.finish(&outside()).unwrap();
    assert_eq!(made["format"], super::FORMAT_1);
    assert!(made.get("risks").is_none());
    assert!(
        made["inventory"]["versions"][0]
            .get("linked_risks")
            .is_none()
    );
    assert_eq!(made["incidents"]["by_kind"], json!({}));
    let period = Period::new("2026-12-06T10:00:00Z", "2026-12-06T10:00:59Z").unwrap();
    assert!(
        Run::new(period, ControlMap::shipped())
            .in_format("govgate-report/0")
            .is_err()
    );
}

#[test]
fn a_breach_of_the_period_past_the_cap_is_counted_not_timed() {
    // One breach more than are followed to their recovery, then its recovery.
    let mut entries: Vec<Vec<u8>> = (0..10_001)
        .map(|seq| breached(seq, 1, "r", 0, "m"))
        .collect();
    entries.push(recovered(10_001, 3, 10_000, "m"));
    let made = report(&entries, 0, 59, None);
    let risks = &made["risks"];
    assert_eq!(risks["open_left_off"], 1);
    assert_eq!(risks["open_at_end"], 10_000);
    assert_eq!(risks["listed_left_off"], 2);
    let indicator = &risks["risks"][0]["indicators"][0];
    assert_eq!(indicator["recovery_count"], 1);
    // 10 000 open breaches of 2 s each; the unfollowed one adds nothing.
    assert_eq!(indicator["breached_ms_in_period"], 20_000_000);
}

#[test]
fn a_fleets_registers_are_listed_with_their_control_seq() {
    let mut fleets = serde_json::from_slice::<Value>(&register(1, 2, "bb")).unwrap();
    fleets["control_seq"] = json!(7);
    let entries = vec![
        register(0, 1, "aa"),
        serde_json::to_vec(&fleets).unwrap(),
        decision(2, 9, "a", "served", "v1"),
    ];
    let made = report(&entries, 0, 59, None);
    assert_eq!(
        made["risks"]["registers_set"],
        json!([
            {"seq": 0, "time": "2026-12-06T10:00:01.000Z", "sha256": "aa"},
            {"seq": 1, "time": "2026-12-06T10:00:02.000Z", "sha256": "bb", "control_seq": 7},
        ])
    );
}
