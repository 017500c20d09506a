//! A set's texts are not kept in memory: they are read back from its
//! proposal's ledger entry whenever the set is compiled or shown.

use super::super::{PolicyGate, RecordedChanges, ReviewMetrics, SourcesError};
use super::ChangeFailure;
use crate::config::OnPolicyError;
use crate::decision::EntrySignatures;
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, SequencerConfig};
use crate::registry::{ApprovalPolicy, Principal};
use crate::review::change::{ChangeCommand, PolicyChanges};
use std::sync::Arc;

const ALLOW: &str = "package govgate\n\nallow := true\n";

fn who(name: &str, roles: &[&str]) -> Principal {
    Principal::parse(name, roles).unwrap()
}

#[tokio::test]
async fn a_sets_texts_come_from_its_proposal_entry_and_an_altered_entry_is_refused() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            "test.example/policy-sources",
            &ed25519_dalek::SigningKey::from_bytes(&[6; 32]),
            EntrySignatures::Off,
            64,
            8,
        ),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = vec![("allow.rego".to_owned(), ALLOW.to_owned())];
    let gate = PolicyGate::start_governed(
        dir.path(),
        Some(files.clone()),
        ApprovalPolicy::new(1, Vec::<String>::new()),
        RecordedChanges {
            changes: PolicyChanges::default(),
            store: store.clone(),
        },
        OnPolicyError::Deny,
        ledger.clone(),
        ReviewMetrics::register(&prometheus::Registry::new()).unwrap(),
    )
    .await
    .unwrap();
    let set = gate
        .read_changes(|changes| changes.sets().values().next().cloned())
        .await
        .expect("the folder was proposed at start");
    assert_eq!(gate.set_sources(&set).await.unwrap(), files);
    let approved = gate
        .change(
            ChangeCommand::Approve {
                proposal_seq: set.seq,
                reason: None,
            },
            who("alice", &["approver"]),
        )
        .await;
    assert!(approved.is_ok(), "{approved:?}");

    // The entry now holds another text under the same digest, as only a
    // damaged store could: the set is neither shown nor activated from it.
    store.tamper(|entries, _| {
        let entry = entries.get_mut(&set.seq).unwrap();
        let text = String::from_utf8(entry.clone()).unwrap();
        *entry = text.replace("allow := true", "allow := false").into_bytes();
    });
    let refused = gate.set_sources(&set).await.unwrap_err();
    assert!(
        matches!(refused, SourcesError::NotTheProposal { seq, .. } if seq == set.seq),
        "{refused}"
    );
    let activated = gate
        .change(
            ChangeCommand::Activate {
                proposal_seq: set.seq,
                reason: None,
            },
            who("ops", &["admin"]),
        )
        .await;
    assert!(
        matches!(activated, Err(ChangeFailure::Sources(_))),
        "{activated:?}"
    );
    assert!(
        gate.read_changes(|changes| changes.active())
            .await
            .is_none(),
        "nothing was activated"
    );
    drop((gate, ledger));
    writer.close();
}
