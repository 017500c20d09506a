//! The risk register in `govgate report`: an indicator that breaches and
//! recovers inside the period is listed with the seqs and values of its
//! entries, the inventory links the risk to the model, the incidents list
//! the breach, and `verify --report` recomputes it all (and refuses a
//! report whose risk figure was edited). A report of the format before
//! the risks section, made by the previous govgate, still verifies.

use crate::report::{report_everything, run, said};
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// A model whose fairness window holds 8 rows, and a risk on its
/// demographic parity for `sex`, evaluated every second.
pub(crate) fn config(upstream: &str) -> String {
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
controls = ["fairness review every quarter"]
[[risks.indicators]]
kpi = "demographic_parity_difference"
attribute = "sex"
threshold = 0.3
direction = "above"
min_count = 8

[[models]]
name = "scorer"
protocol = "kserve_v2"
[models.kpi]
window = 8
min_group_size = 2
[models.kpi.outcome]
pointer = "/scores/*"
threshold = 0.5
[[models.kpi.attributes]]
name = "sex"
pointer = "/sex/*"
[[models.versions]]
version = "1"
upstream = "{upstream}"
"#
    )
}

/// Sends 8 rows: 4 of each sex, scored as given.
pub(crate) async fn rows(gateway: &Gateway, f: f64, m: f64) {
    let body = json!({
        "scores": [f, f, f, f, m, m, m, m],
        "sex": ["f", "f", "f", "f", "m", "m", "m", "m"],
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

/// The one entry of `kind`, once there (the register is evaluated every second).
pub(crate) async fn one_of(gateway: &Gateway, kind: &str) -> Value {
    for _ in 0..100 {
        let found: Vec<Value> = gateway
            .entries()
            .await
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect();
        if let [one] = found.as_slice() {
            return one.clone();
        }
        assert!(found.is_empty(), "{found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {kind} entry within 10 s");
}

fn time_ms(entry: &Value) -> i64 {
    let time = govgate::ledger::export::UtcTime::parse(entry["time"].as_str().unwrap()).unwrap();
    (time.unix_seconds() * 1000.0).round() as i64
}

#[tokio::test]
async fn a_breach_and_its_recovery_in_the_period_are_reported_and_verified() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&config(&upstream.url())).await;
    // Every f approved, no m: a parity difference of 1; then both alike: 0.
    rows(&gateway, 0.9, 0.1).await;
    let breach = one_of(&gateway, "risk_indicator_breached").await;
    rows(&gateway, 0.9, 0.9).await;
    let recovery = one_of(&gateway, "risk_indicator_recovered").await;
    let register = one_of(&gateway, "risk_register_set").await;
    gateway.stop().await;

    let out = report_everything(&gateway, "report");
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["format"], "govgate-report/3");

    let risks = &report["risks"];
    assert_eq!(risks["register"]["seq"], register["seq"], "{risks:#}");
    assert_eq!(risks["register"]["sha256"], register["sha256"]);
    assert_eq!(
        (risks["breaches"].clone(), risks["recoveries"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(risks["open_at_end"], 0);
    assert_eq!(risks["risks"].as_array().unwrap().len(), 1, "{risks:#}");
    let risk = &risks["risks"][0];
    assert_eq!(risk["id"], "credit-bias");
    assert_eq!(risk["owner"], "head-of-credit-risk");
    assert_eq!(risk["models"], json!(["scorer"]));
    assert_eq!(risk["controls"], json!(["fairness review every quarter"]));
    assert_eq!(risk["in_register"], true);
    let indicator = &risk["indicators"][0];
    assert_eq!(indicator["kpi"], "demographic_parity_difference");
    assert_eq!(indicator["subject"], "sex");
    assert_eq!(indicator["threshold"], 0.3);
    assert_eq!(indicator["direction"], "above");
    assert_eq!(breach["value"].as_f64(), Some(1.0));
    assert_eq!(recovery["value"].as_f64(), Some(0.0));
    let duration = time_ms(&recovery) - time_ms(&breach);
    assert_eq!(
        indicator["breaches"],
        json!([{"seq": breach["seq"], "time": breach["time"], "model": "scorer",
                "value": breach["value"], "counts": breach["counts"]}])
    );
    assert_eq!(
        indicator["recoveries"],
        json!([{"seq": recovery["seq"], "time": recovery["time"], "model": "scorer",
                "breach_seq": breach["seq"], "value": recovery["value"],
                "breached_secs": recovery["breached_secs"], "duration_ms": duration}])
    );
    assert_eq!(indicator["open_at_end"], json!([]));
    assert_eq!(indicator["breached_ms_in_period"], duration);

    // The inventory links the risk to the model; the breach is an incident.
    let version = &report["inventory"]["versions"][0];
    assert_eq!(version["model"], "scorer", "{:#}", report["inventory"]);
    assert_eq!(version["linked_risks"], json!(["credit-bias"]));
    let incidents = &report["incidents"];
    assert_eq!(incidents["by_kind"]["risk_indicator_breach"], 1);
    let listed = incidents["listed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["incident"] == "risk_indicator_breach")
        .unwrap();
    assert_eq!(listed["seq"], breach["seq"]);
    assert_eq!(listed["risk"], "credit-bias");
    // The control map cites the section.
    let controls = report["control_map"]["controls"].as_array().unwrap();
    let art9 = controls.iter().find(|c| c["id"] == "Art. 9").unwrap();
    assert_eq!(art9["sections"][0]["section"], "risks");
    let cited = art9["sections"][0]["seqs"].as_array().unwrap();
    for entry in [&register, &breach, &recovery] {
        assert!(cited.contains(&entry["seq"]), "{cited:?}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<h2>Risk register and indicator breaches</h2>"),
        "{html}"
    );

    // verify --report recomputes the section, and refuses an edited figure.
    let vkey = gateway.vkey.clone();
    let verify = |dir: &Path| run(&["verify", "--report", dir.to_str().unwrap(), "--vkey", &vkey]);
    let checked = verify(&out);
    assert!(checked.status.success(), "{}", said(&checked));
    let edited = gateway.dir.path().join("edited");
    std::fs::create_dir(&edited).unwrap();
    std::fs::copy(out.join("report.html"), edited.join("report.html")).unwrap();
    std::os::unix::fs::symlink(out.join("bundle"), edited.join("bundle")).unwrap();
    let text = std::fs::read_to_string(out.join("report.json")).unwrap();
    let figure = format!("\"breached_ms_in_period\": {duration}");
    let changed = text.replacen(
        &figure,
        &format!("\"breached_ms_in_period\": {}", duration + 1),
        1,
    );
    assert_ne!(text, changed);
    std::fs::write(edited.join("report.json"), changed).unwrap();
    let refused = verify(&edited);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused)
            .contains("risks.risks[0].indicators[0].breached_ms_in_period: the report says"),
        "{}",
        said(&refused)
    );
}

#[test]
fn a_report_of_the_format_before_the_risks_section_still_verifies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upgrade/report-v1-9a7ffc2");
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["format"], "govgate-report/1");
    assert!(report.get("risks").is_none());
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
        said(&checked).contains("recorded by the report_issued entry at seq 13"),
        "{}",
        said(&checked)
    );
    // A report of a format this govgate does not compute: refused, named.
    let copy = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    std::fs::write(
        copy.path().join("report.json"),
        text.replace("govgate-report/1", "govgate-report/9"),
    )
    .unwrap();
    std::fs::copy(dir.join("report.html"), copy.path().join("report.html")).unwrap();
    std::os::unix::fs::symlink(dir.join("bundle"), copy.path().join("bundle")).unwrap();
    let refused = run(&[
        "verify",
        "--report",
        copy.path().to_str().unwrap(),
        "--vkey",
        vkey.trim(),
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused).contains("report format \"govgate-report/9\""),
        "{}",
        said(&refused)
    );
}
