//! Ledgers written by earlier versions verify unchanged with today's code:
//! the bundles in tests/data/upgrade/ (their README says how they were
//! made), by both verifiers.

use crate::support::audit::both_accept_bundle;
use std::path::PathBuf;

/// Bundles written by the code before streamed decisions had two entries.
fn before_stream_entries(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/upgrade/v0.1-a2c4271")
        .join(name)
}

fn vkey() -> String {
    format!("@{}", before_stream_entries("log.vkey").display())
}

#[test]
fn bundles_from_before_stream_entries_verify_with_both_verifiers() {
    let (rust, python) = both_accept_bundle(&vkey(), &before_stream_entries("bundle-full"));
    assert!(
        rust.contains("bundle ok: origin govgate.demo/local, entries 0..21 (21 checked), checkpoint of size 21, 7 payloads"),
        "{rust}"
    );
    assert!(!rust.contains("open streams"), "{rust}");
    assert!(
        python.starts_with("OK bundle origin=govgate.demo/local from=0 to=21 payloads=7"),
        "{python}"
    );

    let (rust, python) =
        both_accept_bundle(&vkey(), &before_stream_entries("bundle-model-support-chat"));
    assert!(
        rust.contains("sparse bundle (model=support-chat) ok: origin govgate.demo/local, entries 0..21 (7 checked), checkpoint of size 21, 3 payloads"),
        "{rust}"
    );
    assert!(
        python.starts_with("OK sparse bundle origin=govgate.demo/local from=0 to=21 size=21 entries=7 filter=[model=support-chat] payloads=3"),
        "{python}"
    );
}

#[test]
fn the_whole_old_log_verifies_as_a_log_with_the_independent_verifier() {
    let bundle = before_stream_entries("bundle-full");
    let output = crate::support::python_verifier(&[
        "log".as_ref(),
        "--vkey".as_ref(),
        vkey().as_ref(),
        "--entries".as_ref(),
        bundle.join("entries.jsonl").as_os_str(),
        "--checkpoint".as_ref(),
        bundle.join("checkpoint.txt").as_os_str(),
    ]);
    let said = crate::support::audit::said(&output);
    assert!(output.status.success(), "{said}");
    assert_eq!(
        said,
        "OK log origin=govgate.demo/local size=21 entries=21 rotations=0\n"
    );
}

/// Appends `n` gateway_started entries to the stopped gateway's store the
/// way earlier versions committed: straight to the sled store, flushed and
/// fsynced per commit, with no write-ahead file.
fn append_without_write_ahead_file(config: &std::path::Path, n: usize) {
    use govgate::ledger::entry::EntryBody;
    use govgate::ledger::sequencer::{Ledger, SequencerConfig};
    let env = govgate::config::Environment::fixed(
        std::collections::HashMap::from([("TEST_UPSTREAM_KEY".to_owned(), "s".to_owned())]),
        config.parent().unwrap(),
    );
    let text = std::fs::read_to_string(config).unwrap();
    let config = govgate::config::Config::parse(&text, "govgate.toml", &env).unwrap();
    let store =
        govgate::ledger::store::SledStore::open(&config.server.data_dir.join("ledger")).unwrap();
    let (ledger, writer) = Ledger::open(
        std::sync::Arc::new(store),
        SequencerConfig {
            origin: config.ledger.origin.clone(),
            signer: govgate::ledger::checkpoint::NoteSigner::new(
                &config.ledger.origin,
                config.ledger.signing_key.clone(),
            )
            .unwrap(),
            payload_mode: config.ledger.payload_mode,
            entry_signatures: config.ledger.entry_signatures,
            queue_len: 16,
            max_batch: 4,
            metrics: govgate::ledger::metrics::LedgerMetrics::new().unwrap(),
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for _ in 0..n {
        runtime
            .block_on(ledger.append(EntryBody::GatewayStarted {
                version: "0.0.0-earlier".to_owned(),
            }))
            .unwrap();
    }
    drop(ledger);
    writer.close();
}

#[tokio::test]
async fn a_store_written_without_a_write_ahead_file_opens_continues_and_verifies() {
    let upstream = crate::support::TestUpstream::start().await;
    let mut gateway = crate::support::Gateway::start(&crate::models(&upstream.url())).await;
    gateway.stop().await;
    // The store as an earlier version leaves it: sled alone.
    let ledger = gateway.dir.path().join("data/ledger");
    assert!(gateway.cli(&["verify"]).status.success());
    std::fs::remove_dir_all(ledger.join("wal")).unwrap();
    let config = gateway.dir.path().join("govgate.toml");
    // blocking: the writer threads and their own runtime.
    tokio::task::spawn_blocking(move || append_without_write_ahead_file(&config, 5))
        .await
        .unwrap();
    assert!(!ledger.join("wal").exists());

    gateway.restart().await;
    let entries = gateway.entries().await;
    let earlier = entries
        .iter()
        .filter(|e| e["gateway_version"] == "0.0.0-earlier")
        .count();
    assert_eq!(earlier, 5, "the earlier entries are read");
    let reply = gateway.infer("{}").await;
    assert_eq!(reply.status, 200);
    let receipt = gateway
        .get(&format!("/govgate/receipts/{}", reply.decision_id()))
        .await;
    assert_eq!(receipt.status, 200);
    assert!(
        ledger.join("wal").is_dir(),
        "the write-ahead file is new state"
    );
    gateway.stop().await;
    let verified = gateway.cli(&["verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

/// Bundles written before bundles carried their checkpoints, context
/// entries and file list, from a log with per-entry signatures, a key
/// rotation and an erasure.
fn before_bundle_evidence(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/upgrade/v0.1-57d6b4f")
        .join(name)
}

#[test]
fn bundles_from_before_carried_checkpoints_verify_with_both_verifiers() {
    let vkey = format!("@{}", before_bundle_evidence("log.vkey").display());
    let (rust, python) = both_accept_bundle(&vkey, &before_bundle_evidence("bundle-full"));
    assert!(
        rust.contains("bundle ok: origin govgate.example/fixture, entries 0..18 (18 checked), checkpoint of size 18, 8 payloads, 18 signatures, 1 key rotations"),
        "{rust}"
    );
    assert!(
        python.starts_with("OK bundle origin=govgate.example/fixture from=0 to=18 payloads=8 signatures=18 rotations=1"),
        "{python}"
    );
    // Its seq 3 payload was erased by an entry outside the range: the old
    // form cannot say so, and a missing line is not held against it.
    let from_3 = before_bundle_evidence("bundle-from-3");
    let rust = crate::support::audit::rust_bundle(&vkey, &from_3);
    assert!(
        rust.status.success(),
        "{}",
        crate::support::audit::said(&rust)
    );
    let python = crate::support::python_verifier(&[
        "bundle".as_ref(),
        "--vkey".as_ref(),
        vkey.as_ref(),
        from_3.as_os_str(),
    ]);
    assert!(
        python.status.success(),
        "{}",
        crate::support::audit::said(&python)
    );
    let (rust, python) = both_accept_bundle(&vkey, &before_bundle_evidence("bundle-model-scorer"));
    assert!(
        rust.contains("sparse bundle (model=unknown-2) ok"),
        "{rust}"
    );
    assert!(python.starts_with("OK sparse bundle"), "{python}");
}
