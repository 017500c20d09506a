//! Operational metrics on real scrapes: the time the gateway adds to an
//! answer, and the ledger's bytes, checkpoints and queue.

use crate::models;
use crate::support::upstream::PAUSE;
use crate::support::{Gateway, TestUpstream};

/// The value of the sample written exactly as `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn gateway_added_time_leaves_out_the_time_spent_waiting_on_the_upstream() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let answers = 4;
    for _ in 0..answers {
        let reply = gateway.get("/m/pause").await;
        assert_eq!(reply.status, 200);
    }
    let text = gateway.metrics().await;
    assert_eq!(
        sample(
            &text,
            r#"govgate_gateway_added_seconds_count{route="http"}"#
        ),
        f64::from(answers)
    );
    let waited = f64::from(answers) * PAUSE.as_secs_f64();
    let total = sample(
        &text,
        r#"govgate_request_duration_seconds_sum{route="http"}"#,
    );
    assert!(total >= waited, "each answer took the upstream's pause");
    // Without the upstream's time taken out, each answer would add at
    // least the pause (250 ms); what is left is the gateway's own work and
    // the ledger's commit, each well under it.
    assert_eq!(
        sample(
            &text,
            r#"govgate_gateway_added_seconds_bucket{route="http",le="0.25"}"#
        ),
        f64::from(answers)
    );
    assert!(sample(&text, r#"govgate_gateway_added_seconds_sum{route="http"}"#) > 0.0);
}

#[tokio::test]
async fn ledger_metrics_match_the_entries_the_ledger_serves() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    for _ in 0..3 {
        assert_eq!(gateway.infer("{}").await.status, 200);
    }
    // Admin calls are not decisions: nothing is appended from here on.
    let text = gateway.metrics().await;
    let lines = gateway.entry_lines().await;
    let bytes: usize = lines.iter().map(Vec::len).sum();
    assert_eq!(
        sample(&text, "govgate_ledger_entry_bytes_total"),
        bytes as f64
    );
    assert_eq!(
        sample(&text, "govgate_ledger_size_entries"),
        lines.len() as f64
    );
    let commits = sample(&text, r#"govgate_ledger_commits_total{result="ok"}"#);
    assert!(commits >= 4.0, "start-up and three decisions: {commits}");
    assert_eq!(sample(&text, "govgate_ledger_checkpoints_total"), commits);
    let last: serde_json::Value = serde_json::from_slice(lines.last().unwrap()).unwrap();
    let at = sample(&text, "govgate_ledger_checkpoint_timestamp_seconds");
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis((at * 1000.0).round() as u64);
    assert_eq!(
        govgate::ledger::entry::rfc3339_millis(at),
        last["time"].as_str().unwrap(),
        "the latest checkpoint carries the last entry's time"
    );
    assert!(sample(&text, "govgate_ledger_payload_bytes_total") > 0.0);
    assert_eq!(sample(&text, "govgate_ledger_overloaded_total"), 0.0);
    assert_eq!(sample(&text, "govgate_ledger_queue_entries"), 0.0);

    // The size on disk is read at most once a second, after a commit: one
    // more decision after a second has passed reads it again (it grew),
    // and sled's files hold at least the entries' bytes.
    let before = sample(&text, "govgate_ledger_store_bytes");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(gateway.infer("{}").await.status, 200);
    let bytes: usize = gateway.entry_lines().await.iter().map(Vec::len).sum();
    let mut on_disk = before;
    for _ in 0..50 {
        on_disk = sample(&gateway.metrics().await, "govgate_ledger_store_bytes");
        if on_disk != before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(on_disk > before, "the size on disk was not read again");
    assert!(
        on_disk >= bytes as f64,
        "{on_disk} bytes on disk, {bytes} in entries"
    );
}
