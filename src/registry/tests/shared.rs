//! The registry of a fleet: two services on two ledgers sharing one
//! control log (in memory here; PostgreSQL in the fleet's integration
//! tests). A command decided on a state another replica has moved on
//! from is decided again after that replica's event; every replica
//! records every event with its control seq and names its own approval.

use super::*;
use crate::decision::EntrySignatures;
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, LedgerWriter, SequencerConfig};
use crate::ledger::store::LedgerStore;
use crate::registry::service::{RegistryService, last_control_seq};
use crate::registry::shared::{LogFuture, SharedEvent, SharedLog};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;

/// The control log in memory: appends in one order, refused when the
/// caller's view is behind (the risk register's fleet tests use it too).
#[derive(Default)]
pub(crate) struct MemoryLog(Mutex<Vec<SharedEvent>>);

impl SharedLog for MemoryLog {
    fn since(&self, after: u64) -> LogFuture<'_, Vec<SharedEvent>> {
        let events = self.0.lock().unwrap();
        let page = events
            .iter()
            .filter(|e| e.control_seq > after)
            .cloned()
            .collect();
        Box::pin(async move { Ok(page) })
    }

    fn append<'a>(
        &'a self,
        after: u64,
        kind: &'a str,
        members: &'a Map<String, Value>,
    ) -> LogFuture<'a, Option<u64>> {
        let mut events = self.0.lock().unwrap();
        let last = events.last().map_or(0, |e| e.control_seq);
        let appended = (last == after).then(|| {
            events.push(SharedEvent {
                control_seq: last + 1,
                kind: kind.to_owned(),
                members: members.clone(),
            });
            last + 1
        });
        Box::pin(async move { Ok(appended) })
    }
}

fn replica(
    origin_key: u8,
    log: &Arc<MemoryLog>,
) -> (Arc<RegistryService>, Arc<MemStore>, LedgerWriter) {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            "test.example/fleet",
            &ed25519_dalek::SigningKey::from_bytes(&[origin_key; 32]),
            EntrySignatures::Off,
            64,
            8,
        ),
    )
    .unwrap();
    let service = RegistryService::new(
        Registry::new(["credit"]),
        ledger,
        officers_policy(),
        HashMap::new(),
        Box::new(|_| {}),
    )
    .with_shared_log(log.clone(), 0);
    (Arc::new(service), store, writer)
}

fn entries(store: &MemStore) -> Vec<Value> {
    (0..store.size().unwrap())
        .map(|seq| serde_json::from_slice(&store.entry(seq).unwrap().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn replicas_decide_on_each_others_events_and_record_every_one_with_its_control_seq() {
    let log = Arc::new(MemoryLog::default());
    let (one, one_store, _one_writer) = replica(1, &log);
    let (two, two_store, _two_writer) = replica(2, &log);
    let ops = who("ops", &["proposer", "admin"]);
    let ai = who("ai", &["approver:ai_officer"]);
    let sec = who("sec", &["approver:security_officer"]);
    // Proposed and approved once on replica one; replica two has seen none
    // of it when the second officer approves there.
    one.execute(propose("credit", "1", RiskClass::Limited), ops.clone())
        .await
        .unwrap();
    one.execute(approve("credit", "1"), ai.clone())
        .await
        .unwrap();
    let done = two
        .execute(approve("credit", "1"), sec.clone())
        .await
        .unwrap();
    assert_eq!(
        done.event.unwrap().head().state,
        VersionState::Approved,
        "decided after the first approval it had not seen"
    );
    // The same approval on replica one again: a repeat, nothing appended.
    let repeat = one
        .execute(approve("credit", "1"), sec.clone())
        .await
        .unwrap();
    assert_eq!(repeat.entry_seq, None);
    one.execute(activate("credit", "1"), ops.clone())
        .await
        .unwrap();
    two.follow().await.unwrap();
    assert_eq!(log.0.lock().unwrap().len(), 4);

    for store in [&one_store, &two_store] {
        let recorded = entries(store);
        let cited: Vec<u64> = recorded
            .iter()
            .filter_map(|e| e["control_seq"].as_u64())
            .collect();
        assert_eq!(cited, [1, 2, 3, 4], "every event, in the fleet's order");
        let met = recorded
            .iter()
            .find(|e| e["kind"] == "version_approved" && e["state"] == "approved")
            .unwrap();
        let activated = recorded
            .iter()
            .find(|e| e["kind"] == "version_activated")
            .unwrap();
        assert_eq!(
            activated["approval_seq"], met["seq"],
            "its own ledger's approval"
        );
        assert_eq!(last_control_seq(store.as_ref()).unwrap(), 4);
    }
    for service in [&one, &two] {
        let state = service
            .read(|registry| registry.version("credit", "1").map(|v| v.state))
            .await;
        assert_eq!(state, Some(VersionState::Active));
    }
}
