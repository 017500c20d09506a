//! The document the policies read is held from the request stage until
//! the answer is judged, and a parsed body can be many times its text: it
//! is counted in `limits.max_buffered_total_bytes` like the body itself.

use crate::reviews::{infer_as, start};

/// The budget's metric line for `name`, as a number.
fn metric(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{scrape}"))
}

#[tokio::test]
async fn a_parsed_body_beyond_the_budget_is_refused_before_the_upstream() {
    let (gateway, upstream, _policies) =
        start("\n[limits]\nmax_buffered_total_bytes = 2000000\n").await;
    // 200 kB of text, a hundred thousand JSON values once parsed.
    let numbers = format!(r#"{{"data": [{}0]}}"#, "0,".repeat(99_999));
    let refused = infer_as(&gateway, "svc-app", &numbers).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.error_code(), "overloaded");
    assert!(
        refused.text().contains("policy input"),
        "{}",
        refused.text()
    );
    assert!(refused.headers.contains_key("retry-after"));
    assert!(upstream.seen().is_empty(), "refused before the upstream");
    let decision = gateway.wait_for_decision(&refused.decision_id()).await;
    assert_eq!(decision["error_code"], "overloaded");

    // Text is about its length: 150 kB of it fits with room to spare.
    let text = format!(r#"{{"text": "{}"}}"#, "x".repeat(150_000));
    let served = infer_as(&gateway, "svc-app", &text).await;
    assert_eq!(served.status, 200, "{}", served.text());
    // Every reservation, the document's too, is given back (the answer's
    // once the connection task lets go of it, just after the client has
    // it).
    let scrape = gateway
        .metrics_when("\ngovgate_buffered_body_bytes 0\n")
        .await;
    assert_eq!(
        metric(
            &scrape,
            r#"govgate_buffer_budget_exhausted_total{use="policy"}"#
        ),
        1.0
    );
}
