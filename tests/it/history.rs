//! One history per origin and key: a gateway whose ledger store is gone
//! (or replaced) never signs a new tree under an origin its key signed
//! before; a new origin's first entry cites the old log's last checkpoint.

use crate::support::gateway::{Gateway, TEST_ORIGIN};
use std::time::Duration;

/// Runs `serve` on the gateway's config and returns its stderr once it
/// exits refusing; fails when it prints its ready line instead (it started
/// a new tree and signed a checkpoint under the key's origin).
async fn serve_refused(gateway: &Gateway) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .env("TEST_UPSTREAM_KEY", "test-secret")
        .args(["serve", "--config"])
        .arg(gateway.dir.path().join("govgate.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut line)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "serve started a new tree under the key's recorded origin: {line}"
    );
    let status = child.wait().await.unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

fn record(gateway: &Gateway) -> serde_json::Value {
    let text = std::fs::read_to_string(gateway.dir.path().join("test.key.state")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_start_without_its_ledger_refuses_to_sign_a_second_history_under_the_origin() {
    let mut gateway = Gateway::start(&crate::models("http://127.0.0.1:9")).await;
    gateway.stop().await;
    let data = gateway.dir.path().join("data");
    // Before the record existed this start signed `origin / N / other
    // root`, a checkpoint that conflicts with the old log's at size N.
    std::fs::rename(data.join("ledger"), data.join("ledger.elsewhere")).unwrap();
    serve_refused(&gateway).await;
    let recorded = record(&gateway);
    assert_eq!(recorded["origin"], TEST_ORIGIN);
    let size = recorded["size"].as_u64().unwrap();
    assert!(size >= 2, "{recorded}");
    let old_checkpoint = recorded["checkpoint"].as_str().unwrap().to_owned();
    assert!(old_checkpoint.starts_with(&format!("{TEST_ORIGIN}\n{size}\n")));

    // The ledger directory removed: a new tree at seq 0 would sign a
    // checkpoint under the same origin that conflicts with the old one.
    let stderr = serve_refused(&gateway).await;
    assert!(stderr.contains(TEST_ORIGIN), "{stderr}");
    assert!(stderr.contains(&format!("up to size {size}")), "{stderr}");
    assert!(stderr.contains("ledger.origin"), "{stderr}");
    assert_eq!(
        record(&gateway),
        recorded,
        "a refused start records nothing"
    );

    // The fix it names: a new origin. The new log's first entry cites the
    // old log's last checkpoint, verbatim.
    let config = gateway.dir.path().join("govgate.toml");
    let new_origin = format!("{TEST_ORIGIN}/2");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("origin = \"{TEST_ORIGIN}\""),
        &format!("origin = \"{new_origin}\""),
    );
    std::fs::write(&config, text).unwrap();
    let vkey = gateway.cli(&["vkey"]);
    gateway.vkey = String::from_utf8(vkey.stdout).unwrap().trim().to_owned();
    gateway.restart().await;
    let entries = gateway.entries().await;
    assert_eq!(entries[0]["kind"], "ledger_restarted");
    assert_eq!(entries[0]["previous_checkpoint"], old_checkpoint.as_str());
    assert_eq!(entries[1]["kind"], "entry_signatures_set");
    assert_eq!(entries[2]["kind"], "gateway_started");
    // The Python verifier checks the link: the cited checkpoint is signed
    // by this log's key under the old origin.
    let files = tempfile::tempdir().unwrap();
    let (entries_file, checkpoint_file) = (
        files.path().join("entries.jsonl"),
        files.path().join("checkpoint.txt"),
    );
    let entries_url = format!("{}/ledger/entries?from=0&count=1000", gateway.admin);
    let lines = crate::support::send(http::Method::GET, &entries_url, &[], "").await;
    std::fs::write(&entries_file, &lines.body).unwrap();
    let checkpoint_url = format!("{}/ledger/checkpoint", gateway.admin);
    let checkpoint = crate::support::send(http::Method::GET, &checkpoint_url, &[], "").await;
    std::fs::write(&checkpoint_file, &checkpoint.body).unwrap();
    let python = crate::support::python_verifier(&[
        std::ffi::OsStr::new("log"),
        "--vkey".as_ref(),
        gateway.vkey.as_ref(),
        "--entries".as_ref(),
        entries_file.as_os_str(),
        "--checkpoint".as_ref(),
        checkpoint_file.as_os_str(),
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&python.stdout),
        String::from_utf8_lossy(&python.stderr)
    );
    assert!(python.status.success(), "{said}");
    let continues = format!("continues log {TEST_ORIGIN} at size {size}");
    assert!(said.contains(&continues), "{said}");
    gateway.stop().await;
    let verify = gateway.cli(&["verify"]);
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{said}");
    assert!(said.contains(&continues), "{said}");
    let recorded = record(&gateway);
    assert_eq!(recorded["origin"], new_origin.as_str());
    assert_eq!(recorded["left_origins"][0], TEST_ORIGIN);

    // Going back to the origin left is refused too, whatever the store.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("origin = \"{new_origin}\""),
        &format!("origin = \"{TEST_ORIGIN}\""),
    );
    std::fs::write(&config, text).unwrap();
    std::fs::remove_dir_all(data.join("ledger")).unwrap();
    let stderr = serve_refused(&gateway).await;
    assert!(
        stderr.contains(&format!("left origin `{TEST_ORIGIN}`")),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_refused_start_leaves_the_record_and_its_own_store_continues() {
    let mut first = Gateway::start(&crate::models("http://127.0.0.1:9")).await;
    first.stop().await;
    let recorded = record(&first);
    // Refused without its store; once the store of its own log is back
    // it starts and the record follows the log.
    let data = first.dir.path().join("data");
    std::fs::rename(data.join("ledger"), data.join("ledger.own")).unwrap();
    let stderr = serve_refused(&first).await;
    assert!(stderr.contains("holds only 0 entries"), "{stderr}");
    assert_eq!(record(&first), recorded, "a refused start records nothing");
    std::fs::remove_dir_all(data.join("ledger")).ok();
    std::fs::rename(data.join("ledger.own"), data.join("ledger")).unwrap();
    first.restart().await;
    let entries = first.entries().await;
    assert!(entries.len() >= 3);
    first.stop().await;
    assert!(record(&first)["size"].as_u64() > recorded["size"].as_u64());
}
