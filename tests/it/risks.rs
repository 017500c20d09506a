//! The risk register: recorded once, its indicators evaluated on live
//! traffic, a breach and its recovery recorded once each (across a
//! restart), shown as metrics and accepted by both verifiers; a register
//! naming what the gateway does not compute is refused at start.

use crate::report_risks::{config, rows};
use crate::support::audit::said;
use crate::support::{Gateway, TestUpstream};
use serde_json::Value;
use std::time::Duration;

/// A scrape of a gateway with a risk register (every risk family has
/// its series from the start).
pub(crate) async fn register_scrape() -> String {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&config(&upstream.url())).await;
    gateway
        .metrics_when("govgate_risk_indicator_breaches_total{")
        .await
}

/// Sends 8 rows: 4 of each sex, scored as given.
fn of_kind<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["kind"] == kind).collect()
}

/// The entries once one of `kind` is there (the task runs every second).
async fn entries_with(gateway: &Gateway, kind: &str) -> Vec<Value> {
    for _ in 0..100 {
        let entries = gateway.entries().await;
        if !of_kind(&entries, kind).is_empty() {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {kind} entry within 10 s");
}

#[tokio::test]
async fn a_breached_indicator_is_recorded_once_and_its_recovery_cites_it_across_a_restart() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&config(&upstream.url())).await;
    let labels =
        r#"{indicator="0:demographic_parity_difference:sex",model="scorer",risk="credit-bias"}"#;
    // Until the window holds 8 rows the indicator is unknown, never breached.
    let text = gateway
        .metrics_when(&format!("govgate_risk_indicator_value{labels} NaN"))
        .await;
    assert!(
        text.contains(&format!("govgate_risk_indicator_breached{labels} 0")),
        "{text}"
    );

    // Every f approved, no m: a parity difference of 1.
    rows(&gateway, 0.9, 0.1).await;
    let entries = entries_with(&gateway, "risk_indicator_breached").await;
    let registers = of_kind(&entries, "risk_register_set");
    assert_eq!(registers.len(), 1, "{registers:?}");
    let register = registers[0];
    assert_eq!(register["risks"][0]["id"], "credit-bias");
    assert_eq!(
        register["risks"][0]["models"],
        serde_json::json!(["scorer"])
    );
    assert_eq!(register["risks"][0]["indicators"][0]["attribute"], "sex");
    assert_eq!(register["eval_every_secs"], 1);
    assert_eq!(register["sha256"].as_str().unwrap().len(), 64);
    let breach = of_kind(&entries, "risk_indicator_breached")[0].clone();
    assert_eq!(breach["risk"], "credit-bias");
    assert_eq!(breach["indicator"], 0);
    assert_eq!(breach["kpi"], "demographic_parity_difference");
    assert_eq!(breach["attribute"], "sex");
    assert_eq!(breach["model"], "scorer");
    assert_eq!(breach["value"], 1.0);
    assert_eq!(breach["threshold"], 0.3);
    assert_eq!(breach["direction"], "above");
    assert_eq!(breach["register_sha256"], register["sha256"]);
    assert_eq!(breach["counts"]["rows_in_window"], 8);
    assert_eq!(
        breach["counts"]["eligible_groups"],
        serde_json::json!([
            {"group": "f", "rows": 4, "selected": 4},
            {"group": "m", "rows": 4, "selected": 0},
        ])
    );
    let text = gateway
        .metrics_when(&format!("govgate_risk_indicator_breached{labels} 1"))
        .await;
    assert!(
        text.contains(&format!("govgate_risk_indicator_value{labels} 1\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("govgate_risk_indicator_breaches_total{labels} 1")),
        "{text}"
    );
    // The breach holds over further rounds: no second entry.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(
        of_kind(&gateway.entries().await, "risk_indicator_breached").len(),
        1
    );

    // A restart with the same register records no register and no breach again.
    gateway.stop().await;
    gateway.restart().await;
    let text = gateway
        .metrics_when(&format!("govgate_risk_indicator_breached{labels} 1"))
        .await;
    assert!(
        text.contains(&format!("govgate_risk_indicator_breaches_total{labels} 0")),
        "{text}"
    );

    // Both sexes approved alike: the parity difference is 0, the breach over.
    rows(&gateway, 0.9, 0.9).await;
    let entries = entries_with(&gateway, "risk_indicator_recovered").await;
    assert_eq!(of_kind(&entries, "risk_register_set").len(), 1);
    assert_eq!(of_kind(&entries, "risk_indicator_breached").len(), 1);
    let recovered = of_kind(&entries, "risk_indicator_recovered");
    assert_eq!(recovered.len(), 1);
    let recovered = recovered[0];
    assert_eq!(recovered["breach_seq"], breach["seq"]);
    assert_eq!(recovered["value"], 0.0);
    assert_eq!(recovered["risk"], "credit-bias");
    assert_eq!(recovered["model"], "scorer");
    assert!(
        recovered["breached_secs"].as_u64().unwrap() >= 2,
        "{recovered}"
    );
    gateway
        .metrics_when(&format!("govgate_risk_indicator_breached{labels} 0"))
        .await;

    gateway.stop().await;
    let audit = gateway.audit_offline(&["scorer"]);
    assert!(audit.whole.1.contains("OK"), "{}", audit.whole.1);
}

/// `govgate serve` with `config` written as `bad.toml` beside a key: the
/// start fails; returns what it said.
fn refused(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    crate::support::gateway::keygen(
        &dir.path().join("test.key"),
        crate::support::gateway::TEST_ORIGIN,
    );
    let text = format!(
        "[server]\npublic_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\
         [ledger]\norigin = \"{}\"\nkey_file = \"test.key\"\n{config}",
        crate::support::gateway::TEST_ORIGIN
    );
    std::fs::write(dir.path().join("bad.toml"), text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("bad.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success(), "{}", said(&output));
    assert!(!dir.path().join("data").exists(), "nothing written");
    said(&output)
}

#[test]
fn a_register_naming_what_the_gateway_does_not_compute_is_refused_at_start() {
    let good = config("http://127.0.0.1:9");
    let cases = [
        (
            good.replace(r#"models = ["scorer"]"#, r#"models = ["scorer", "credit@2"]"#),
            "risks[0].models[1]: unknown model `credit`",
        ),
        (
            good.replace(r#"attribute = "sex""#, r#"attribute = "age""#),
            "risks[0].indicators[0].attribute: model `scorer` has no attribute `age`",
        ),
        (
            good.replace(
                r#"attribute = "sex""#,
                "feature = \"amount\"",
            )
            .replace("demographic_parity_difference", "psi"),
            "model `scorer` has no feature `amount`",
        ),
        (
            good.replace("[[models]]", "[[risks]]\nid = \"credit-bias\"\ntitle = \"t\"\nowner = \"o\"\nmodels = [\"scorer\"]\n\n[[models]]"),
            "risks[1].id: risk `credit-bias` is declared twice",
        ),
        (
            good.replace(r#"direction = "above""#, r#"direction = "over""#),
            "risks[0].indicators[0].direction: `over` is not `above` or `below`",
        ),
        (
            good.replace("kpi = \"demographic_parity_difference\"", "kpi = \"accuracy\""),
            "risks[0].indicators[0].kpi: unknown KPI `accuracy`",
        ),
    ];
    for (config, expected) in cases {
        let said = refused(&config);
        assert!(said.contains(expected), "expected {expected:?} in:\n{said}");
    }
}

#[tokio::test]
async fn a_register_in_its_own_file_is_recorded_as_written() {
    let upstream = TestUpstream::start().await;
    let full = config(&upstream.url());
    let (head, models) = full.split_at(full.find("[[models]]").unwrap());
    let mut gateway = Gateway::start(models).await;
    // No register, none recorded.
    assert!(of_kind(&gateway.entries().await, "risk_register_set").is_empty());
    gateway.stop().await;
    // The file is read relative to the config.
    let risks = head.replace(
        "[risk_register]\neval_every_secs = 1\nwindow_secs = 2\n",
        "",
    );
    std::fs::write(gateway.dir.path().join("risks.toml"), risks).unwrap();
    let path = gateway.dir.path().join("govgate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = format!("[risk_register]\nfile = \"risks.toml\"\n\n{text}");
    std::fs::write(&path, text).unwrap();
    gateway.restart().await;
    let entries = gateway.entries().await;
    let registers = of_kind(&entries, "risk_register_set");
    assert_eq!(registers.len(), 1);
    assert_eq!(registers[0]["risks"][0]["owner"], "head-of-credit-risk");
    assert_eq!(registers[0]["eval_every_secs"], 30);
    assert_eq!(registers[0]["window_secs"], 300);
}

/// An upstream that drops every connection unanswered while `failing`,
/// and answers `200 {}` otherwise.
async fn flaky_upstream(failing: std::sync::Arc<std::sync::atomic::AtomicBool>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            if failing.load(std::sync::atomic::Ordering::SeqCst) {
                drop(socket);
                continue;
            }
            tokio::spawn(async move {
                // The head, then as much body as it declares.
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                let end = loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                };
                let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while seen.len() < end + length {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn an_error_rate_over_a_time_window_breaches_and_recovers_for_a_pinned_version() {
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let upstream = flaky_upstream(failing.clone()).await;
    let gateway = Gateway::start(&format!(
        r#"
[risk_register]
eval_every_secs = 1
window_secs = 2

[[risks]]
id = "svc-outage"
title = "The service fails"
owner = "on-call"
models = ["scorer@1"]
[[risks.indicators]]
kpi = "error_rate"
threshold = 0.5
direction = "above"
min_count = 4

[[models]]
name = "scorer"
protocol = "kserve_v2"
[[models.versions]]
version = "1"
upstream = "{upstream}"
"#
    ))
    .await;
    let infer = || gateway.infer("{}");
    for _ in 0..4 {
        assert_eq!(infer().await.status, 502);
    }
    let entries = entries_with(&gateway, "risk_indicator_breached").await;
    let breach = of_kind(&entries, "risk_indicator_breached")[0].clone();
    assert_eq!(breach["model"], "scorer@1");
    assert_eq!(breach["version"], "1");
    assert_eq!(breach["kpi"], "error_rate");
    assert_eq!(breach["value"], 1.0);
    assert_eq!(
        breach["counts"],
        serde_json::json!({"errors": 4, "requests": 4})
    );
    assert_eq!(breach["window_secs"], 2);
    gateway
        .metrics_when(
            r#"govgate_risk_indicator_breached{indicator="0:error_rate",model="scorer@1",risk="svc-outage"} 1"#,
        )
        .await;

    // Answers again: whether or not the window still holds the errors,
    // the share is at most 4 in 16.
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..12 {
        assert_eq!(infer().await.status, 200);
    }
    let entries = entries_with(&gateway, "risk_indicator_recovered").await;
    assert_eq!(of_kind(&entries, "risk_indicator_breached").len(), 1);
    let recovered = of_kind(&entries, "risk_indicator_recovered")[0];
    assert_eq!(recovered["breach_seq"], breach["seq"]);
    let value = recovered["value"].as_f64().unwrap();
    let errors = recovered["counts"]["errors"].as_f64().unwrap();
    let requests = recovered["counts"]["requests"].as_f64().unwrap();
    assert!(value <= 0.25 && requests >= 4.0, "{recovered}");
    assert_eq!(value, errors / requests, "{recovered}");
}
