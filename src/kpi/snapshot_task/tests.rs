//! The snapshot task against a real sequencer on an in-memory store: a
//! version change is written citing its cause, and a failed append at
//! stop is counted while the task still ends.

use super::*;
use crate::decision::{EntrySignatures, PayloadMode};
use crate::kpi::tests::{score_kpi, scorer};
use crate::ledger::checkpoint::NoteSigner;
use crate::ledger::memstore::MemStore;
use crate::ledger::metrics::LedgerMetrics;
use crate::ledger::sequencer::SequencerConfig;
use crate::ledger::store::LedgerStore;
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "test.example/kpi-snapshots";

fn model() -> ModelConfig {
    // Snapshots only at version changes and at stop.
    scorer(score_kpi())
}

fn entry(store: &MemStore, seq: u64) -> Option<Value> {
    let bytes = store.entry(seq).unwrap()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_version_change_is_written_and_a_failed_append_is_counted() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig {
            origin: ORIGIN.into(),
            signer: NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[4; 32])).unwrap(),
            payload_mode: PayloadMode::Full,
            entry_signatures: EntrySignatures::Off,
            queue_len: 16,
            max_batch: 4,
            metrics: LedgerMetrics::new().unwrap(),
        },
    )
    .unwrap();
    let registry = Registry::new();
    let models = [model()];
    let (recorder, _aggregator) = crate::kpi::start(&models, &registry, None)
        .unwrap()
        .unwrap();
    let (task, handle) = KpiSnapshots::new(recorder, ledger.clone(), &models, &registry).unwrap();
    // The state at start writes nothing; the change after it does.
    handle.registry_changed(|_| Some("1"), Some(3));
    handle.registry_changed(|_| Some("1"), Some(4));
    handle.registry_changed(|_| Some("2"), Some(41));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(task.run(async move {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let written = loop {
        if let Some(entry) = entry(&store, 0) {
            break entry;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(written["kind"], "kpi_snapshot");
    assert_eq!(written["trigger"], "version_change");
    assert_eq!(written["cause_seq"], 41);
    assert_eq!(written["previous_version"], "1");
    assert_eq!(written["serving_version"], "2");
    assert_eq!(written["settings"]["snapshot_every_secs"], 0);

    // The ledger fails: the stop snapshot is counted, not written, and the
    // task still ends.
    store.fail_commits(true);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the task ends")
        .unwrap();
    assert!(entry(&store, 1).is_none());
    let count = |name: &str, labels: &[&str]| -> f64 {
        registry
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| family.get_metric().to_vec())
            .find(|metric| {
                labels
                    .iter()
                    .all(|value| metric.get_label().iter().any(|l| l.value() == *value))
            })
            .map_or(-1.0, |metric| metric.get_counter().get_value())
    };
    assert_eq!(
        count("govgate_kpi_snapshots_total", &["scorer", "version_change"]),
        1.0
    );
    assert_eq!(
        count("govgate_kpi_snapshots_total", &["scorer", "stop"]),
        0.0
    );
    assert_eq!(
        count("govgate_kpi_snapshot_failures_total", &["scorer", "ledger"]),
        1.0
    );
    drop(ledger);
    let _ = tokio::task::spawn_blocking(move || writer.close()).await;
}
