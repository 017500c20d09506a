//! The pipelined writer when a commit fails while the next batch is
//! already sealed on top of it.

use super::*;
use crate::ledger::checkpoint::NoteVerifier;
use crate::ledger::memstore::MemStore;
use crate::ledger::verify::verify_store;
use ed25519_dalek::SigningKey;
use std::time::Duration;

const ORIGIN: &str = "test.example/pipeline";

fn open(store: Arc<MemStore>) -> (Ledger, LedgerWriter) {
    open_signing(store, EntrySignatures::Off)
}

fn open_signing(store: Arc<MemStore>, entry_signatures: EntrySignatures) -> (Ledger, LedgerWriter) {
    Ledger::open(
        store,
        SequencerConfig {
            origin: ORIGIN.into(),
            signer: NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[4; 32])).unwrap(),
            payload_mode: PayloadMode::Full,
            entry_signatures,
            queue_len: 256,
            max_batch: if entry_signatures == EntrySignatures::On {
                64
            } else {
                8
            },
            metrics: super::super::metrics::LedgerMetrics::new().unwrap(),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_batch_sealed_on_a_failed_one_fails_too_and_seqs_are_reused() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = open(store.clone());
    assert_eq!(
        ledger.append(EntryBody::GatewayStopped).await.unwrap().seq,
        Some(0)
    );
    store.slow_commits(Duration::from_millis(300));
    store.fail_commits(true);
    // The first batch is taken and sits in its (failing) commit while the
    // second is sealed on top of it.
    let first = ledger.append(EntryBody::GatewayStopped);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = ledger.append(EntryBody::GatewayStopped);
    let first = first.await.expect_err("its commit failed");
    assert!(first.to_string().contains("injected"), "{first}");
    let second = second.await.expect_err("built on a failed batch");
    assert!(
        second
            .to_string()
            .contains("an earlier ledger commit failed"),
        "{second}"
    );
    assert_eq!(store.size().unwrap(), 1, "nothing of either batch written");

    store.fail_commits(false);
    store.slow_commits(Duration::ZERO);
    until_committing(&ledger).await;
    let acks: Vec<_> = (0..20)
        .map(|_| ledger.append(EntryBody::GatewayStopped))
        .collect();
    let mut seqs = Vec::new();
    for ack in acks {
        seqs.push(ack.await.unwrap().seq.unwrap());
    }
    assert_eq!(seqs, (1..21).collect::<Vec<u64>>(), "no gap, no reuse");
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    let verifier =
        NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&[4; 32]).verifying_key()).unwrap();
    let verified = verify_store(store.as_ref(), &verifier).unwrap();
    assert_eq!(verified.entries, 21);
}

/// Waits (up to 5 s) until the ledger commits again after a failure.
pub(super) async fn until_committing(ledger: &Ledger) {
    for _ in 0..250 {
        if ledger.status().check().is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the ledger did not resume: {:?}", ledger.status().check());
}

/// Many batches in flight at once: every ack names its own seq and the
/// log verifies.
#[tokio::test]
async fn concurrent_batches_are_acknowledged_in_order() {
    let store = Arc::new(MemStore::new());
    store.slow_commits(Duration::from_millis(2));
    let (ledger, writer) = open(store.clone());
    let acks: Vec<_> = (0..200)
        .map(|_| ledger.append(EntryBody::GatewayStopped))
        .collect();
    let mut seqs = Vec::new();
    for ack in acks {
        seqs.push(ack.await.unwrap().seq.unwrap());
    }
    assert_eq!(seqs, (0..200).collect::<Vec<u64>>());
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    let verifier =
        NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&[4; 32]).verifying_key()).unwrap();
    verify_store(store.as_ref(), &verifier).unwrap();
}

/// Batches large enough to be signed on several threads: every entry's
/// signature is its own, in order (verification checks each one).
#[tokio::test]
async fn per_entry_signatures_of_large_batches_stay_in_order() {
    let store = Arc::new(MemStore::new());
    store.slow_commits(Duration::from_millis(20));
    let (ledger, writer) = open_signing(store.clone(), EntrySignatures::On);
    let acks: Vec<_> = (0..200)
        .map(|i| {
            ledger.append(EntryBody::GatewayStarted {
                version: format!("v{i}"),
            })
        })
        .collect();
    for ack in acks {
        ack.await.unwrap();
    }
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    let batches = store.checkpoints().unwrap();
    assert!(
        batches.windows(2).any(|w| w[1].0 - w[0].0 >= 32),
        "some batch was signed in parallel: {:?}",
        batches.iter().map(|(size, _)| size).collect::<Vec<_>>()
    );
    let verifier =
        NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&[4; 32]).verifying_key()).unwrap();
    assert_eq!(
        verify_store(store.as_ref(), &verifier).unwrap().entries,
        200
    );
}

/// The value of the unlabelled family `name` in `registry`.
pub(super) fn metric(registry: &prometheus::Registry, name: &str) -> f64 {
    let family = registry
        .gather()
        .into_iter()
        .find(|family| family.name() == name)
        .unwrap_or_else(|| panic!("{name} is not registered"));
    let sample = &family.get_metric()[0];
    match family.get_field_type() {
        prometheus::proto::MetricType::COUNTER => sample.get_counter().get_value(),
        _ => sample.get_gauge().get_value(),
    }
}

/// The checkpoint time gauge shows the time `last_entry` carries.
fn assert_checkpoint_time_is_of(registry: &prometheus::Registry, last_entry: &[u8]) {
    let last: serde_json::Value = serde_json::from_slice(last_entry).unwrap();
    let at = metric(registry, "govgate_ledger_checkpoint_timestamp_seconds");
    let at = std::time::UNIX_EPOCH + Duration::from_millis((at * 1000.0).round() as u64);
    assert_eq!(
        crate::ledger::entry::rfc3339_millis(at),
        last["time"].as_str().unwrap()
    );
}

#[tokio::test]
async fn metrics_count_refusals_checkpoints_and_bytes_as_the_store_holds_them() {
    let store = Arc::new(MemStore::new());
    let metrics = super::super::metrics::LedgerMetrics::new().unwrap();
    let registry = prometheus::Registry::new();
    metrics.register(&registry).unwrap();
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig {
            origin: ORIGIN.into(),
            signer: NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[4; 32])).unwrap(),
            payload_mode: PayloadMode::Full,
            entry_signatures: EntrySignatures::Off,
            queue_len: 2,
            max_batch: 1,
            metrics,
        },
    )
    .unwrap();
    // A slow disk and a queue of two: most of twenty appends made at once
    // are refused, each counted once.
    store.slow_commits(Duration::from_millis(100));
    let appends: Vec<_> = (0..20)
        .map(|_| ledger.append(EntryBody::GatewayStopped))
        .collect();
    // The last appends found the queue full (or one slot just freed).
    assert!(metric(&registry, "govgate_ledger_queue_entries") >= 1.0);
    let mut refused = 0u32;
    for append in appends {
        match append.await {
            Ok(_) => {}
            Err(SinkError::Overloaded) => refused += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert!(refused > 0, "a queue of two took twenty appends");
    assert_eq!(
        metric(&registry, "govgate_ledger_overloaded_total"),
        f64::from(refused)
    );
    store.slow_commits(Duration::ZERO);
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();

    let size = store.size().unwrap();
    assert_eq!(size, 20 - u64::from(refused));
    let entries: Vec<Vec<u8>> = (0..size)
        .map(|seq| store.entry(seq).unwrap().unwrap())
        .collect();
    let bytes: usize = entries.iter().map(Vec::len).sum();
    assert_eq!(
        metric(&registry, "govgate_ledger_entry_bytes_total"),
        bytes as f64
    );
    assert_eq!(
        metric(&registry, "govgate_ledger_checkpoints_total"),
        store.checkpoints().unwrap().len() as f64,
        "one checkpoint per commit"
    );
    assert_eq!(
        metric(&registry, "govgate_ledger_size_entries"),
        size as f64
    );
    assert_checkpoint_time_is_of(&registry, entries.last().unwrap());
}

#[tokio::test]
async fn opening_a_ledger_sets_its_size_and_checkpoint_time() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = open(store.clone());
    for _ in 0..3 {
        ledger.append(EntryBody::GatewayStopped).await.unwrap();
    }
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    let metrics = super::super::metrics::LedgerMetrics::new().unwrap();
    let registry = prometheus::Registry::new();
    metrics.register(&registry).unwrap();
    let mut config = SequencerConfig::for_tests(
        ORIGIN,
        &SigningKey::from_bytes(&[4; 32]),
        EntrySignatures::Off,
        8,
        8,
    );
    config.metrics = metrics;
    let (_reopened, _writer) = Ledger::open(store.clone(), config).unwrap();
    assert_eq!(metric(&registry, "govgate_ledger_size_entries"), 3.0);
    assert_checkpoint_time_is_of(&registry, &store.entry(2).unwrap().unwrap());
}
