//! The trends fold on hand-made snapshots and registers: figures copied
//! exactly, thresholds of the register in force, the caps.

use crate::report::{Fed, Outside, Period, Run, controls::ControlMap};
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

/// A snapshot of model `m`: parity difference `dpd` over `rows` rows, and
/// version `1`'s feature `amount` with `psi`.
fn snapshot(seq: u64, second: u32, window: u64, dpd: Value, rows: u64, psi: Value) -> Vec<u8> {
    entry(
        seq,
        second,
        "kpi_snapshot",
        json!({
            "model": "m", "trigger": "interval", "serving_version": "1",
            "settings": {"window": window, "min_group_size": 2, "max_groups": 50,
                         "reference_rows": 2, "snapshot_every_secs": 1},
            "fairness": {"rows_in_window": rows, "rows_total": rows, "attributes": [
                {"name": "sex", "groups": [], "missing_rows": 0, "overflow_rows": 0,
                 "demographic_parity_difference": dpd, "demographic_parity_ratio": null,
                 "equal_opportunity_difference": null, "equalized_odds_difference": null}]},
            "drift": [{"version": "1", "reference_state": "ready", "rows_in_window": rows,
                       "features": [{"name": "amount", "kind": "numeric", "psi": psi,
                                     "js_distance": 0.25, "ks": {"statistic": 0.5}}]}],
            "omitted": [],
        }),
    )
}

fn register(seq: u64, second: u32, threshold: f64) -> Vec<u8> {
    entry(
        seq,
        second,
        "risk_register_set",
        json!({"sha256": "aa", "eval_every_secs": 1, "window_secs": 2, "risks": [
            {"id": "bias", "models": ["m"], "indicators": [
                {"kpi": "demographic_parity_difference", "attribute": "sex",
                 "threshold": threshold, "direction": "above", "for_secs": 0, "min_count": 4},
                {"kpi": "error_rate", "threshold": 0.1, "direction": "above",
                 "for_secs": 0, "min_count": 1}]},
            {"id": "drift", "models": ["m@2"], "indicators": [
                {"kpi": "psi", "feature": "amount", "threshold": 0.2, "direction": "above",
                 "for_secs": 0, "min_count": 1}]},
            {"id": "drift-any", "models": ["m"], "indicators": [
                {"kpi": "js", "feature": "amount", "threshold": 0.3, "direction": "below",
                 "for_secs": 0, "min_count": 1}]}]}),
    )
}

fn trends(entries: &[Vec<u8>]) -> Value {
    let period = Period::new("2026-12-06T10:00:00Z", "2026-12-06T10:00:59Z").unwrap();
    let mut run = Run::new(period, ControlMap::shipped());
    for (seq, bytes) in entries.iter().enumerate() {
        assert_eq!(run.feed(seq as u64, bytes).unwrap(), Fed::More);
    }
    let outside = Outside {
        checkpoint: (100, "o\n100\nROOT=\n\n— o sig\n".to_owned()),
        verified: true,
        made_from: crate::report::MADE_FROM_LEDGER,
    };
    run.finish(&outside).unwrap()["kpi_trends"].clone()
}

fn series<'a>(model: &'a Value, kpi: &str) -> &'a Value {
    model["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kpi"] == kpi)
        .unwrap_or_else(|| panic!("no {kpi} series in {model:#}"))
}

#[test]
fn series_copy_the_figures_and_count_points_beyond_the_register_in_force() {
    let third = 1.0 / 3.0;
    let entries = [
        snapshot(0, 1, 6, json!(0.5), 8, json!(0.1)),
        register(1, 2, 0.3),
        snapshot(2, 3, 6, json!(third), 8, json!(0.3)),
        // Beyond, but from fewer rows than min_count: not counted.
        snapshot(3, 4, 6, json!(0.9), 3, json!(null)),
        snapshot(4, 5, 8, json!(0.4), 8, json!(0.05)),
        register(5, 6, 0.45),
        snapshot(6, 7, 8, json!(0.4), 8, json!(0.05)),
    ];
    let made = trends(&entries);
    assert_eq!(made["registers_set_count"], 2);
    assert_eq!(made["seqs"], json!([0, 1, 2, 3, 4, 5, 6]));
    let model = &made["models"][0];
    assert_eq!(model["model"], "m");
    assert_eq!(model["snapshots"], 5);
    assert_eq!(model["before_register"], 1);
    assert_eq!(
        model["by_trigger"],
        json!({"counts": {"interval": 5}, "others": 0})
    );
    // The settings of the first snapshot and the change of the window.
    let settings = model["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 2);
    assert_eq!(
        (settings[0]["seq"].clone(), settings[1]["seq"].clone()),
        (json!(0), json!(4))
    );
    assert_eq!(settings[1]["settings"]["window"], 8);

    let dpd = series(model, "demographic_parity_difference");
    assert_eq!(dpd["kind"], "fairness");
    assert_eq!(dpd["subject"], "sex");
    assert_eq!(dpd["points"], 5);
    assert_eq!(dpd["defined"], 5);
    assert_eq!(
        (dpd["min"].as_f64(), dpd["min_seq"].clone()),
        (Some(third), json!(2))
    );
    assert_eq!(
        (dpd["max"].clone(), dpd["max_seq"].clone()),
        (json!(0.9), json!(3))
    );
    assert_eq!(
        (dpd["last"].clone(), dpd["last_seq"].clone()),
        (json!(0.4), json!(6))
    );
    assert_eq!(
        dpd["listed"][1],
        json!({"seq": 2, "time": "2026-12-06T10:00:03.000Z", "value": third, "rows": 8})
    );
    // Register 1 (0.3) was in force for seqs 2, 3, 4: 2 (1/3) and 4 are
    // beyond (3 has too few rows); register 5 (0.45) for seq 6: within.
    let watched = dpd["indicators"].as_array().unwrap();
    assert_eq!(watched.len(), 2, "{dpd:#}");
    assert_eq!(
        watched[0],
        json!({"register_seq": 1, "risk": "bias", "indicator": 0,
               "kpi": "demographic_parity_difference", "threshold": 0.3, "direction": "above",
               "min_count": 4, "checked": 3, "beyond": 2, "beyond_seqs": [2, 4],
               "beyond_seqs_left_off": 0})
    );
    assert_eq!(
        (
            watched[1]["register_seq"].clone(),
            watched[1]["checked"].clone(),
            watched[1]["beyond"].clone()
        ),
        (json!(5), json!(1), json!(0))
    );
    // A series whose values are all null has no min, max.
    let ratio = series(model, "demographic_parity_ratio");
    assert_eq!(
        (ratio["defined"].clone(), ratio["min"].clone()),
        (json!(0), Value::Null)
    );
    assert_eq!(ratio["indicators"], json!([]));

    // Drift: `m@2` does not watch version 1; `js` names js_distance.
    let psi = series(model, "psi");
    assert_eq!(
        (psi["kind"].clone(), psi["version"].clone()),
        (json!("drift"), json!("1"))
    );
    assert_eq!(
        (psi["points"].clone(), psi["defined"].clone()),
        (json!(5), json!(4))
    );
    assert_eq!(
        (psi["last"].clone(), psi["min"].clone()),
        (json!(0.05), json!(0.05))
    );
    assert_eq!(psi["indicators"], json!([]));
    let js = series(model, "js_distance");
    assert_eq!(js["indicators"][0]["risk"], "drift-any");
    assert_eq!(js["indicators"][0]["direction"], "below");
    assert_eq!(js["indicators"][0]["beyond"], 3);
    assert_eq!(series(model, "ks")["max"], 0.5);
    // The last register's PSI indicator on `m@2` watched no point.
    assert_eq!(
        made["indicators_without_points"],
        json!([{"register_seq": 5, "risk": "drift", "indicator": 0, "kpi": "psi",
                "subject": "amount", "models": ["m@2"], "threshold": 0.2,
                "direction": "above"}])
    );
}

#[test]
fn without_a_register_in_the_period_nothing_is_checked_and_the_note_says_so() {
    let made = trends(&[snapshot(0, 1, 6, json!(0.5), 8, json!(0.1))]);
    assert_eq!(made["registers_set_count"], 0);
    assert!(
        made["note"]
            .as_str()
            .unwrap()
            .starts_with("no risk_register_set in the period")
    );
    let model = &made["models"][0];
    assert_eq!(model["before_register"], 1);
    assert_eq!(
        series(model, "demographic_parity_difference")["indicators"],
        json!([])
    );
}

#[test]
fn points_past_the_cap_are_counted_and_still_enter_the_figures() {
    let mut entries: Vec<Vec<u8>> = (0..1_001u64)
        .map(|seq| snapshot(seq, 1, 6, json!(seq as f64 / 10_000.0), 8, json!(0.1)))
        .collect();
    entries.push(snapshot(1_001, 2, 6, json!(-1.5), 8, json!(0.1)));
    let made = trends(&entries);
    let model = &made["models"][0];
    assert_eq!(model["snapshots"], 1_002);
    assert_eq!(model["listed_left_off"], 2);
    let dpd = series(model, "demographic_parity_difference");
    assert_eq!(dpd["points"], 1_002);
    assert_eq!(dpd["listed"].as_array().unwrap().len(), 1_000);
    assert_eq!(dpd["listed_left_off"], 2);
    assert_eq!(
        (dpd["min"].clone(), dpd["min_seq"].clone()),
        (json!(-1.5), json!(1_001))
    );
    assert_eq!(
        (dpd["max"].clone(), dpd["max_seq"].clone()),
        (json!(0.1), json!(1_000))
    );
    assert_eq!(made["seqs_left_off"], 2);
}
