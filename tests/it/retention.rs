//! Payload retention (`[models.retention] payloads`): a running gateway
//! erases the payloads of a model's decisions once they are older than
//! the setting, each erasure logged first and the run recorded; other
//! models keep theirs; everything still verifies; a restart goes on
//! from where the last run ended; a setting under six months is refused
//! unless the model says so.

use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn config(upstream: &str) -> String {
    crate::models(upstream).replacen(
        "default_version = \"2\"\n",
        "default_version = \"2\"\n[models.retention]\npayloads = \"2s\"\npayloads_below_minimum = true\n",
        1,
    ) + "\n[retention]\nevery_secs = 1\n"
}

async fn infer(gateway: &Gateway, model_path: &str) -> (String, u64) {
    let reply = send(
        Method::POST,
        &gateway.url(model_path),
        &[("content-type", "application/json")],
        r#"{"inputs":[1],"model":"chat","messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply.decision_id();
    let seq = gateway.wait_for_decision(&id).await["seq"]
        .as_u64()
        .unwrap();
    (id, seq)
}

fn of_kind<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["kind"] == kind).collect()
}

/// Waits until the ledger holds `runs` retention runs; the entries then.
async fn entries_after_runs(gateway: &Gateway, runs: usize) -> Vec<Value> {
    for _ in 0..200 {
        let entries = gateway.entries().await;
        if of_kind(&entries, "retention_run").len() >= runs {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no retention run {runs} within 20 s");
}

/// The seqs whose payload an export with payloads still holds.
fn exported_payload_seqs(gateway: &Gateway) -> BTreeSet<u64> {
    let out = gateway.export_both_accept(&format!("bundle-{}", rand_suffix()), &["--payloads"]);
    std::fs::read_to_string(out.join("payloads.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn a_models_payloads_go_after_its_retention_and_a_restart_goes_on_from_the_last_run() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&config(&upstream.url())).await;
    let scorer = "/v2/models/scorer/infer";
    let mut expired = Vec::new();
    for _ in 0..3 {
        expired.push(infer(&gateway, scorer).await);
    }
    let kept = infer(&gateway, "/v1/chat/completions").await;

    let entries = entries_after_runs(&gateway, 1).await;
    let erasures = of_kind(&entries, "payload_erased");
    let erased: BTreeSet<u64> = erasures
        .iter()
        .map(|e| e["erased_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        erased,
        expired.iter().map(|(_, seq)| *seq).collect(),
        "the scorer's three, not chat's"
    );
    for erasure in &erasures {
        assert_eq!(
            erasure["reason"],
            "retention: scorer keeps payloads 2s (models.retention.payloads)"
        );
        assert!(
            erasure.get("principal").is_none(),
            "the configuration asked"
        );
    }
    let run = of_kind(&entries, "retention_run")[0];
    assert_eq!(run["models"][0]["model"], "scorer");
    assert_eq!(run["models"][0]["payloads"], "2s");
    assert_eq!(run["models"][0]["erased"], 3);
    let through = run["models"][0]["through_seq"].as_u64().unwrap();
    assert!(through > expired[2].1, "{run}");
    let text = gateway
        .metrics_when(r#"govgate_retention_payloads_erased_total{model="scorer"} 3"#)
        .await;
    assert!(text.contains("govgate_retention_last_run_timestamp_seconds "));

    // A restart looks on from the last run: nothing erased twice; a new
    // decision goes in its turn.
    assert!(gateway.stop().await.success());
    let left = exported_payload_seqs(&gateway);
    assert!(left.contains(&kept.1), "chat keeps its payload: {left:?}");
    assert!(
        expired.iter().all(|(_, seq)| !left.contains(seq)),
        "{left:?}"
    );
    gateway.restart().await;
    let later = infer(&gateway, scorer).await;
    let entries = entries_after_runs(&gateway, 2).await;
    let erasures = of_kind(&entries, "payload_erased");
    assert_eq!(erasures.len(), 4, "one more, for the new decision");
    assert_eq!(erasures[3]["erased_seq"].as_u64(), Some(later.1));
    let second = of_kind(&entries, "retention_run")[1];
    assert_eq!(second["models"][0]["erased"], 1);
    assert!(second["models"][0]["through_seq"].as_u64().unwrap() > later.1);
    assert!(gateway.stop().await.success());
    exported_payload_seqs(&gateway);
}

#[tokio::test]
async fn a_retention_under_six_months_is_refused_unless_the_model_says_so() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&crate::models(&upstream.url())).await;
    let own = std::fs::read_to_string(gateway.dir.path().join("govgate.toml")).unwrap();
    let short = own.replacen(
        "default_version = \"2\"\n",
        "default_version = \"2\"\n[models.retention]\npayloads = \"30d\"\n",
        1,
    );
    assert_ne!(short, own);
    std::fs::write(gateway.dir.path().join("short.toml"), &short).unwrap();
    let refused = gateway.cli_with("short.toml", &["check-config"]);
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("models[2].retention.payloads"), "{said}");
    assert!(said.contains("shorter than six months"), "{said}");
    std::fs::write(
        gateway.dir.path().join("long.toml"),
        short.replace("payloads = \"30d\"", "payloads = \"200d\""),
    )
    .unwrap();
    let accepted = gateway.cli_with("long.toml", &["check-config"]);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
}
