//! The writer after a failed commit: it refuses appends at once, retries
//! with backoff, and resumes by itself when the store works again, on
//! exactly the durable head; it stays stopped if acknowledged entries are
//! gone.

use super::tests::{metric, until_committing};
use super::*;
use crate::ledger::checkpoint::NoteVerifier;
use crate::ledger::memstore::MemStore;
use crate::ledger::verify::verify_store;
use ed25519_dalek::SigningKey;
use std::time::Duration;

const ORIGIN: &str = "test.example/recovery";

/// A ledger on `store` whose metrics are in the returned registry.
fn open(store: Arc<MemStore>) -> (Ledger, LedgerWriter, prometheus::Registry) {
    let config = SequencerConfig::for_tests(
        ORIGIN,
        &SigningKey::from_bytes(&[7; 32]),
        EntrySignatures::Off,
        64,
        8,
    );
    let registry = prometheus::Registry::new();
    config.metrics.register(&registry).unwrap();
    let (ledger, writer) = Ledger::open(store, config).unwrap();
    (ledger, writer, registry)
}

fn started(version: &str) -> EntryBody {
    EntryBody::GatewayStarted {
        version: version.to_owned(),
    }
}

async fn close(ledger: Ledger, writer: LedgerWriter) {
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
}

/// Verifies the whole store; returns its entries' `gateway_version`s.
fn versions(store: &MemStore) -> Vec<String> {
    let verifier =
        NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&[7; 32]).verifying_key()).unwrap();
    let verified = verify_store(store, &verifier).unwrap();
    (0..verified.entries)
        .map(|seq| {
            let entry: serde_json::Value =
                serde_json::from_slice(&store.entry(seq).unwrap().unwrap()).unwrap();
            entry["gateway_version"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn after_failed_commits_the_ledger_refuses_at_once_then_resumes_by_itself() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer, registry) = open(store.clone());
    ledger.append(started("0")).await.unwrap();
    assert_eq!(metric(&registry, "govgate_ledger_committing"), 1.0);

    store.fail_commits(true);
    let failed = ledger.append(started("lost")).await.unwrap_err();
    assert!(failed.to_string().contains("injected"), "{failed}");
    let reason = ledger.status().check().unwrap_err();
    assert_eq!(
        reason.to_string(),
        "ledger not committing: store: injected write failure"
    );
    assert_eq!(metric(&registry, "govgate_ledger_committing"), 0.0);
    // Refused without queueing: the future is ready at once.
    let refused = ledger.append(started("refused"));
    let refused = tokio::time::timeout(Duration::ZERO, refused)
        .await
        .expect("refused at once")
        .unwrap_err();
    assert!(
        matches!(&refused, SinkError::Unavailable(why) if why.starts_with("ledger not committing")),
        "{refused}"
    );
    // Retries at 100, 300 and 700 ms fail on the still-broken store.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(ledger.status().check().is_err());
    assert_eq!(store.size().unwrap(), 1);

    store.fail_commits(false);
    until_committing(&ledger).await;
    assert_eq!(metric(&registry, "govgate_ledger_committing"), 1.0);
    assert_eq!(metric(&registry, "govgate_ledger_recoveries_total"), 1.0);
    let acks: Vec<_> = (1..11)
        .map(|i| ledger.append(started(&i.to_string())))
        .collect();
    for (seq, ack) in (1..).zip(acks) {
        assert_eq!(ack.await.unwrap().seq, Some(seq), "the next seq, no gap");
    }
    close(ledger, writer).await;
    let expected: Vec<String> = (0..11).map(|i| i.to_string()).collect();
    assert_eq!(versions(&store), expected);
}

#[tokio::test]
async fn a_failed_commit_that_reached_the_store_is_discarded_and_its_seqs_reused() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer, registry) = open(store.clone());
    for i in 0..3 {
        ledger.append(started(&i.to_string())).await.unwrap();
    }
    // Written, then reported failed (an fsync error): never acknowledged.
    store.fail_after_write(1);
    let failed = ledger.append(started("withheld")).await.unwrap_err();
    assert!(
        failed.to_string().contains("injected sync failure"),
        "{failed}"
    );
    assert_eq!(store.size().unwrap(), 4, "the failed batch is in the store");

    until_committing(&ledger).await;
    assert_eq!(
        store.size().unwrap(),
        3,
        "and is gone once the ledger resumes"
    );
    assert_eq!(metric(&registry, "govgate_ledger_recoveries_total"), 1.0);
    let ack = ledger.append(started("3")).await.unwrap();
    assert_eq!(ack.seq, Some(3), "its seq is reused");
    close(ledger, writer).await;
    assert_eq!(versions(&store), ["0", "1", "2", "3"]);
    assert_eq!(
        store.checkpoints().unwrap().len(),
        4,
        "one per commit, none withdrawn left"
    );
}

#[tokio::test]
async fn a_store_that_lost_acknowledged_entries_keeps_the_ledger_stopped() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer, registry) = open(store.clone());
    for i in 0..5 {
        ledger.append(started(&i.to_string())).await.unwrap();
    }
    store.fail_commits(true);
    ledger.append(started("lost")).await.unwrap_err();
    // The disk comes back without the last two acknowledged entries.
    store.discard_above(3).unwrap();
    store.fail_commits(false);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let reason = ledger.status().check().unwrap_err();
    assert!(
        reason
            .to_string()
            .contains("holds 3 entries but 5 were acknowledged"),
        "{reason}"
    );
    assert!(ledger.append(started("refused")).await.is_err());
    assert_eq!(metric(&registry, "govgate_ledger_committing"), 0.0);
    assert_eq!(metric(&registry, "govgate_ledger_recoveries_total"), 0.0);
    assert_eq!(
        store.size().unwrap(),
        3,
        "nothing written on top of the gap"
    );
    close(ledger, writer).await;
}
