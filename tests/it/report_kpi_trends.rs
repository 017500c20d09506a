//! The fairness and drift trends in `govgate report`: a gateway writes
//! `kpi_snapshot` entries (version changes, a one-second interval, the
//! stop) under a risk register with a fairness and a drift indicator; the
//! report's series are exactly the snapshots' figures, their counts beyond
//! the thresholds are those of the register in force, report.html draws
//! them, and `verify --report` recomputes them (and refuses a report with
//! one trend number edited, in report.json or in report.html). A report of
//! the format before this section, made by the previous govgate, still
//! verifies.

use crate::kpi_snapshots::snapshot;
use crate::report::{report_everything, run, said};
use crate::report_pipeline::bundle_entries;
use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::{Value, json};
use std::path::Path;

/// Two versions of `scorer` with fairness by `sex` and drift of `amount`,
/// a snapshot every second; a risk on each, evaluated every second.
fn config(upstream: &str) -> String {
    format!(
        r#"
[risk_register]
eval_every_secs = 1
window_secs = 2

[[risks]]
id = "credit-bias"
title = "Unequal approval rates between sexes"
owner = "head-of-credit-risk"
models = ["scorer"]
[[risks.indicators]]
kpi = "demographic_parity_difference"
attribute = "sex"
threshold = 0.3
direction = "above"
min_count = 8

[[risks]]
id = "amount-drift"
title = "Applicants' amounts move away from the reference"
owner = "model-owner"
models = ["scorer"]
[[risks.indicators]]
kpi = "psi"
feature = "amount"
threshold = 0.5
direction = "above"
min_count = 1

[[models]]
name = "scorer"
protocol = "kserve_v2"
default_version = "1"
[models.kpi]
window = 8
min_group_size = 2
reference_rows = 2
snapshot_every_secs = 1
[models.kpi.outcome]
pointer = "/scores/*"
threshold = 0.5
[[models.kpi.attributes]]
name = "sex"
pointer = "/sex/*"
[[models.kpi.features]]
name = "amount"
kind = "numeric"
pointer = "/amount/*"
[[models.versions]]
version = "1"
upstream = "{upstream}"
[[models.versions]]
version = "2"
upstream = "{upstream}"
"#
    )
}

/// Sends 8 rows, 4 of each sex, scored as given, with these amounts.
async fn rows(gateway: &Gateway, f: f64, m: f64, amounts: [u32; 8]) {
    let body = json!({
        "scores": [f, f, f, f, m, m, m, m],
        "sex": ["f", "f", "f", "f", "m", "m", "m", "m"],
        "amount": amounts,
    });
    let reply = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[],
        body.to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// The period the report covers: version 1 takes rows scored apart by sex
/// (a parity difference of 1), version 2 is activated and takes rows
/// scored alike (0) with larger amounts; then a clean stop.
async fn drive(gateway: &mut Gateway) {
    rows(gateway, 0.9, 0.1, [10, 20, 30, 40, 50, 60, 70, 80]).await;
    snapshot(gateway, |e| {
        e["trigger"] == "interval" && e["fairness"]["rows_total"] == 8
    })
    .await;
    let path = "/admin/models/scorer/versions/2/activate";
    let activated = admin_call(&gateway.admin, Some("ops"), Method::POST, path, "").await;
    assert_eq!(activated.status, 200, "{}", activated.text());
    rows(gateway, 0.9, 0.9, [100, 200, 300, 400, 500, 600, 700, 800]).await;
    snapshot(gateway, |e| {
        e["trigger"] == "interval" && e["fairness"]["rows_total"] == 16
    })
    .await;
    assert!(gateway.stop().await.success());
}

/// A series as the ledger gives it: for each snapshot of the period
/// (`value_of` reads the figure and its window's rows, `None`: not in
/// that snapshot), and the threshold `(risk, above, min_count)` of the
/// register in force.
fn expected_series(
    ledger: &[Value],
    last_seq: u64,
    value_of: impl Fn(&Value) -> Option<(Value, u64)>,
    risk: &str,
    threshold: f64,
    min_count: u64,
) -> Value {
    let (mut points, mut listed, mut defined) = (0u64, Vec::new(), 0u64);
    let mut min: Option<(f64, u64)> = None;
    let mut max: Option<(f64, u64)> = None;
    let mut last = Value::Null;
    let (mut register, mut checked, mut beyond) = (None, 0u64, Vec::new());
    for entry in ledger
        .iter()
        .filter(|e| e["seq"].as_u64() <= Some(last_seq))
    {
        if entry["kind"] == "risk_register_set" {
            register = entry["seq"].as_u64();
        }
        if entry["kind"] != "kpi_snapshot" {
            continue;
        }
        let Some((value, rows)) = value_of(entry) else {
            continue;
        };
        let seq = entry["seq"].as_u64().unwrap();
        points += 1;
        listed.push(json!({"seq": seq, "time": entry["time"], "value": value, "rows": rows}));
        last = json!(seq);
        if let Some(v) = value.as_f64() {
            defined += 1;
            if min.is_none_or(|(m, _)| v < m) {
                min = Some((v, seq));
            }
            if max.is_none_or(|(m, _)| v > m) {
                max = Some((v, seq));
            }
            if register.is_some() && rows >= min_count && v > threshold {
                beyond.push(seq);
            }
        }
        if register.is_some() {
            checked += 1;
        }
    }
    json!({
        "points": points, "defined": defined, "listed": listed, "last_seq": last,
        "min": min.map(|(v, _)| v), "min_seq": min.map(|(_, s)| s),
        "max": max.map(|(v, _)| v), "max_seq": max.map(|(_, s)| s),
        "register_seq": register, "risk": risk, "checked": checked,
        "beyond": beyond.len(), "beyond_seqs": beyond,
    })
}

/// The report's series of `kpi` for `subject` (and `version`).
fn series<'a>(report: &'a Value, kpi: &str, version: Value) -> &'a Value {
    report["kpi_trends"]["models"][0]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kpi"] == kpi && s["version"] == version)
        .unwrap_or_else(|| panic!("no {kpi} series of {version}"))
}

/// Checks `found` (a series of the report) against `expected`.
fn check_series(found: &Value, expected: &Value) {
    for key in [
        "points", "defined", "listed", "last_seq", "min_seq", "max_seq",
    ] {
        assert_eq!(found[key], expected[key], "{key}: {found:#}");
    }
    assert_eq!(found["min"].as_f64(), expected["min"].as_f64(), "min");
    assert_eq!(found["max"].as_f64(), expected["max"].as_f64(), "max");
    assert_eq!(found["listed_left_off"], 0);
    let indicator = &found["indicators"][0];
    assert_eq!(
        found["indicators"].as_array().unwrap().len(),
        1,
        "{found:#}"
    );
    for key in ["register_seq", "risk", "checked", "beyond", "beyond_seqs"] {
        assert_eq!(indicator[key], expected[key], "{key}: {found:#}");
    }
}

#[tokio::test]
async fn the_kpi_trends_are_the_snapshots_figures_against_the_thresholds_and_verify() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&config(&upstream.url())).await;
    drive(&mut gateway).await;
    let out = report_everything(&gateway, "report");
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["format"], "govgate-report/3");
    let ledger = bundle_entries(&out.join("bundle"));
    let last_seq = report["scope"]["last_seq"].as_u64().unwrap();
    let snapshots: Vec<&Value> = ledger
        .iter()
        .filter(|e| e["kind"] == "kpi_snapshot" && e["seq"].as_u64() <= Some(last_seq))
        .collect();
    let trends = &report["kpi_trends"];
    let model = &trends["models"][0];
    assert_eq!(model["model"], "scorer", "{trends:#}");
    assert_eq!(model["snapshots"], snapshots.len());
    let listed: Vec<Value> = snapshots
        .iter()
        .map(|e| {
            json!({"seq": e["seq"], "time": e["time"], "trigger": e["trigger"],
                   "serving_version": e["serving_version"]})
        })
        .collect();
    assert_eq!(model["listed"], json!(listed));
    // Version changes (activating 1 at start, then 2), the interval, the stop.
    let triggers = &model["by_trigger"]["counts"];
    assert_eq!(triggers["version_change"], 2, "{triggers}");
    assert_eq!(triggers["stop"], 1, "{triggers}");
    assert!(triggers["interval"].as_u64() >= Some(2), "{triggers}");
    assert_eq!(listed.last().unwrap()["trigger"], "stop");
    assert_eq!(
        model["settings"],
        json!([{"seq": snapshots[0]["seq"], "time": snapshots[0]["time"],
                "settings": snapshots[0]["settings"]}])
    );
    assert_eq!(model["settings"][0]["settings"]["window"], 8);
    assert_eq!(model["settings"][0]["settings"]["min_group_size"], 2);
    let register = ledger
        .iter()
        .find(|e| e["kind"] == "risk_register_set")
        .unwrap();
    assert_eq!(
        trends["registers_set"],
        json!([{"seq": register["seq"], "time": register["time"], "sha256": register["sha256"]}])
    );
    assert_eq!(model["before_register"], 0);
    assert_eq!(trends["indicators_without_points"], json!([]));

    // Parity difference of sex: 1 while version 1's rows fill the window,
    // 0 once version 2's alike rows replace them; beyond 0.3 from 8 rows.
    let parity = |e: &Value| {
        let attribute = &e["fairness"]["attributes"][0];
        assert_eq!(attribute["name"], "sex");
        Some((
            attribute["demographic_parity_difference"].clone(),
            e["fairness"]["rows_in_window"].as_u64().unwrap(),
        ))
    };
    let expected = expected_series(&ledger, last_seq, parity, "credit-bias", 0.3, 8);
    let found = series(&report, "demographic_parity_difference", Value::Null);
    assert_eq!(found["subject"], "sex");
    check_series(found, &expected);
    assert_eq!(found["max"], 1);
    assert_eq!(found["last"], 0);
    assert!(expected["beyond"].as_u64() >= Some(1), "{expected:#}");
    assert!(expected["beyond"].as_u64() < expected["checked"].as_u64());
    assert_eq!(found["indicators"][0]["threshold"], 0.3);
    assert_eq!(found["indicators"][0]["direction"], "above");
    assert_eq!(found["indicators"][0]["min_count"], 8);
    // The other aggregates are series too, watched by no indicator.
    assert_eq!(
        series(&report, "demographic_parity_ratio", Value::Null)["indicators"],
        json!([])
    );

    // PSI of amount, per version; the unpinned risk watches both.
    for version in ["1", "2"] {
        let psi = |e: &Value| {
            let drift = e["drift"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["version"] == version)?;
            let feature = drift["features"].as_array()?.first()?;
            Some((
                feature["psi"].clone(),
                drift["rows_in_window"].as_u64().unwrap(),
            ))
        };
        let expected = expected_series(&ledger, last_seq, psi, "amount-drift", 0.5, 1);
        let found = series(&report, "psi", json!(version));
        assert_eq!(found["subject"], "amount");
        check_series(found, &expected);
        assert!(found["defined"].as_u64() >= Some(1), "{found:#}");
        // The KS statistic is the snapshot's `ks.statistic`.
        let ks = series(&report, "ks", json!(version));
        let last = ks["last_seq"].as_u64().unwrap();
        let entry = ledger.iter().find(|e| e["seq"] == last).unwrap();
        let drift = entry["drift"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["version"] == version)
            .unwrap();
        assert_eq!(ks["last"], drift["features"][0]["ks"]["statistic"]);
    }

    // The section is evidence of monitoring in the control map.
    let controls = report["control_map"]["controls"].as_array().unwrap();
    for id in ["A.6.2.6", "Art. 72"] {
        let control = controls.iter().find(|c| c["id"] == id).unwrap();
        let cited = control["sections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["section"] == "kpi_trends")
            .unwrap_or_else(|| panic!("{id} does not cite kpi_trends"));
        assert_eq!(cited["in_report"], true);
        assert_eq!(cited["seqs"][0], register["seq"]);
    }

    // report.html: a line chart per series, the threshold drawn.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<h2>Fairness and drift: KPI trends</h2>"),
        "{html}"
    );
    assert!(html.contains("scorer: demographic_parity_difference of sex</text>"));
    assert!(html.contains("scorer: psi of amount of version 2</text>"));
    let risk_line = format!(
        "threshold above 0.3 (risk credit-bias #0, register seq {})</text>",
        register["seq"]
    );
    assert!(html.contains(&risk_line), "{html}");
    assert!(html.contains("<polyline"));
    assert!(!html.contains("<script"));

    // verify --report recomputes it; one trend number edited is refused.
    let vkey = gateway.vkey.clone();
    let verify = |dir: &Path| run(&["verify", "--report", dir.to_str().unwrap(), "--vkey", &vkey]);
    let checked = verify(&out);
    assert!(checked.status.success(), "{}", said(&checked));

    let edited = gateway.dir.path().join("edited-json");
    std::fs::create_dir(&edited).unwrap();
    std::fs::copy(out.join("report.html"), edited.join("report.html")).unwrap();
    std::os::unix::fs::symlink(out.join("bundle"), edited.join("bundle")).unwrap();
    let mut changed = report.clone();
    let index = report["kpi_trends"]["models"][0]["series"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s["kpi"] == "demographic_parity_difference")
        .unwrap();
    changed["kpi_trends"]["models"][0]["series"][index]["indicators"][0]["beyond"] =
        json!(expected["beyond"].as_u64().unwrap() - 1);
    std::fs::write(edited.join("report.json"), format!("{changed:#}\n")).unwrap();
    let refused = verify(&edited);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    let path =
        format!("kpi_trends.models[0].series[{index}].indicators[0].beyond: the report says");
    assert!(said(&refused).contains(&path), "{}", said(&refused));

    let edited = gateway.dir.path().join("edited-html");
    std::fs::create_dir(&edited).unwrap();
    std::fs::copy(out.join("report.json"), edited.join("report.json")).unwrap();
    std::os::unix::fs::symlink(out.join("bundle"), edited.join("bundle")).unwrap();
    // The chart's caption says the series' maximum: 1 at its seq.
    let caption = format!("max 1 (seq {})", found["max_seq"]);
    assert!(html.contains(&caption), "{html}");
    std::fs::write(
        edited.join("report.html"),
        html.replacen(&caption, &format!("max 0.9 (seq {})", found["max_seq"]), 1),
    )
    .unwrap();
    let refused = verify(&edited);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused).contains("report.html: line"),
        "{}",
        said(&refused)
    );
}

#[test]
fn a_report_of_the_format_before_the_trends_still_verifies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upgrade/report-v2-bcdba3d");
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["format"], "govgate-report/2");
    assert!(report.get("kpi_trends").is_none());
    let bundle = bundle_entries(&dir.join("bundle"));
    assert!(bundle.iter().any(|e| e["kind"] == "kpi_snapshot"));
    let vkey = std::fs::read_to_string(dir.join("log.vkey")).unwrap();
    let checked = run(&[
        "verify",
        "--report",
        dir.to_str().unwrap(),
        "--vkey",
        vkey.trim(),
    ]);
    assert!(checked.status.success(), "{}", said(&checked));
    assert!(
        said(&checked).contains("report.oscal.json is the one derived from report.json"),
        "{}",
        said(&checked)
    );
}

/// Makes tests/data/upgrade/report-v2-<commit>/ with the govgate binary
/// of that commit (`GOVGATE_OLD_BIN`) into `GOVGATE_FIXTURE_OUT`: the
/// period of the test above, reported by the old binary. Run by hand:
/// `GOVGATE_OLD_BIN=... GOVGATE_FIXTURE_OUT=... cargo nextest run
/// --features upgrade-fixtures --run-ignored only make_the_report_v2_fixture`.
/// Not a test of this code, so built only with that feature.
#[cfg(feature = "upgrade-fixtures")]
#[tokio::test]
#[ignore = "makes a fixture with an older binary"]
async fn make_the_report_v2_fixture() {
    let old = std::env::var("GOVGATE_OLD_BIN").expect("GOVGATE_OLD_BIN");
    let out = std::path::PathBuf::from(std::env::var("GOVGATE_FIXTURE_OUT").unwrap());
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&config(&upstream.url())).await;
    drive(&mut gateway).await;
    let config = gateway.dir.path().join("govgate.toml");
    let made = std::process::Command::new(old)
        .args(["report", "--config", config.to_str().unwrap()])
        .args([
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ])
        .args(["--out", out.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", said(&made));
    std::fs::write(out.join("log.vkey"), format!("{}\n", gateway.vkey)).unwrap();
}
