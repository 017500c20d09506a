//! The write-ahead commit point: its failures answer 503 and release
//! nothing, a failing store behind it stops acknowledging and loses
//! nothing, and repeated SIGKILL under load (with a torn final record)
//! loses no acknowledged decision; a damaged record is refused, never cut,
//! and `verify` leaves the write-ahead file as it is; a panicked applier
//! answers 503 and lets the gateway stop.

use crate::failclosed::start_on_store;
use crate::models;
use crate::support::{Gateway, TestUpstream, send};
use govgate::ledger::memstore::MemStore;
use govgate::ledger::store::LedgerStore;
use govgate::ledger::wal::WalStore;
use http::Method;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BODY: &str = r#"{"inputs":"the upstream's answer echoes this"}"#;

/// Waits until the gateway says it is ready again (the ledger resumed).
async fn ready_again(base: &str) {
    let ready = format!("{base}/v2/health/ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    while send(Method::GET, &ready, &[], "").await.status != 200 {
        assert!(Instant::now() < deadline, "the ledger did not resume");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn id_bytes(id: &str) -> [u8; 16] {
    let mut bytes = [0; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap();
    }
    bytes
}

#[tokio::test]
async fn a_failed_write_ahead_write_or_fdatasync_answers_503_and_releases_nothing() {
    let upstream = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(WalStore::open(dir.path(), Arc::new(MemStore::new())).unwrap());
    let (base, _admin, stop, server) = start_on_store(&upstream, "", wal.clone()).await;
    let infer = format!("{base}/v2/models/scorer/infer");
    assert_eq!(send(Method::POST, &infer, &[], BODY).await.status, 200);

    for write_fails in [true, false] {
        if write_fails {
            wal.faults().fail_writes(1);
        } else {
            wal.faults().fail_syncs(1);
        }
        let refused = send(Method::POST, &infer, &[], BODY).await;
        assert_eq!(refused.status, 503);
        assert_eq!(refused.error_code(), "ledger_unavailable");
        assert!(
            !String::from_utf8_lossy(&refused.body).contains("echoes this"),
            "the answer was withheld"
        );
        // Its record reached no reader: the id is unknown until the
        // refusal itself is recorded, never as the answered decision.
        ready_again(&base).await;
        let again = send(Method::POST, &infer, &[], BODY).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body, BODY.as_bytes());
    }
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn a_failing_store_behind_the_write_ahead_file_stops_acknowledging_and_loses_nothing() {
    let upstream = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemStore::new());
    let wal = Arc::new(WalStore::open(dir.path(), inner.clone()).unwrap());
    let (base, _admin, stop, server) = start_on_store(&upstream, "", wal.clone()).await;
    let infer = format!("{base}/v2/models/scorer/infer");
    assert_eq!(send(Method::POST, &infer, &[], BODY).await.status, 200);

    wal.faults().fail_applies(1);
    // Answers go on (the file holds them) until the applier's next tick
    // fails; from then on nothing is acknowledged.
    let mut answered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = send(Method::POST, &infer, &[], BODY).await;
        if reply.status == 503 {
            assert_eq!(reply.error_code(), "ledger_unavailable");
            assert!(!String::from_utf8_lossy(&reply.body).contains("echoes this"));
            break;
        }
        assert_eq!(reply.status, 200);
        answered.push(reply.decision_id());
        assert!(
            Instant::now() < deadline,
            "the failing store was never noticed"
        );
    }
    // The committer reopens the store, which replays what it missed.
    ready_again(&base).await;
    let after = send(Method::POST, &infer, &[], BODY).await;
    assert_eq!(after.status, 200);
    answered.push(after.decision_id());
    let _ = stop.send(());
    server.await.unwrap();
    // Closing applied and flushed everything: the store behind has every
    // acknowledged decision.
    drop(wal);
    for id in &answered {
        assert!(
            inner.decision_seq(&id_bytes(id)).unwrap().is_some(),
            "acknowledged decision {id} missing from the store"
        );
    }
}

#[tokio::test]
async fn a_store_failing_in_the_background_makes_the_gateway_unready_and_it_recovers_without_traffic()
 {
    let upstream = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(MemStore::new());
    let wal = Arc::new(WalStore::open(dir.path(), inner.clone()).unwrap());
    let (base, _admin, stop, server) = start_on_store(&upstream, "", wal.clone()).await;
    let infer = format!("{base}/v2/models/scorer/infer");
    // The start's own entries reach the store behind first (the applier's
    // tick): the fault is meant for the request's batch, not for them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while inner.size().unwrap() < wal.size().unwrap() {
        assert!(
            Instant::now() < deadline,
            "the start's entries were never applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wal.faults().fail_applies(1);
    // Acknowledged from the write-ahead file; the store behind fails to
    // take it on the applier's next tick. No request follows.
    assert_eq!(send(Method::POST, &infer, &[], BODY).await.status, 200);
    let ready = format!("{base}/v2/health/ready");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = send(Method::GET, &ready, &[], "").await;
        if reply.status == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still ready with a failed store and no traffic"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Recovery (reopen and replay) needs no request either.
    ready_again(&base).await;
    assert_eq!(send(Method::POST, &infer, &[], BODY).await.status, 200);
    let _ = stop.send(());
    server.await.unwrap();
}

/// Runs 8 clients against the gateway until `n` answers are out, then
/// kills it; the ids of every complete answer.
async fn kill_under_load(gateway: &mut Gateway, n: usize) -> HashSet<String> {
    let url = gateway.url("/v2/models/scorer/infer");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (url, tx) = (url.clone(), tx.clone());
        clients.push(tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build(hyper_util::client::legacy::connect::HttpConnector::new());
            loop {
                let request = http::Request::post(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                    .unwrap();
                let Ok(response) = client.request(request).await else {
                    break;
                };
                let id = response
                    .headers()
                    .get("govgate-decision-id")
                    .map(|v| v.to_str().unwrap().to_owned());
                let ok = response.status() == 200;
                // Only a complete answer counts as acknowledged.
                if http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .is_err()
                {
                    break;
                }
                if let (Some(id), true) = (id, ok) {
                    let _ = tx.send(id);
                }
            }
        }));
    }
    drop(tx);
    let mut acknowledged = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.len() < n && Instant::now() < deadline {
        if let Ok(Some(id)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            acknowledged.insert(id);
        }
    }
    gateway.kill().await;
    for client in clients {
        let _ = client.await;
    }
    while let Ok(id) = rx.try_recv() {
        acknowledged.insert(id);
    }
    assert!(
        acknowledged.len() >= n,
        "the load ran ({})",
        acknowledged.len()
    );
    acknowledged
}

/// The segment the gateway appended to last.
fn last_segment(gateway: &Gateway) -> std::path::PathBuf {
    let dir = gateway.dir.path().join("data/ledger/wal");
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments.pop().expect("a write-ahead segment")
}

#[tokio::test]
async fn repeated_sigkill_under_load_loses_no_acknowledged_decision_and_a_torn_record_is_cut() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let mut acknowledged = HashSet::new();
    for _ in 0..3 {
        acknowledged.extend(kill_under_load(&mut gateway, 60).await);
        gateway.restart().await;
    }
    acknowledged.extend(kill_under_load(&mut gateway, 60).await);
    // A record cut halfway by the crash: a header announcing 1000 bytes,
    // 100 of them written.
    let mut torn = b"GWR1".to_vec();
    torn.extend_from_slice(&1000u32.to_le_bytes());
    torn.extend_from_slice(&[0xab; 16 + 100]);
    let segment = last_segment(&gateway);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&torn);
    std::fs::write(&segment, &bytes).unwrap();
    gateway.restart().await;

    let metrics = gateway.metrics().await;
    let cut: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("govgate_ledger_wal_torn_bytes "))
        .expect("the torn record gauge")
        .parse()
        .unwrap();
    assert!(cut >= torn.len() as u64, "reported {cut} bytes cut");
    let logged: HashSet<String> = gateway
        .entries()
        .await
        .iter()
        .filter_map(|e| e["decision_id"].as_str().map(str::to_owned))
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&logged).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged decisions missing, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        lost.first()
    );
    gateway.stop().await;
    let verified = gateway.cli(&["verify"]);
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}

#[tokio::test]
async fn a_damaged_record_with_good_ones_after_it_is_refused_by_verify_and_nothing_is_cut() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    kill_under_load(&mut gateway, 30).await;
    // The current segment holds its 36-byte header (magic and key), the
    // start's record and the load's after it.
    let segment = last_segment(&gateway);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[36 + 30] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let verified = gateway.cli(&["verify"]);
    let said = String::from_utf8_lossy(&verified.stderr).into_owned();
    assert_eq!(verified.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("{} at byte 36", segment.display())) && said.contains("damage"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "verify cut nothing"
    );
}

#[tokio::test]
async fn verify_reports_a_torn_final_record_and_leaves_the_write_ahead_file_as_it_is() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    kill_under_load(&mut gateway, 10).await;
    let segment = last_segment(&gateway);
    let mut bytes = std::fs::read(&segment).unwrap();
    let good = bytes.len();
    bytes.extend_from_slice(b"GWR1\xe8\x03\0\0 cut short");
    std::fs::write(&segment, &bytes).unwrap();
    let verified = gateway.cli(&["verify"]);
    let said = String::from_utf8_lossy(&verified.stderr).into_owned();
    assert!(verified.status.success(), "{said}");
    assert!(
        said.contains(&format!("torn record at byte {good}")) && said.contains("left in place"),
        "{said}"
    );
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "nothing cut");
}

#[tokio::test]
async fn a_panic_in_the_store_applier_answers_503_and_shutdown_does_not_hang() {
    let upstream = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(WalStore::open(dir.path(), Arc::new(MemStore::new())).unwrap());
    // Shutdown waits this long for the refusals to be recorded, in vain.
    let grace = "[timeouts]\nshutdown_grace_ms = 500";
    let (base, _admin, stop, server) = start_on_store(&upstream, grace, wal.clone()).await;
    let infer = format!("{base}/v2/models/scorer/infer");
    wal.faults().panic_applies(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            send(Method::POST, &infer, &[], BODY),
        )
        .await
        .expect("a request hung");
        if reply.status == 503 {
            assert_eq!(reply.error_code(), "ledger_unavailable");
            assert!(!String::from_utf8_lossy(&reply.body).contains("echoes this"));
            break;
        }
        assert_eq!(reply.status, 200);
        assert!(Instant::now() < deadline, "the panic was never noticed");
    }
    // Still refused later: nothing resumes without the applier.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(send(Method::POST, &infer, &[], BODY).await.status, 503);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("shutdown hung")
        .unwrap();
    tokio::task::spawn_blocking(move || drop(wal))
        .await
        .unwrap();
}
