//! The ledger on a full disk, and its recovery without a restart: the
//! real binary with its file-size limit lowered (`Gateway::fill_disk`), so
//! its store's next write fails with EFBIG as on a full disk.

use crate::models;
use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream, send};
use http::{Method, StatusCode};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// `n` inferences at once; each reply's status and decision id.
async fn burst(gateway: &Gateway, n: usize) -> Vec<(StatusCode, String, String)> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let url = gateway.url("/v2/models/scorer/infer");
        tasks.spawn(async move {
            let body = format!(r#"{{"inputs":"request {i}"}}"#);
            let reply = send(Method::POST, &url, &[], body).await;
            (reply.status, reply.decision_id(), reply.error_code())
        });
    }
    tasks.join_all().await
}

/// `GET /readyz` on the admin listener.
async fn admin_ready(gateway: &Gateway) -> crate::support::client::Reply {
    send(Method::GET, &format!("{}/readyz", gateway.admin), &[], "").await
}

#[tokio::test]
async fn after_a_full_disk_the_ledger_resumes_without_restart_and_the_log_verifies() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let activations = |entries: &[serde_json::Value]| {
        entries
            .iter()
            .filter(|entry| entry["kind"] == "version_activated")
            .count()
    };
    let activated_at_start = activations(&gateway.entries().await);
    // What each client got, by decision id.
    let mut answered: HashMap<String, StatusCode> = HashMap::new();
    for (status, id, _) in burst(&gateway, 5).await {
        assert_eq!(status, 200);
        answered.insert(id, status);
    }

    let calls_before = upstream.seen().len();
    gateway.fill_disk();
    // The first commit fails, any batch sealed on it fails with it, and
    // what comes after is refused at once.
    for (status, id, code) in burst(&gateway, 20).await {
        assert_eq!(status, 503, "nothing served without its entry");
        assert_eq!(code, "ledger_unavailable");
        answered.insert(id, status);
    }
    let refused = gateway.infer(r#"{"inputs":"later"}"#).await;
    assert_eq!(refused.status, 503);
    answered.insert(refused.decision_id(), refused.status);
    // The requests whose commit failed had reached the model; the ones
    // after were refused before it (the ledger was known not to commit).
    let forwarded_refused = upstream.seen().len() - calls_before;
    assert!(forwarded_refused >= 1);
    assert!(
        forwarded_refused < 21,
        "the model is not called while the ledger is down"
    );
    let ready = gateway.get("/v2/health/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(ready.json()["status"], "unavailable");
    assert_eq!(ready.json()["reason"], "ledger not committing");
    let admin = admin_ready(&gateway).await;
    assert_eq!(admin.status, 503);
    let reason = admin.json()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("ledger not committing: ") && reason.contains("too large"),
        "{reason}"
    );
    assert_eq!(gateway.get("/v2/health/live").await.status, 200);
    let activate = "/admin/models/scorer/versions/1/activate";
    let change = admin_call(&gateway.admin, Some("ops"), Method::POST, activate, "").await;
    assert_eq!(change.status, 503, "{}", change.text());
    assert_eq!(change.error_code(), "ledger_unavailable");
    gateway.metrics_when("govgate_ledger_committing 0").await;

    gateway.free_disk();
    let freed = Instant::now();
    while gateway.get("/v2/health/ready").await.status != 200 {
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "the ledger did not resume within 10 s of the disk being freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admin_ready(&gateway).await.json()["status"], "ok");
    for (status, id, _) in burst(&gateway, 20).await {
        assert_eq!(status, 200, "served again, without a restart");
        answered.insert(id, status);
    }
    let change = admin_call(&gateway.admin, Some("ops"), Method::POST, activate, "").await;
    assert_eq!(change.status, 200, "{}", change.text());
    let metrics = gateway.metrics().await;
    assert!(metrics.contains("govgate_ledger_committing 1"), "{metrics}");
    assert!(
        metrics.contains("govgate_ledger_recoveries_total 1"),
        "{metrics}"
    );

    // Refusals of requests already sent upstream are recorded once the
    // ledger takes entries again, as the 503 their clients got.
    let refused_ids: Vec<&String> = answered
        .iter()
        .filter(|(_, status)| **status != 200)
        .map(|(id, _)| id)
        .collect();
    for _ in 0..100 {
        let entries = gateway.entries().await;
        let recorded = entries
            .iter()
            .filter(|e| {
                e["kind"] == "decision"
                    && refused_ids.iter().any(|id| e["decision_id"] == id.as_str())
            })
            .count();
        if recorded >= forwarded_refused {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The outage itself, once, from the first failure to the recovery.
    let outage = crate::report_risks::one_of(&gateway, "ledger_outage").await;
    assert!(
        outage["reason"].as_str().unwrap().contains("too large"),
        "{outage}"
    );
    assert!(outage["duration_ms"].as_u64().unwrap() > 0, "{outage}");

    // The whole log: no gap, no duplicate, and its decisions are what the
    // clients got: every answer has its entry, once, and no refusal
    // claims it was served.
    let entries = gateway.entries().await;
    for (seq, entry) in entries.iter().enumerate() {
        assert_eq!(entry["seq"], seq as u64, "gap-free, no seq twice");
    }
    let recorded: HashMap<String, u64> = entries
        .iter()
        .filter(|entry| entry["kind"] == "decision")
        .map(|entry| {
            let id = entry["decision_id"].as_str().unwrap().to_owned();
            (id, entry["status"].as_u64().unwrap())
        })
        .collect();
    let decisions = entries
        .iter()
        .filter(|entry| entry["kind"] == "decision")
        .count();
    assert_eq!(decisions, recorded.len(), "no decision twice");
    for (id, status) in &answered {
        match (status.as_u16(), recorded.get(id)) {
            // Refused before the model was called, while the ledger was down.
            (503, None) => {}
            (code, found) => assert_eq!(
                found,
                Some(&u64::from(code)),
                "decision {id} records what its client got"
            ),
        }
    }
    let served = answered.values().filter(|s| **s == 200).count();
    assert_eq!(
        recorded.len(),
        served + forwarded_refused,
        "every served answer and every refused call of the model, and no other decision"
    );
    assert_eq!(
        activations(&entries),
        activated_at_start + 1,
        "the refused change is not recorded, the one after the recovery is"
    );

    let dir = tempfile::tempdir().unwrap();
    let (entries_file, checkpoint_file) = (
        dir.path().join("entries.jsonl"),
        dir.path().join("checkpoint.txt"),
    );
    let lines: Vec<u8> = gateway.entry_lines().await.join(&b'\n');
    std::fs::write(&entries_file, lines).unwrap();
    let checkpoint = send(
        Method::GET,
        &format!("{}/ledger/checkpoint", gateway.admin),
        &[],
        "",
    )
    .await;
    std::fs::write(&checkpoint_file, &checkpoint.body).unwrap();
    let python = crate::support::python_verifier(&[
        "log".as_ref(),
        "--vkey".as_ref(),
        gateway.vkey.as_ref(),
        "--entries".as_ref(),
        entries_file.as_os_str(),
        "--checkpoint".as_ref(),
        checkpoint_file.as_os_str(),
    ]);
    assert!(
        python.status.success(),
        "{}{}",
        String::from_utf8_lossy(&python.stdout),
        String::from_utf8_lossy(&python.stderr)
    );

    assert!(gateway.stop().await.success());
    let verified = gateway.cli(&["verify"]);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // Everything above, then gateway_stopped.
    let total = entries.len() + 1;
    assert!(
        stdout.contains(&format!("ledger ok: {total} entries")),
        "{stdout}"
    );
}
