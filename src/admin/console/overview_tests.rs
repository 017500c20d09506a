//! The overview's alerts: each raised by its condition, none when all is
//! well.

use super::*;
use serde_json::json;

const NOW: u64 = 1_796_601_600_000;

fn time(ms: u64) -> String {
    crate::ledger::entry::rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms))
}

fn well() -> Overview {
    Overview {
        models: json!({"models": []}),
        reviews: Some(json!({"reviews": [
            {"review_id": "r1", "review_kind": "hold", "model": "chat", "age_seconds": 5,
             "deadline": time(NOW + 600_000), "on_timeout": "rejected"},
        ]})),
        checkpoint: Some("test.example/log\n12\nroot\n".to_owned()),
        checkpoint_ms: Some(NOW - 3_600_000),
        verification: Some(json!({"last": {"result": "ok"}})),
        recent: Vec::new(),
        decided: None,
        breaches: Some(json!({"breaches": [], "indicators": 1})),
        witnesses: Some(
            json!({"interval_secs": 10, "threshold": 1, "cosigned_size": 12,
            "witnesses": [{"name": "w1", "cosigned_size": 12, "cosigned_time": NOW / 1000 - 3600,
                           "last": {"result": "unchanged", "size": 12}}]}),
        ),
        not_committing: None,
        now_ms: NOW,
    }
}

fn names(overview: &Overview) -> Vec<&'static str> {
    alerts(overview).iter().map(|a| a.name).collect()
}

#[test]
fn all_well_raises_nothing() {
    assert_eq!(names(&well()), Vec::<&str>::new());
}

#[test]
fn each_condition_raises_its_alert_critical_first() {
    let mut overview = well();
    overview.breaches = Some(
        json!({"breaches": [{"risk": "credit-bias", "model": "scorer",
        "indicator": "0:demographic_parity_difference:sex", "direction": "above", "threshold": 0.3}]}),
    );
    overview.verification = Some(json!({"last": {"result": "failed", "bad_seq": 7,
        "reason": "hash mismatch", "finished_at": time(NOW)}}));
    overview.not_committing = Some("disk full".to_owned());
    overview.reviews = Some(json!({"reviews": [
        {"review_id": "r1", "review_kind": "hold", "model": "chat", "age_seconds": 3700,
         "deadline": time(NOW + 30_000)},
        {"review_id": "r2", "review_kind": "flag", "model": "chat", "age_seconds": 9000,
         "deadline": time(NOW + 1_000)},
    ]}));
    overview.witnesses = Some(json!({"interval_secs": 10, "witnesses": [
        {"name": "w1", "cosigned_size": 10, "cosigned_time": NOW / 1000 - 3600, "last": null},
        {"name": "w2", "cosigned_size": null, "cosigned_time": null,
         "last": {"result": "unreachable", "size": 12, "detail": "connection refused"}},
    ]}));
    let found = alerts(&overview);
    assert_eq!(
        found.iter().map(|a| a.name).collect::<Vec<_>>(),
        [
            "GovgateLedgerNotCommitting",
            "GovgateLedgerVerificationFailed",
            "GovgateRiskIndicatorBreached",
            "HoldDeadlineNear",
            "GovgateHeldAnswersWaiting",
            "WitnessCosignatureLate",
            "WitnessCosignatureMissing",
        ]
    );
    assert_eq!(found[0].severity, Severity::Critical);
    assert_eq!(found[2].severity, Severity::Warning);
    assert_eq!(found[2].link.as_deref(), Some("/console/kpis/scorer"));
    assert!(found[1].text.contains("entry 7"), "{}", found[1].text);
    assert!(found[3].text.contains("in 30 s"), "{}", found[3].text);
    assert!(
        found[6].text.contains("connection refused"),
        "{}",
        found[6].text
    );
}

#[test]
fn a_witness_behind_a_fresh_checkpoint_is_not_late_yet() {
    let mut overview = well();
    overview.checkpoint = Some("test.example/log\n13\nroot\n".to_owned());
    overview.checkpoint_ms = Some(NOW - 5_000);
    assert_eq!(names(&overview), Vec::<&str>::new());
    overview.checkpoint_ms = Some(NOW - 11_000);
    assert_eq!(names(&overview), ["WitnessCosignatureLate"]);
}

#[test]
fn ages_read_as_people_say_them() {
    assert_eq!(age(NOW, NOW - 12_000), "12 s ago");
    assert_eq!(age(NOW, NOW - 300_000), "5 min ago");
    assert_eq!(age(NOW, NOW - 3 * 3_600_000), "3 h ago");
    assert_eq!(age(NOW, NOW - 3 * 86_400_000), "3 d ago");
    assert_eq!(age(NOW, NOW + 5_000), "0 s ago");
}
