//! The review queue's bounds (`review.max_pending`, `review.max_kept_bytes`)
//! through the real proxy: a hold beyond them is refused with its answer
//! withheld, a flag beyond the count is not opened (and counted), a flag
//! beyond the bytes is opened without its bodies.

use crate::reviews::{decide, flags_listed, held, infer_as, show_review, start};
use serde_json::json;
use std::time::Duration;

/// A refused hold: 503 `review_queue_full` with `Retry-After`, the answer
/// withheld, and its decision recorded with that code.
async fn refused_hold(gateway: &crate::support::Gateway, body: &str, setting: &str) {
    let reply = infer_as(gateway, "svc-app", body).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.error_code(), "review_queue_full");
    assert!(reply.text().contains(setting), "{}", reply.text());
    assert!(!reply.text().contains("\"hold\":true"), "answer withheld");
    assert!(reply.headers.contains_key("retry-after"));
    let decision = gateway.wait_for_decision(&reply.decision_id()).await;
    assert_eq!(decision["outcome"], "error");
    assert_eq!(decision["error_code"], "review_queue_full");
}

#[tokio::test]
async fn a_full_review_queue_refuses_holds_and_counts_the_flags_it_does_not_open() {
    let (gateway, upstream, _policies) = start("max_pending = 2\n").await;
    let (_, first) = held(&gateway, r#"{"hold": true, "n": 1}"#).await;
    held(&gateway, r#"{"hold": true, "n": 2}"#).await;
    refused_hold(&gateway, r#"{"hold": true, "n": 3}"#, "review.max_pending").await;
    assert_eq!(upstream.seen().len(), 3, "the refused hold was forwarded");

    // A flag's answer goes out whatever the queue holds.
    let flagged = infer_as(&gateway, "svc-app", r#"{"flag": true}"#).await;
    assert_eq!(flagged.status, 200, "{}", flagged.text());
    let metrics = gateway
        .metrics_when(
            r#"govgate_reviews_not_opened_total{kind="flag",limit="max_pending",model="scorer"} 1"#,
        )
        .await;
    assert!(
        metrics.contains(
            r#"govgate_reviews_not_opened_total{kind="hold",limit="max_pending",model="scorer"} 1"#
        ),
        "{metrics}"
    );
    assert!(flags_listed(&gateway, 0).await.is_empty(), "no flag queued");
    let entries = gateway.entries().await;
    assert!(
        !entries
            .iter()
            .any(|e| e["kind"] == "review_opened" && e["review_kind"] == "flag"),
        "a flag not opened has no review_opened entry"
    );

    // A verdict frees a place.
    let approved = decide(&gateway, "rita", &first, json!({"verdict": "approve"})).await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    held(&gateway, r#"{"hold": true, "n": 4}"#).await;
    refused_hold(&gateway, r#"{"hold": true, "n": 5}"#, "review.max_pending").await;
}

#[tokio::test]
async fn bodies_beyond_max_kept_bytes_refuse_a_hold_and_leave_a_flag_without_them() {
    let padding = "x".repeat(1500);
    let (gateway, _upstream, _policies) =
        start("max_kept_bytes = 8192\nmax_held_bytes = 4096\nkeep_decided_secs = 1\n").await;
    // The request and its echoed answer: about 3 KiB kept.
    let (_, first) = held(&gateway, &format!(r#"{{"hold": true, "p": "{padding}"}}"#)).await;
    held(&gateway, &format!(r#"{{"hold": true, "q": "{padding}"}}"#)).await;
    refused_hold(
        &gateway,
        &format!(r#"{{"hold": true, "r": "{padding}"}}"#),
        "review.max_kept_bytes",
    )
    .await;

    let flagged = infer_as(
        &gateway,
        "svc-app",
        &format!(r#"{{"flag": true, "p": "{padding}"}}"#),
    )
    .await;
    assert_eq!(flagged.status, 200, "{}", flagged.text());
    let listed = flags_listed(&gateway, 1).await;
    assert_eq!(listed.len(), 1, "the flag is opened all the same");
    let review_id = listed[0]["review_id"].as_str().unwrap();
    let shown = show_review(&gateway.admin, "rita", review_id).await.json();
    assert_eq!(shown["bodies_kept"], false, "{shown}");
    assert!(shown["response"]["body"].is_null(), "{shown}");
    gateway
        .metrics_when(r#"govgate_review_bodies_dropped_total{model="scorer"} 1"#)
        .await;

    // A decided hold's answer stays kept for polls until the review is
    // forgotten (`keep_decided_secs`); then its bytes are given back.
    decide(&gateway, "rita", &first, json!({"verdict": "approve"})).await;
    let again = format!(r#"{{"hold": true, "s": "{padding}"}}"#);
    refused_hold(&gateway, &again, "review.max_kept_bytes").await;
    held(&gateway, r#"{"hold": true, "small": 1}"#).await;
    // Forgotten a second after the verdict: asked again until then (each
    // refusal is recorded), for at most ten seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = infer_as(&gateway, "svc-app", &again).await;
        if reply.status == 202 {
            break;
        }
        assert_eq!(reply.error_code(), "review_queue_full", "{}", reply.text());
        assert!(
            std::time::Instant::now() < deadline,
            "the decided review's bytes were not given back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn reviews_found_at_start_count_against_the_bound() {
    let (mut gateway, _upstream, _policies) = start("max_pending = 2\n").await;
    held(&gateway, r#"{"hold": true, "n": 1}"#).await;
    let flagged = infer_as(&gateway, "svc-app", r#"{"flag": true}"#).await;
    assert_eq!(flagged.status, 200, "{}", flagged.text());
    assert_eq!(flags_listed(&gateway, 1).await.len(), 1);
    gateway.stop().await;
    gateway.restart().await;
    // The hold from its file and the flag from the ledger: two pending.
    refused_hold(&gateway, r#"{"hold": true, "n": 2}"#, "review.max_pending").await;
}
