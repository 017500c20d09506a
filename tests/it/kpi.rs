//! Fairness and drift KPIs through the real proxy.

use crate::models;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn protected_attribute_headers_never_reach_the_upstream() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let reply = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[
            ("x-govgate-attr-sex", "female"),
            ("X-Govgate-Attr-Age-Group", "young"),
            ("x-other", "kept"),
        ],
        "{}",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = upstream.only_request();
    assert!(
        seen.headers
            .keys()
            .all(|name| !name.as_str().starts_with("x-govgate-attr-")),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.headers["x-other"], "kept");
}

/// The echoing test upstream answers with the request, so the request
/// carries the scores the KPIs read from the response.
pub(crate) fn kpi_models(upstream: &str) -> String {
    format!(
        r#"
[[models]]
name = "scorer"
protocol = "kserve_v2"
[models.kpi]
window = 4
min_group_size = 1
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

#[tokio::test]
async fn rows_feed_fairness_and_drift_and_labels_join_their_rows() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&kpi_models(&upstream.url())).await;
    let mut ids = Vec::new();
    for body in [
        r#"{"scores": [0.9, 0.1], "sex": ["f", "m"], "amount": [10, 20]}"#,
        r#"{"scores": [0.8, 0.7], "sex": ["f", "m"], "amount": [30, 40]}"#,
    ] {
        let reply = send(
            Method::POST,
            &gateway.url("/v2/models/scorer/infer"),
            &[("x-govgate-attr-region", "north")],
            body,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        ids.push(reply.decision_id());
    }
    let text = gateway
        .metrics_when(r#"govgate_kpi_rows_total{model="scorer"} 4"#)
        .await;
    for line in [
        r#"govgate_kpi_selection_rate{attribute="sex",group="f",model="scorer"} 1"#,
        r#"govgate_kpi_selection_rate{attribute="sex",group="m",model="scorer"} 0.5"#,
        r#"govgate_kpi_demographic_parity_difference{attribute="sex",model="scorer"} 0.5"#,
        r#"govgate_kpi_demographic_parity_ratio{attribute="sex",model="scorer"} 0.5"#,
        r#"govgate_kpi_group_rows{attribute="region",group="north",model="scorer"} 4"#,
        r#"govgate_kpi_outcomes_total{attribute="sex",group="f",model="scorer",outcome="positive"} 2"#,
        r#"govgate_kpi_outcomes_total{attribute="sex",group="m",model="scorer",outcome="negative"} 1"#,
        // Reference: the first 2 rows (10, 20); window: the 2 rows after.
        r#"govgate_kpi_psi{feature="amount",model="scorer",version="1"}"#,
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    // Only one region: no aggregate to compare.
    assert!(!text.contains(r#"govgate_kpi_demographic_parity_difference{attribute="region""#));
    assert!(!text.contains("govgate_kpi_tpr{"), "no labels yet");

    let feedback = |body: String| {
        let url = gateway.url("/govgate/feedback");
        async move { send(Method::POST, &url, &[], body).await }
    };
    let batch = serde_json::json!({"feedback": [
        {"decision_id": ids[0], "row": 0, "label": true},
        {"decision_id": ids[0], "row": 1, "label": true},
        {"decision_id": ids[0], "row": 7, "label": true},
        {"decision_id": ids[0], "row": 0, "label": false},
    ]});
    let reply = feedback(batch.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let results: Vec<String> = reply.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        results,
        ["applied", "applied", "unknown_row", "already_labeled"]
    );
    let unknown = feedback(
        serde_json::json!({"decision_id": "0123456789abcdef0123456789abcdef", "row": 0, "label": true})
            .to_string(),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "decision_not_found");
    assert_eq!(feedback("{\"row\": 1}".to_owned()).await.status, 400);
    let text = gateway
        .metrics_when(r#"govgate_feedback_total{model="scorer",result="applied"} 2"#)
        .await;
    // f: predicted 1, actual 1 -> TPR 1; m: predicted 0, actual 1 -> TPR 0.
    assert!(
        text.contains(r#"govgate_kpi_tpr{attribute="sex",group="f",model="scorer"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"govgate_kpi_tpr{attribute="sex",group="m",model="scorer"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"govgate_kpi_equal_opportunity_difference{attribute="sex",model="scorer"} 1"#
        ),
        "{text}"
    );
    let entries = gateway.entries().await;
    let recorded: Vec<_> = entries
        .iter()
        .filter(|e| e["kind"] == "feedback_received")
        .collect();
    assert_eq!(recorded.len(), 1, "the batch is one ledger entry");
    assert_eq!(recorded[0]["labels"].as_array().unwrap().len(), 4);
    // A body the selectors do not match is counted, not a crash.
    let reply = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[],
        "{\"other\": 1}",
    )
    .await;
    assert_eq!(reply.status, 200);
    gateway
        .metrics_when(r#"govgate_kpi_selector_misses_total{model="scorer",selector="outcome"} 1"#)
        .await;
}

async fn one_row(gateway: &Gateway) {
    let body = r#"{"scores": [0.9], "sex": ["f"], "amount": [95]}"#;
    let reply = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn an_uploaded_reference_is_recorded_used_at_once_and_kept_across_a_restart() {
    use crate::support::governance::token;
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&kpi_models(&upstream.url())).await;
    let path = "/admin/models/scorer/versions/1/kpi-reference";
    let csv = "amount,other\n10,a\n20,b\n30,c\n40,d\n50,e\n60,f\n70,g\n80,h\n90,i\n100,j\n";
    let put = |who: &'static str, content_type: &'static str, body: &'static str| {
        let url = format!("{}{path}", gateway.admin);
        async move {
            let bearer = format!("Bearer {}", token(who));
            send(
                Method::PUT,
                &url,
                &[
                    ("authorization", bearer.as_str()),
                    ("content-type", content_type),
                ],
                body,
            )
            .await
        }
    };
    assert_eq!(
        put("rita", "text/csv", csv).await.status,
        403,
        "admins only"
    );
    let bad = put("ops", "text/csv", "price\n1\n").await;
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert_eq!(bad.error_code(), "invalid_reference");
    assert_eq!(put("ops", "text/plain", csv).await.status, 415);
    // A version the registry does not know (a mistyped label) is refused.
    let bearer = format!("Bearer {}", token("ops"));
    let unknown = send(
        Method::PUT,
        &format!(
            "{}/admin/models/scorer/versions/9/kpi-reference",
            gateway.admin
        ),
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "text/csv"),
        ],
        csv,
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(unknown.error_code(), "unknown_version");
    let done = put("ops", "text/csv", csv).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let answer = done.json();
    assert_eq!(answer["rows"], 10);
    let digest: String = Sha256::digest(csv.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(answer["sha256"], digest.as_str());
    let entries = gateway.entries().await;
    let recorded: Vec<_> = entries
        .iter()
        .filter(|e| e["kind"] == "kpi_reference_set")
        .collect();
    assert_eq!(recorded.len(), 1, "only the accepted upload: {recorded:?}");
    let recorded = recorded[0];
    assert_eq!(recorded["version"], "1");
    assert_eq!(recorded["sha256"], digest.as_str());
    assert_eq!(recorded["set_by"], "ops");
    assert_eq!(recorded["seq"], answer["entry_seq"]);

    // One row is enough now: the reference is there (without the upload
    // the version would still be collecting its first 2 rows).
    one_row(&gateway).await;
    let text = gateway
        .metrics_when(r#"govgate_kpi_rows_total{model="scorer"} 1"#)
        .await;
    assert!(
        text.contains(r#"govgate_kpi_psi{feature="amount",model="scorer",version="1"}"#),
        "{text}"
    );
    gateway.stop().await;
    gateway.restart().await;
    one_row(&gateway).await;
    let text = gateway
        .metrics_when(r#"govgate_kpi_rows_total{model="scorer"} 1"#)
        .await;
    assert!(
        text.contains(r#"govgate_kpi_psi{feature="amount",model="scorer",version="1"}"#),
        "the stored reference is used after a restart\n{text}"
    );
}

/// `kpi_models` with answers above 100 bytes streamed, and a policy that
/// holds answers carrying `"hold": true`.
fn streaming_and_holding(upstream: &str, policies: &std::path::Path) -> String {
    format!(
        "[limits]\nmax_buffered_response_bytes = 100\n{}\n[review]\npolicies_dir = \"{}\"\n",
        kpi_models(upstream),
        policies.display()
    )
}

const HOLD_POLICY: &str = r#"package govgate

hold contains "held for review" if {
	input.stage == "response"
	input.response.hold == true
}
"#;

#[tokio::test]
async fn streamed_and_held_answers_feed_the_kpis_and_unreadable_ones_are_counted() {
    let upstream = TestUpstream::start().await;
    let policies = crate::reviews::policy_dir(&[("hold.rego", HOLD_POLICY)]);
    let gateway = Gateway::start(&streaming_and_holding(&upstream.url(), policies.path())).await;
    let infer = |answer: &'static str, body: &'static str| {
        let url = gateway.url("/v2/models/scorer/infer");
        async move { send(Method::POST, &url, &[("x-test-answer", answer)], body).await }
    };
    // Chunked, without a length: streamed, then read by the KPIs whole.
    let chunked = infer(
        "chunked",
        r#"{"scores": [0.9, 0.2], "sex": ["f", "m"], "amount": [1, 2]}"#,
    )
    .await;
    assert_eq!(chunked.status, 200, "{}", chunked.text());
    assert!(chunked.headers.get("content-length").is_none());
    gateway
        .metrics_when(r#"govgate_kpi_rows_total{model="scorer"} 2"#)
        .await;

    // Held for review: the model's answer counts when it is held.
    let held = infer(
        "",
        r#"{"scores": [0.7], "sex": ["m"], "amount": [3], "hold": true}"#,
    )
    .await;
    assert_eq!(held.status, 202, "{}", held.text());
    let text = gateway
        .metrics_when(r#"govgate_kpi_rows_total{model="scorer"} 3"#)
        .await;
    assert!(
        text.contains(
            r#"govgate_kpi_selection_rate{attribute="sex",group="m",model="scorer"} 0.5"#
        ),
        "{text}"
    );
    // Feedback joins a held decision's row like any other.
    let reply = send(
        Method::POST,
        &gateway.url("/govgate/feedback"),
        &[],
        serde_json::json!({"decision_id": held.json()["decision_id"], "row": 0, "label": true})
            .to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["results"][0]["result"], "applied");

    // An upstream error is no prediction: neither a row nor a selector
    // miss (its body has no scores). The answer after it shows the queue
    // has been worked through.
    let error = infer("error", r#"{"detail": "model crashed"}"#).await;
    assert_eq!(error.status, 500);
    let after = infer("", r#"{"scores": [0.1], "sex": ["f"], "amount": [6]}"#).await;
    assert_eq!(after.status, 200);
    let text = gateway
        .metrics_when(r#"govgate_kpi_rows_total{model="scorer"} 4"#)
        .await;
    assert!(!text.contains(r#"selector="outcome""#), "{text}");

    // An event stream is not one JSON document; an answer over the
    // buffering limit is not copied: both counted, neither a row.
    let sse = infer("sse", r#"{"scores": [0.9], "sex": ["f"], "amount": [4]}"#).await;
    assert_eq!(sse.status, 200);
    let large = infer(
        "chunked",
        r#"{"scores": [0.9], "sex": ["f"], "amount": [5], "padding": "over the hundred bytes that answers may take to be copied whole"}"#,
    )
    .await;
    assert_eq!(large.status, 200);
    // The same with a declared length: known too long before any copy.
    let declared = infer(
        "",
        r#"{"scores": [0.9], "sex": ["f"], "amount": [5], "padding": "over the hundred bytes that answers may take to be read whole"}"#,
    )
    .await;
    assert_eq!(declared.status, 200);
    assert!(declared.headers.get("content-length").is_some());
    let text = gateway
        .metrics_when(r#"govgate_kpi_unread_answers_total{model="scorer",reason="too_large"} 2"#)
        .await;
    assert!(
        text.contains(
            r#"govgate_kpi_unread_answers_total{model="scorer",reason="event_stream"} 1"#
        ),
        "{text}"
    );
    // None was fed: the next readable answer is row 5.
    let last = infer("", r#"{"scores": [0.2], "sex": ["m"], "amount": [7]}"#).await;
    assert_eq!(last.status, 200);
    gateway
        .metrics_when(r#"govgate_kpi_rows_total{model="scorer"} 5"#)
        .await;
}
