//! `GET /admin/kpis/{model}` and `govgate kpis` against a real gateway:
//! six rows and six labels whose counts, rates, aggregates and drift bins
//! are worked out by hand here.

use crate::support::governance::{admin_call, token};
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_govgate");

/// The echoing upstream answers with the request, so the request carries
/// the scores. Window 6 keeps every row; the first 2 rows are the drift
/// reference.
fn config(upstream: &str) -> String {
    format!(
        r#"
[[models]]
name = "scorer"
protocol = "kserve_v2"
[models.kpi]
window = 6
min_group_size = 2
reference_rows = 2
[models.kpi.outcome]
pointer = "/scores/*"
threshold = 0.5
[[models.kpi.attributes]]
name = "sex"
pointer = "/sex/*"
[[models.kpi.attributes]]
name = "region"
header = true
[[models.kpi.features]]
name = "amount"
kind = "numeric"
pointer = "/amount/*"
[[models.versions]]
version = "1"
upstream = "{upstream}"
"#
    )
}

fn close(actual: &Value, expected: f64) -> bool {
    actual
        .as_f64()
        .is_some_and(|a| (a - expected).abs() < 1e-12)
}

async fn report(
    gateway: &Gateway,
    who: Option<&str>,
    model: &str,
) -> crate::support::client::Reply {
    let path = format!("/admin/kpis/{model}");
    admin_call(&gateway.admin, who, Method::GET, &path, "").await
}

#[tokio::test]
async fn the_kpi_report_and_govgate_kpis_show_counts_checked_by_hand() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&config(&upstream.url())).await;
    // Predicted positive iff score >= 0.5.
    //   a0 f north 0.9 pos | a1 f north 0.2 neg | a2 m north 0.7 pos
    //   b0 m south 0.6 pos | b1 m south 0.1 neg | b2 f south 0.4 neg
    let mut ids = Vec::new();
    for (region, body) in [
        (
            "north",
            r#"{"scores": [0.9, 0.2, 0.7], "sex": ["f", "f", "m"], "amount": [10, 20, 30]}"#,
        ),
        (
            "south",
            r#"{"scores": [0.6, 0.1, 0.4], "sex": ["m", "m", "f"], "amount": [40, 50, 60]}"#,
        ),
    ] {
        let reply = send(
            Method::POST,
            &gateway.url("/v2/models/scorer/infer"),
            &[("x-govgate-attr-region", region)],
            body,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        ids.push(reply.decision_id());
    }
    // Actual: a0 true (tp), a1 true (fn), a2 false (fp), b0 true (tp),
    // b1 false (tn), b2 false (tn).
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

    // Auth as the other admin reads: a token is needed, any role will do.
    assert_eq!(report(&gateway, None, "scorer").await.status, 401);
    let unknown = report(&gateway, Some("auditor"), "nope").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "unknown_model");
    assert_eq!(unknown.json()["error"]["kpi_models"], json!(["scorer"]));
    let listed = admin_call(&gateway.admin, Some("rita"), Method::GET, "/admin/kpis", "").await;
    assert_eq!(listed.json(), json!({"models": ["scorer"]}));

    // The report is answered after the exchanges and labels before it.
    let reply = report(&gateway, Some("rita"), "scorer").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["settings"]["window"], 6);
    let fairness = &answer["fairness"];
    assert_eq!(fairness["rows_in_window"], 6);
    assert_eq!(fairness["rows_total"], 6);
    let sex = &fairness["attributes"][0];
    assert_eq!(sex["name"], "sex");
    let counts = |group: &Value| {
        ["rows", "selected", "labeled", "tp", "fp", "tn", "fn"].map(|k| group[k].as_u64().unwrap())
    };
    // f: a0 tp, a1 fn, b2 tn. m: a2 fp, b0 tp, b1 tn.
    let (f, m) = (&sex["groups"][0], &sex["groups"][1]);
    assert_eq!(
        (f["group"].as_str(), m["group"].as_str()),
        (Some("f"), Some("m"))
    );
    assert_eq!(counts(f), [3, 1, 3, 1, 0, 1, 1]);
    assert_eq!(counts(m), [3, 2, 3, 1, 1, 1, 0]);
    assert_eq!(
        (f["eligible"].as_bool(), m["eligible"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(close(&f["selection_rate"], 1.0 / 3.0) && close(&m["selection_rate"], 2.0 / 3.0));
    assert!(close(&f["tpr"], 0.5) && close(&m["tpr"], 1.0));
    assert!(close(&f["fpr"], 0.0) && close(&m["fpr"], 0.5));
    // 2/3 - 1/3; (1/3) / (2/3); 1 - 1/2; max(that, 1/2 - 0).
    assert!(
        close(&sex["demographic_parity_difference"], 1.0 / 3.0),
        "{sex}"
    );
    assert!(close(&sex["demographic_parity_ratio"], 0.5), "{sex}");
    assert!(close(&sex["equal_opportunity_difference"], 0.5), "{sex}");
    assert!(close(&sex["equalized_odds_difference"], 0.5), "{sex}");
    let region = &fairness["attributes"][1];
    assert_eq!(region["groups"][0]["group"], "north");
    assert_eq!(region["groups"][0]["selected"], 2);
    assert_eq!(region["groups"][1]["selected"], 1);

    // Drift: the reference is the first 2 rows (10, 20): deciles 11..=19,
    // so 10 is in bin 0 and 20 in bin 9; the window's 30..60 all in bin 9.
    let drift = &answer["drift"][0];
    assert_eq!(drift["version"], "1");
    assert_eq!(drift["reference_state"], "ready");
    assert_eq!(drift["reference_source"], "first_rows");
    assert_eq!(drift["reference_rows"], 2);
    assert_eq!(drift["rows_in_window"], 4);
    let amount = &drift["features"][0];
    let edges: Vec<f64> = (1..=9).map(|k| 10.0 + f64::from(k)).collect();
    assert_eq!(amount["edges"], json!(edges));
    let mut reference = vec![0u64; 10];
    reference[0] = 1;
    reference[9] = 1;
    let mut window = vec![0u64; 10];
    window[9] = 4;
    assert_eq!(amount["reference_counts"], json!(reference));
    assert_eq!(amount["window_counts"], json!(window));
    // PSI with proportions floored at 1e-4: bin 0 (1e-4 - 0.5) ln(1e-4 / 0.5),
    // bin 9 (1 - 0.5) ln(1 / 0.5), the others 0.
    let psi = (1e-4 - 0.5) * (1e-4f64 / 0.5).ln() + 0.5 * 2f64.ln();
    assert!(
        (amount["psi"].as_f64().unwrap() - psi).abs() < 1e-9,
        "{amount}"
    );
    // JS: m = (0.25, 0.75); D = (0.5 (0.5 log2 2 + 0.5 log2 (2/3)) + 0.5 log2 (4/3)).
    let js = (0.5 * (0.5 + 0.5 * (2f64 / 3.0).log2()) + 0.5 * (4f64 / 3.0).log2()).sqrt();
    assert!(
        (amount["js_distance"].as_f64().unwrap() - js).abs() < 1e-9,
        "{amount}"
    );
    // KS: F_R is 0.5 and F_C 0 at every percentile 10.1 ..= 19.9.
    assert!(close(&amount["ks"]["statistic"], 0.5), "{amount}");
    assert_eq!(amount["ks"]["edges"].as_array().unwrap().len(), 99);

    // The command line shows the same counts.
    let output = tokio::process::Command::new(BIN)
        .args(["kpis", "scorer", "--admin-url", &gateway.admin])
        .env("GOVGATE_TOKEN", token("auditor"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = |first: &str| -> Vec<&str> {
        stdout
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|cells| cells.first() == Some(&first))
            .unwrap_or_else(|| panic!("no row {first}\n{stdout}"))
    };
    assert_eq!(
        row("f"),
        [
            "f", "3", "1", "3", "1", "0", "1", "1", "0.3333", "0.5000", "0.0000", "yes"
        ]
    );
    assert_eq!(
        row("m"),
        [
            "m", "3", "2", "3", "1", "1", "1", "0", "0.6667", "1.0000", "0.5000", "yes"
        ]
    );
    assert!(
        stdout.contains("demographic parity difference 0.3333  ratio 0.5000  equal opportunity difference 0.5000  equalized odds difference 0.5000"),
        "{stdout}"
    );
    assert_eq!(row("amount")[1], format!("{psi:.4}"), "{stdout}");
    let refused = tokio::process::Command::new(BIN)
        .args(["kpis", "nope", "--admin-url", &gateway.admin])
        .env("GOVGATE_TOKEN", token("auditor"))
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
}

#[tokio::test]
async fn a_gateway_without_kpis_says_so() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&crate::models(&upstream.url())).await;
    let listed = admin_call(&gateway.admin, Some("ops"), Method::GET, "/admin/kpis", "").await;
    assert_eq!(listed.json(), json!({"models": []}));
    let unknown = report(&gateway, Some("ops"), "scorer").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "unknown_model");
}
