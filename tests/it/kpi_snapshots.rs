//! `kpi_snapshot` ledger entries from a real gateway: on the interval,
//! at a version activation (citing its entry), at a clean stop; their
//! figures are those of `GET /admin/kpis/{model}` for the same traffic,
//! and both verifiers accept the bundle that carries them.

use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// Window 6 keeps every row; a snapshot every second; two versions on the
/// same echoing upstream (the request carries the scores).
pub(crate) fn config(upstream: &str) -> String {
    format!(
        r#"
[[models]]
name = "scorer"
protocol = "kserve_v2"
default_version = "1"
[models.kpi]
window = 6
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

/// Equal JSON, numbers compared as numbers (the ledger writes 1.0 as `1`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The first `kpi_snapshot` entry `wanted` accepts, waiting for it.
pub(crate) async fn snapshot(gateway: &Gateway, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let found = gateway
            .entries()
            .await
            .into_iter()
            .find(|e| e["kind"] == "kpi_snapshot" && wanted(e));
        if let Some(entry) = found {
            return entry;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no such kpi_snapshot in {:#?}",
            gateway.entries().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn kpi_snapshots_hold_the_reported_figures_and_cite_version_changes() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&config(&upstream.url())).await;

    // Activating version 1 (at start) is a version change: a snapshot of
    // the empty window cites the activation.
    let activated = gateway
        .entries()
        .await
        .into_iter()
        .find(|e| e["kind"] == "version_activated" && e["version"] == "1")
        .expect("version 1 activated");
    let first = snapshot(&gateway, |e| e["cause_seq"] == activated["seq"]).await;
    assert_eq!(first["model"], "scorer");
    assert_eq!(first["trigger"], "version_change");
    assert_eq!(first["previous_version"], Value::Null);
    assert_eq!(first["serving_version"], "1");
    assert_eq!(first["fairness"]["rows_total"], 0);
    assert_eq!(first["settings"]["snapshot_every_secs"], 1);

    // Six rows, six labels: f a0 tp, a1 fn, b2 tn; m a2 fp, b0 tp, b1 tn.
    let mut ids = Vec::new();
    for body in [
        r#"{"scores": [0.9, 0.2, 0.7], "sex": ["f", "f", "m"], "amount": [10, 20, 30]}"#,
        r#"{"scores": [0.6, 0.1, 0.4], "sex": ["m", "m", "f"], "amount": [40, 50, 60]}"#,
    ] {
        let reply = send(
            Method::POST,
            &gateway.url("/v2/models/scorer/infer"),
            &[],
            body,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        ids.push(reply.decision_id());
    }
    let labels: Vec<Value> = [(0, 0, true), (0, 1, true), (0, 2, false)]
        .into_iter()
        .chain([(1, 0, true), (1, 1, false), (1, 2, false)])
        .map(|(d, row, label)| json!({"decision_id": ids[d], "row": row, "label": label}))
        .collect();
    let fed = send(
        Method::POST,
        &gateway.url("/govgate/feedback"),
        &[],
        json!({ "feedback": labels }).to_string(),
    )
    .await;
    assert_eq!(fed.status, 200, "{}", fed.text());
    let reply = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/kpis/scorer",
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report = reply.json();
    assert_eq!(report["fairness"]["attributes"][0]["groups"][0]["tp"], 1);

    // The next interval snapshot holds exactly the report's figures.
    let interval = snapshot(&gateway, |e| {
        e["trigger"] == "interval" && e["fairness"]["attributes"][0]["groups"][0]["labeled"] == 3
    })
    .await;
    assert!(
        same(&interval["fairness"], &report["fairness"]),
        "{interval:#}\n{report:#}"
    );
    assert!(
        same(&interval["drift"], &report["drift"]),
        "{interval:#}\n{report:#}"
    );
    for key in ["window", "min_group_size", "max_groups", "reference_rows"] {
        assert_eq!(interval["settings"][key], report["settings"][key], "{key}");
    }
    assert_eq!(interval["serving_version"], "1");
    assert_eq!(interval["omitted"], json!([]));
    assert!(interval.get("cause_seq").is_none());
    assert!(
        interval["fairness"]["attributes"][0]["demographic_parity_difference"]
            .as_f64()
            .is_some_and(|d| (d - 1.0 / 3.0).abs() < 1e-12)
    );

    // Activating version 2: a snapshot citing that activation's entry.
    let path = "/admin/models/scorer/versions/2/activate";
    let activated = admin_call(&gateway.admin, Some("ops"), Method::POST, path, "").await;
    assert_eq!(activated.status, 200, "{}", activated.text());
    let cause = activated.json()["entry_seq"].clone();
    assert!(cause.is_u64(), "{}", activated.text());
    let change = snapshot(&gateway, |e| e["cause_seq"] == cause).await;
    assert_eq!(change["trigger"], "version_change");
    assert_eq!(change["previous_version"], "1");
    assert_eq!(change["serving_version"], "2");
    assert!(same(&change["fairness"], &report["fairness"]), "{change:#}");
    assert!(change["seq"].as_u64() > cause.as_u64());

    // A clean stop writes the last window before gateway_stopped; both
    // verifiers accept the whole log with its snapshots.
    assert!(gateway.stop().await.success());
    gateway.audit_offline(&[]);
    let entries: Vec<Value> =
        std::fs::read_to_string(gateway.dir.path().join("audit-whole/entries.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
    let stopped = entries
        .iter()
        .rposition(|e| e["kind"] == "gateway_stopped")
        .expect("gateway_stopped");
    let last = entries
        .iter()
        .rposition(|e| e["kind"] == "kpi_snapshot")
        .expect("a kpi_snapshot");
    assert_eq!(entries[last]["trigger"], "stop");
    assert_eq!(entries[last]["serving_version"], "2");
    assert!(last < stopped);
    assert!(same(&entries[last]["fairness"], &report["fairness"]));
    // Interval snapshots are not repeated while nothing changes.
    let intervals = entries
        .iter()
        .filter(|e| e["kind"] == "kpi_snapshot" && e["trigger"] == "interval")
        .filter(|e| same(&e["fairness"], &report["fairness"]))
        .count();
    assert_eq!(intervals, 1, "one interval snapshot of the same figures");
}
