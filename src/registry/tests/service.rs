//! The registry at run time, on a real ledger: every change is an entry,
//! failed appends change nothing, and the store replays to the same state.

use super::*;
use crate::decision::EntrySignatures;
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, LedgerWriter, SequencerConfig};
use crate::ledger::store::LedgerStore;
use crate::registry::service::{RegistryService, ServiceError, replay_from_store};
use std::collections::HashMap;
use std::sync::Mutex;

const ORIGIN: &str = "test.example/registry";

fn ledger(store: Arc<MemStore>) -> (Ledger, LedgerWriter) {
    Ledger::open(
        store,
        SequencerConfig::for_tests(
            ORIGIN,
            &ed25519_dalek::SigningKey::from_bytes(&[6; 32]),
            EntrySignatures::Off,
            64,
            8,
        ),
    )
    .unwrap()
}

#[tokio::test]
async fn every_change_is_an_entry_and_the_store_replays_to_the_same_state() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = ledger(store.clone());
    let published: Arc<Mutex<Vec<Option<u64>>>> = Arc::default();
    let seen = published.clone();
    let service = Arc::new(RegistryService::new(
        Registry::new(["credit"]),
        ledger.clone(),
        officers_policy(),
        HashMap::new(),
        Box::new(move |snapshot| seen.lock().unwrap().push(snapshot.last_seq())),
    ));
    let ops = who("ops", &["proposer", "admin"]);
    let ai = who("ai", &["approver:ai_officer"]);
    let sec = who("sec", &["approver:security_officer"]);
    let steps = [
        (propose("credit", "1", RiskClass::Limited), &ops),
        (approve("credit", "1"), &ai),
        (approve("credit", "1"), &sec),
        (activate("credit", "1"), &ops),
        (propose("credit", "2", RiskClass::Limited), &ops),
        (approve("credit", "2"), &sec),
        (approve("credit", "2"), &ai),
        (activate("credit", "2"), &ops),
        (roll_back("credit"), &ops),
        (revoke("credit", "2", "bias found"), &sec),
    ];
    let mut seqs = Vec::new();
    for (command, by) in steps {
        let done = service.execute(command, by.clone()).await.unwrap();
        seqs.push(done.entry_seq.expect("a change"));
    }
    let repeat = service
        .execute(approve("credit", "1"), ai.clone())
        .await
        .unwrap();
    assert_eq!(repeat.entry_seq, None, "a repeat records nothing");
    assert_eq!(
        seqs,
        (0..10).collect::<Vec<u64>>(),
        "one entry per change, in order"
    );
    assert_eq!(
        published.lock().unwrap().last().copied().flatten(),
        Some(9),
        "every change published"
    );

    // A failing ledger: refused, nothing applied.
    store.fail_commits(true);
    let failed = service.execute(retire("credit", "1"), ops.clone()).await;
    assert!(matches!(failed, Err(ServiceError::Ledger(_))), "{failed:?}");
    store.fail_commits(false);
    let live = service
        .read(|registry| serde_json::to_value(registry).unwrap())
        .await;
    assert_eq!(live["models"]["credit"]["versions"]["1"]["state"], "active");

    drop(service);
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    assert_eq!(store.size().unwrap(), 10);
    let replayed = replay_from_store(store.as_ref(), ["credit".to_owned()]).unwrap();
    assert_eq!(serde_json::to_value(&replayed).unwrap(), live);
}

#[tokio::test]
async fn a_command_whose_caller_went_away_is_recorded_before_the_registry_is_drained() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = ledger(store.clone());
    let service = Arc::new(RegistryService::new(
        Registry::new(["credit"]),
        ledger.clone(),
        officers_policy(),
        HashMap::new(),
        Box::new(|_| {}),
    ));
    let ops = who("ops", &["proposer", "admin"]);
    // The admin's request goes away after its command was handed over
    // (one poll), as an aborted connection's handler does.
    let command = service.execute(propose("credit", "1", RiskClass::Limited), ops);
    // Polled once, then dropped: the task it handed over has not run yet
    // (a current-thread runtime runs it only when this test yields).
    let gone = futures_util::FutureExt::now_or_never(command);
    assert!(
        gone.is_none(),
        "the command had not finished at its first poll"
    );
    service.drained().await;
    assert!(
        store.entry(0).unwrap().is_some(),
        "the proposal is in the ledger once the registry is drained"
    );
    drop((service, ledger));
    writer.close();
}
