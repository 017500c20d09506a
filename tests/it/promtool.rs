//! The shipped Prometheus and Grafana files, checked by Prometheus's own
//! `promtool` and against the metric families documented in
//! docs/metrics.md; and a real gateway's `/metrics`, linted by
//! `promtool check metrics` after traffic that fills every review family.
//!
//! `promtool` comes with Debian's `prometheus` package, which needs root to
//! install, so the tests that run it are ignored by a plain `cargo test`
//! (and listed as ignored); `cargo test -- --include-ignored` runs them,
//! as `.ci/run` does after installing the package. Without promtool they
//! fail, never skip. The checks that need no promtool always run.

use crate::reviews::{held, infer_as, start};
use crate::support::governance::admin_call;
use crate::support::send;
use http::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A file of the repository.
fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `promtool ARGS`, feeding `stdin` when given; fails the test with
/// the way to install it when it is missing.
fn promtool(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "promtool could not run ({err}); install it with `apt-get install prometheus` \
                 (Debian's package; .ci/run installs it)"
            )
        });
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        // A promtool that stops reading early says why in its output.
        let _ = pipe.write_all(text.as_bytes());
    }
    child.wait_with_output().unwrap()
}

/// stdout and stderr of a promtool run, for messages.
fn said(output: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `govgate_*` names in `text`, each a maximal run of name characters.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("govgate_") {
        let start = at + found;
        let preceded = start > 0 && is_name_byte(bytes[start - 1]);
        let mut end = start;
        while end < bytes.len() && is_name_byte(bytes[end]) {
            end += 1;
        }
        if !preceded {
            names.insert(text[start..end].to_owned());
        }
        at = end;
    }
    names
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// A family docs/metrics.md lists.
pub(crate) struct Family {
    /// `counter`, `gauge` or `histogram`.
    pub(crate) kind: String,
    /// Listed under "Fairness and drift KPIs (planned)": not exposed yet.
    planned: bool,
    /// Listed under a heading naming `[cluster]`, or under "Fleet KPIs":
    /// exposed by a replica of a fleet only (tests/it/fleet_kpi.rs reads
    /// the KPI ones).
    pub(crate) fleet: bool,
}

/// The families docs/metrics.md lists by name: its table rows
/// `` | `name` | type | ... ``.
pub(crate) fn documented() -> BTreeMap<String, Family> {
    let text = std::fs::read_to_string(repo_file("docs/metrics.md")).unwrap();
    let mut families = BTreeMap::new();
    let (mut planned, mut fleet_section, mut fleet) = (false, false, false);
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            planned = heading.contains("(planned)");
            fleet_section = heading.contains("[cluster]");
            fleet = fleet_section;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            fleet = fleet_section || heading == "Fleet KPIs";
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[0].is_empty() {
            continue;
        }
        let Some(name) = cells[1].strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        if name.starts_with("govgate_") {
            let family = Family {
                kind: cells[2].to_owned(),
                planned,
                fleet,
            };
            assert!(
                families.insert(name.to_owned(), family).is_none(),
                "docs/metrics.md lists {name} twice"
            );
        }
    }
    assert!(
        families.values().any(|f| !f.planned),
        "docs/metrics.md lists no families"
    );
    families
}

/// Whether `series` (as PromQL or the exposition names it) belongs to a
/// documented family: itself, or a histogram's `_bucket`, `_sum`, `_count`.
fn is_documented(series: &str, families: &BTreeMap<String, Family>) -> bool {
    if families.contains_key(series) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        series
            .strip_suffix(suffix)
            .and_then(|family| families.get(family))
            .is_some_and(|family| family.kind == "histogram")
    })
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); run with: cargo test -- --include-ignored"]
fn promtool_accepts_the_alert_rules() {
    let output = promtool(
        &["check", "rules", "config/prometheus/govgate-alerts.yml"],
        None,
    );
    assert!(output.status.success(), "{}", said(&output));
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); run with: cargo test -- --include-ignored"]
fn the_alert_rules_fire_when_they_should() {
    let output = promtool(
        &["test", "rules", "config/prometheus/govgate-alerts.test.yml"],
        None,
    );
    assert!(output.status.success(), "{}", said(&output));
}

/// The counters (`govgate_*_total`) `text` selects, each with the labels
/// its selector fixes with `=`.
fn counter_selectors(text: &str) -> BTreeSet<String> {
    let mut series = BTreeSet::new();
    for name in metric_names(text)
        .into_iter()
        .filter(|n| n.ends_with("_total"))
    {
        for (at, _) in text.match_indices(name.as_str()) {
            let rest = &text[at + name.len()..];
            if rest.starts_with(|c: char| is_name_byte(c as u8)) {
                continue;
            }
            let mut labels = vec![
                r#"job="govgate""#.to_owned(),
                r#"instance="gw:9090""#.to_owned(),
            ];
            if let Some(inner) = rest.strip_prefix('{').and_then(|r| r.split_once('}')) {
                labels.extend(
                    inner
                        .0
                        .split(',')
                        .map(str::trim)
                        .filter(|m| m.contains("=\"") && !m.contains("=~") && !m.contains("!="))
                        .map(str::to_owned),
                );
            }
            series.insert(format!("{name}{{{}}}", labels.join(", ")));
        }
    }
    series
}

/// A gateway that just started, and stays healthy: every counter the
/// rules read exists at 0 (new to Prometheus) and never moves. No alert
/// may fire, nor be pending, at any time: a counter at 0 is no error.
#[test]
#[ignore = "needs promtool (Debian package prometheus); run with: cargo test -- --include-ignored"]
fn no_alert_fires_on_counters_that_stay_at_zero() {
    let rules_file = repo_file("config/prometheus/govgate-alerts.yml");
    let rules = std::fs::read_to_string(&rules_file).unwrap();
    let series = counter_selectors(&rules);
    assert!(
        series.iter().any(|s| s.contains(r#"result="error""#)),
        "{series:?}"
    );
    let mut test = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
        serde_json::to_string(rules_file.to_str().unwrap()).unwrap()
    );
    for selector in &series {
        test.push_str(&format!(
            "      - series: {}\n        values: '0x100'\n",
            serde_json::to_string(selector).unwrap()
        ));
    }
    test.push_str("    alert_rule_test:\n");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    for alert in &alerts {
        // Fresh (0m), within every rule's `offset` and `for`, and after.
        for minute in [0, 1, 4, 6, 14, 16, 59, 61, 99] {
            test.push_str(&format!(
                "      - eval_time: {minute}m\n        alertname: {alert}\n        exp_alerts: []\n"
            ));
        }
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &test).unwrap();
    let output = promtool(&["test", "rules", file.path().to_str().unwrap()], None);
    assert!(output.status.success(), "{}\n{test}", said(&output));
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); run with: cargo test -- --include-ignored"]
fn promtool_accepts_the_scrape_config_and_the_rules_it_loads() {
    let output = promtool(
        &["check", "config", "config/prometheus/prometheus.yml"],
        None,
    );
    assert!(output.status.success(), "{}", said(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("govgate-alerts.yml"),
        "the config loads the alert rules: {}",
        said(&output)
    );
}

#[test]
fn alert_rules_and_scrape_config_name_only_documented_families() {
    let families = documented();
    for file in [
        "config/prometheus/govgate-alerts.yml",
        "config/prometheus/govgate-alerts.test.yml",
        "config/prometheus/prometheus.yml",
    ] {
        let text = std::fs::read_to_string(repo_file(file)).unwrap();
        for name in metric_names(&text) {
            assert!(
                is_documented(&name, &families),
                "{file} uses {name}, which docs/metrics.md does not list"
            );
        }
    }
}

/// Every `expr` in the dashboard, with the panel title it belongs to.
pub(crate) fn exprs(value: &Value, title: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            let title = map
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or(title)
                .to_owned();
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("expr", Value::String(expr)) => out.push((title.clone(), expr.clone())),
                    // Template variables' queries: `label_values(metric, label)`.
                    ("query", Value::String(query)) if query.contains("govgate_") => {
                        out.push((title.clone(), query.clone()))
                    }
                    ("query", Value::Object(query)) => {
                        if let Some(Value::String(q)) = query.get("query") {
                            out.push((title.clone(), q.clone()));
                        }
                    }
                    _ => exprs(item, &title, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| exprs(item, title, out)),
        _ => {}
    }
}

/// The dashboard, parsed.
fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo_file("config/grafana/govgate-dashboard.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

#[test]
fn dashboard_parses_and_queries_only_documented_families() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("template variables")
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(variables.contains(&"model"), "{variables:?}");

    let families = documented();
    let mut found = Vec::new();
    exprs(&dashboard, "", &mut found);
    let panels = dashboard["panels"].as_array().expect("panels");
    let queried = panels
        .iter()
        .filter(|p| p["type"] != "row")
        .filter(|p| {
            p["targets"]
                .as_array()
                .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["expr"].is_string()))
        })
        .count();
    assert_eq!(
        queried,
        panels.iter().filter(|p| p["type"] != "row").count(),
        "every panel has queries"
    );
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "panel ids unique"
        );
    }
    let mut used = BTreeSet::new();
    for (title, expr) in &found {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "panel {title:?}: {expr} queries no govgate family"
        );
        for name in names {
            assert!(
                is_documented(&name, &families),
                "panel {title:?} uses {name}, which docs/metrics.md does not list"
            );
            used.insert(name);
        }
    }
    // Each area of the issue has its panels.
    for family in [
        "govgate_requests_total",
        "govgate_request_duration_seconds_bucket",
        "govgate_reviews_pending",
        "govgate_reviews_oldest_pending_seconds",
        "govgate_review_override_ratio",
        "govgate_policy_verdicts_total",
        "govgate_kpi_demographic_parity_ratio",
        "govgate_kpi_equalized_odds_difference",
        "govgate_kpi_psi",
        "govgate_ledger_entries_total",
        "govgate_ledger_commits_total",
        "govgate_ledger_size_entries",
        "govgate_risk_indicator_value",
        "govgate_risk_indicator_breached",
    ] {
        assert!(used.contains(family), "no panel shows {family}");
    }
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); run with: cargo test -- --include-ignored"]
fn promtool_parses_every_dashboard_query() {
    let mut found = Vec::new();
    exprs(&dashboard(), "", &mut found);
    assert!(!found.is_empty());
    // Each query, with Grafana's variables filled in, as a recording rule.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, (_, expr)) in found.iter().enumerate() {
        // A variable's `label_values(SELECTOR, LABEL)`: its selector.
        let query = match expr.strip_prefix("label_values(") {
            Some(args) => {
                args.rsplit_once(',')
                    .unwrap_or_else(|| panic!("not label_values(SELECTOR, LABEL): {expr}"))
                    .0
            }
            None => expr.as_str(),
        };
        let promql = query
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "1m")
            .replace("$__range", "6h")
            .replace("$instance", ".*")
            .replace("$model", ".*");
        assert!(!promql.contains('$'), "unknown variable in {expr}");
        let quoted = serde_json::to_string(&promql).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {quoted}\n"
        ));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &rules).unwrap();
    let output = promtool(&["check", "rules", file.path().to_str().unwrap()], None);
    assert!(output.status.success(), "{}\n{rules}", said(&output));
}

/// A scrape of a gateway with KPIs after labeled traffic (every KPI family
/// has samples; one row misses its outcome).
async fn kpi_scrape() -> String {
    let upstream = crate::support::TestUpstream::start().await;
    // With a subject selector the requests below do not satisfy, so the
    // family of requests without a subject is filled too; with a payload
    // retention, whose first run (at start) fills its families.
    let models = crate::kpi::kpi_models(&upstream.url()).replacen(
        "[models.kpi]\n",
        "[models.subject]\nheader = \"x-subject-id\"\n[models.retention]\npayloads = \"200d\"\n[models.kpi]\n",
        1,
    );
    let gateway = crate::support::Gateway::start(&models).await;
    let url = gateway.url("/v2/models/scorer/infer");
    let mut ids = Vec::new();
    for body in [
        r#"{"scores": [0.9, 0.1], "sex": ["f", "m"], "amount": [10, 20]}"#,
        r#"{"scores": [0.8, 0.2], "sex": ["f", "m"], "amount": [30, 40]}"#,
        r#"{"other": 1}"#,
    ] {
        ids.push(
            send(
                Method::POST,
                &url,
                &[("x-govgate-attr-region", "north")],
                body,
            )
            .await
            .decision_id(),
        );
    }
    // Both groups get a TPR and an FPR, so every aggregate is defined.
    let labels = json!({"feedback": [
        {"decision_id": ids[0], "row": 0, "label": false},
        {"decision_id": ids[0], "row": 1, "label": false},
        {"decision_id": ids[1], "row": 0, "label": true},
        {"decision_id": ids[1], "row": 1, "label": true},
    ]});
    let reply = send(
        Method::POST,
        &gateway.url("/govgate/feedback"),
        &[],
        labels.to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    gateway
        .metrics_when(r#"govgate_retention_payloads_erased_total{model="scorer"} 0"#)
        .await;
    gateway
        .metrics_when(r#"govgate_feedback_total{model="scorer",result="applied"} 4"#)
        .await
}

/// A scrape after a held request approved, another left pending, a
/// flagged one, a denied one, a failed policy evaluation, an unknown model
/// and a plain request: every family of the gateway then has samples.
async fn review_scrape() -> String {
    // A rate limit no request reaches, so its families are exposed.
    let (gateway, _upstream, _policies) = start("[rate_limit]\nrequests_per_second = 1000\n").await;
    let (_, approved) = held(&gateway, r#"{"hold": true, "n": 1}"#).await;
    let decided = admin_call(
        &gateway.admin,
        Some("rita"),
        Method::POST,
        &format!("/admin/reviews/{approved}/decide"),
        &json!({"verdict": "approve"}).to_string(),
    )
    .await;
    assert_eq!(decided.status, 200, "{}", decided.text());
    held(&gateway, r#"{"hold": true, "n": 2}"#).await;
    let flagged = infer_as(&gateway, "svc-app", r#"{"flag": true}"#).await;
    assert_eq!(flagged.status, 200, "{}", flagged.text());
    let denied = infer_as(&gateway, "mallory", r#"{"plain": true}"#).await;
    assert_eq!(denied.status, 403, "{}", denied.text());
    let failed = infer_as(&gateway, "svc-app", r#"{"explode": true, "zero": "x"}"#).await;
    assert_eq!(failed.status, 403, "{}", failed.text());
    let plain = infer_as(&gateway, "svc-app", r#"{"plain": true}"#).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    let unknown = send(
        Method::POST,
        &gateway.url("/v2/models/nope/infer"),
        &[("x-govgate-caller", "svc-app")],
        "{}",
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let reloaded = admin_call(
        &gateway.admin,
        Some("ops"),
        Method::POST,
        "/admin/policies/reload",
        "",
    )
    .await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.text());

    // The flag is queued after its answer; wait until the gauge shows it.
    let flag_queued = "govgate_reviews_pending{kind=\"flag\",model=\"scorer\"} 1";
    let scrape = gateway.metrics_when(flag_queued).await;
    assert!(
        scrape.contains("govgate_reviews_pending{kind=\"hold\",model=\"scorer\"} 1"),
        "{scrape}"
    );
    scrape
}

#[tokio::test]
#[ignore = "needs promtool (Debian package prometheus); run with: cargo test -- --include-ignored"]
async fn promtool_lints_a_real_scrape_clean() {
    let scrape = review_scrape().await;
    let output = promtool(&["check", "metrics"], Some(&scrape));
    assert!(output.status.success(), "{}\n{scrape}", said(&output));
    // The KPI families, from a gateway whose model has `[models.kpi]`.
    let kpi_scrape = kpi_scrape().await;
    let output = promtool(&["check", "metrics"], Some(&kpi_scrape));
    assert!(output.status.success(), "{}\n{kpi_scrape}", said(&output));
    // The witness families, from a gateway whose witness cosigned.
    let witness_scrape = crate::witness::cosigned_scrape().await;
    let output = promtool(&["check", "metrics"], Some(&witness_scrape));
    assert!(
        output.status.success(),
        "{}\n{witness_scrape}",
        said(&output)
    );
    // The risk families, from a gateway with a risk register.
    let risk_scrape = crate::risks::register_scrape().await;
    let output = promtool(&["check", "metrics"], Some(&risk_scrape));
    assert!(output.status.success(), "{}\n{risk_scrape}", said(&output));
}

#[tokio::test]
async fn a_real_scrape_exposes_exactly_the_documented_families() {
    let scrape = format!(
        "{}{}{}{}",
        review_scrape().await,
        kpi_scrape().await,
        crate::witness::cosigned_scrape().await,
        crate::risks::register_scrape().await
    );

    let families = documented();
    let exposed: BTreeMap<&str, &str> = scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        // Each scrape has the shared families; a name is the same family.
        .collect();
    for (name, kind) in &exposed {
        let family = families
            .get(*name)
            .unwrap_or_else(|| panic!("docs/metrics.md does not list the exposed {kind} {name}"));
        assert_eq!(family.kind, *kind, "docs/metrics.md: the type of {name}");
    }
    // This traffic fills every family that exists today on a gateway
    // without [cluster].
    for (name, family) in &families {
        assert_eq!(
            exposed.contains_key(name.as_str()),
            !family.planned && !family.fleet,
            "{name}: exposed unless docs/metrics.md marks it planned or a fleet's\n{scrape}"
        );
    }
}
