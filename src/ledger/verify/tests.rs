//! Tampering of every kind is detected and the right seq named.

use super::*;
use crate::decision::{Capture, Decision, DecisionId, EntrySignatures, Outcome, Route, Timings};
use crate::ledger::entry::EntryBody;
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, SequencerConfig};
use ed25519_dalek::SigningKey;
use std::sync::Arc;

const ORIGIN: &str = "test.example/log";

fn decision() -> Decision {
    Decision {
        id: DecisionId::random(),
        caller: "alice".into(),
        route: Route::KserveInfer,
        protocol: None,
        model: Some("m".into()),
        version: Some("1".into()),
        approval_seq: None,
        path: "/v1/chat/completions".into(),
        cut: Default::default(),
        subject: None,
        auth: Default::default(),
        policy: None,
        outcome: Outcome::Served,
        status: 200,
        error_code: None,
        timings: Timings::default(),
        request: Capture::of_complete(&bytes::Bytes::from_static(b"{\"in\":1}"), 64),
        response: Capture::of_complete(&bytes::Bytes::from_static(b"{\"out\":2}"), 64),
    }
}

/// A store with `batches` commits of 3 decisions each, written by the real sequencer.
pub(super) async fn ledger_with(key: [u8; 32], batches: usize) -> Arc<MemStore> {
    ledger_signing(key, batches, EntrySignatures::Off).await
}

async fn ledger_signing(
    key: [u8; 32],
    batches: usize,
    entry_signatures: EntrySignatures,
) -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            ORIGIN,
            &SigningKey::from_bytes(&key),
            entry_signatures,
            64,
            3,
        ),
    )
    .unwrap();
    for _ in 0..batches {
        let appends: Vec<_> = (0..3)
            .map(|_| ledger.append(EntryBody::Decision(Box::new(decision()))))
            .collect();
        for append in appends {
            append.await.unwrap();
        }
    }
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    store
}

pub(super) fn verifier(key: [u8; 32]) -> NoteVerifier {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&key).verifying_key()).unwrap()
}

fn first_bad(store: &MemStore, key: [u8; 32]) -> (u64, String) {
    match verify_store(store, &verifier(key)) {
        Err(VerifyError::Bad { seq, reason }) => (seq, reason),
        other => panic!("expected a bad seq, got {other:?}"),
    }
}

#[tokio::test]
async fn an_untouched_ledger_verifies() {
    let store = ledger_with([1; 32], 4).await;
    let verified = verify_store(store.as_ref(), &verifier([1; 32])).unwrap();
    assert_eq!(verified.entries, 12);
    assert!(verified.checkpoints >= 4, "{verified:?}");
    assert_eq!(verified.latest_checkpoint_size, 12);
}

#[tokio::test]
async fn any_changed_byte_names_its_seq() {
    for seq in [0u64, 5, 11] {
        for position in [0usize, 10, 40] {
            let store = ledger_with([1; 32], 4).await;
            store.tamper(|entries, _| {
                let entry = entries.get_mut(&seq).unwrap();
                let at = position.min(entry.len() - 1);
                entry[at] ^= 0x01;
            });
            assert_eq!(
                first_bad(&store, [1; 32]).0,
                seq,
                "byte {position} of entry {seq}"
            );
        }
    }
}

#[tokio::test]
async fn deleted_swapped_and_truncated_entries_are_named() {
    let store = ledger_with([1; 32], 4).await;
    store.tamper(|entries, _| {
        entries.remove(&4);
    });
    let (seq, reason) = first_bad(&store, [1; 32]);
    assert_eq!((seq, reason.as_str()), (4, "entry missing"));

    let store = ledger_with([1; 32], 4).await;
    store.tamper(|entries, _| {
        let (a, b) = (entries[&6].clone(), entries[&7].clone());
        entries.insert(6, b);
        entries.insert(7, a);
    });
    assert_eq!(first_bad(&store, [1; 32]).0, 6);

    let store = ledger_with([1; 32], 4).await;
    store.tamper(|entries, _| {
        entries.remove(&11);
        entries.remove(&10);
    });
    let (seq, reason) = first_bad(&store, [1; 32]);
    assert_eq!(seq, 10, "{reason}");
    assert!(reason.contains("truncated"), "{reason}");
}

#[tokio::test]
async fn a_checkpoint_from_another_key_or_another_tree_is_named() {
    let store = ledger_with([1; 32], 4).await;
    let foreign = ledger_with([2; 32], 4).await;
    let foreign_note = foreign.checkpoints().unwrap().last().unwrap().1.clone();
    store.tamper(|_, checkpoints| {
        checkpoints.insert(12, foreign_note);
    });
    let (seq, reason) = first_bad(&store, [1; 32]);
    assert_eq!(seq, 11);
    assert!(reason.contains("no signature by key"), "{reason}");

    // Same key, different entries (a fork): signed, but not this tree.
    let store = ledger_with([1; 32], 4).await;
    let fork = ledger_with([1; 32], 4).await;
    let forked_note = fork.checkpoints().unwrap()[1].1.clone();
    let size = fork.checkpoints().unwrap()[1].0;
    store.tamper(|_, checkpoints| {
        checkpoints.insert(size, forked_note);
    });
    let (seq, reason) = first_bad(&store, [1; 32]);
    assert_eq!(seq, size - 1);
    assert!(reason.contains("root does not match"), "{reason}");
}

#[tokio::test]
async fn a_failing_store_acknowledges_nothing_and_recovers() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            ORIGIN,
            &SigningKey::from_bytes(&[1; 32]),
            crate::decision::EntrySignatures::Off,
            8,
            8,
        ),
    )
    .unwrap();
    ledger
        .append(EntryBody::Decision(Box::new(decision())))
        .await
        .unwrap();
    store.fail_commits(true);
    assert!(
        ledger
            .append(EntryBody::Decision(Box::new(decision())))
            .await
            .is_err()
    );
    assert_eq!(store.size().unwrap(), 1, "nothing written");
    store.fail_commits(false);
    // The writer retries on its own, within a few hundred milliseconds.
    while ledger.status().check().is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let ack = ledger
        .append(EntryBody::Decision(Box::new(decision())))
        .await
        .unwrap();
    assert_eq!(ack.seq, Some(1), "the failed batch's seq is reused: no gap");
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    verify_store(store.as_ref(), &verifier([1; 32])).unwrap();
}

#[tokio::test]
async fn per_entry_signatures_verify_and_a_moved_one_is_named() {
    let store = ledger_signing([1; 32], 3, EntrySignatures::On).await;
    verify_store(store.as_ref(), &verifier([1; 32])).unwrap();
    for seq in 0..9 {
        let signature = store
            .entry_signature(seq)
            .unwrap()
            .expect("every entry signed");
        assert!(verifier([1; 32]).verify_entry(&store.entry(seq).unwrap().unwrap(), &signature));
        assert!(!verifier([2; 32]).verify_entry(&store.entry(seq).unwrap().unwrap(), &signature));
    }
    let other = store.entry_signature(4).unwrap().unwrap();
    store.tamper_entry_signature(5, other);
    let (seq, reason) = first_bad(&store, [1; 32]);
    assert_eq!(seq, 5);
    assert!(reason.contains("per-entry signature"), "{reason}");
}

#[tokio::test]
async fn a_missing_signature_fails_where_the_log_records_signatures_on() {
    let store = Arc::new(MemStore::new());
    let record = crate::ledger::setting::record_if_changed(store.as_ref(), EntrySignatures::On)
        .unwrap()
        .expect("a new log records its setting");
    let decisions = || -> Vec<EntryBody> {
        (0..3)
            .map(|_| EntryBody::Decision(Box::new(decision())))
            .collect()
    };
    append_under(&store, [1; 32], decisions()).await;
    append_under(&store, [1; 32], vec![record]).await; // seq 3
    append_under(&store, [1; 32], decisions()).await;
    assert!(
        crate::ledger::setting::record_if_changed(store.as_ref(), EntrySignatures::On)
            .unwrap()
            .is_none(),
        "recorded once, until it changes"
    );
    verify_store(store.as_ref(), &verifier([1; 32])).unwrap();
    // Before the record nothing says signatures were on.
    store.drop_entry_signature(1);
    verify_store(store.as_ref(), &verifier([1; 32])).unwrap();
    store.drop_entry_signature(5);
    let (seq, reason) = first_bad(&store, [1; 32]);
    assert_eq!(seq, 5);
    assert!(
        reason.contains(
            "per-entry signature missing: entry_signatures is on here (recorded at seq 3)"
        ),
        "{reason}"
    );
}

/// Appends `count` entries to `store` under `key`, then closes the ledger.
async fn append_under(store: &Arc<MemStore>, key: [u8; 32], bodies: Vec<EntryBody>) {
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            ORIGIN,
            &SigningKey::from_bytes(&key),
            EntrySignatures::On,
            64,
            3,
        ),
    )
    .unwrap();
    for body in bodies {
        ledger.append(body).await.unwrap();
    }
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rotated_log_verifies_under_its_new_key_only() {
    let store = ledger_signing([1; 32], 2, EntrySignatures::On).await;
    let decisions = || {
        (0..4)
            .map(|_| EntryBody::Decision(Box::new(decision())))
            .collect()
    };
    append_under(&store, [1; 32], decisions()).await;
    let rotation = EntryBody::KeyRotated {
        old_vkey: verifier([1; 32]).vkey(),
        new_vkey: verifier([2; 32]).vkey(),
        by: None,
    };
    append_under(&store, [1; 32], vec![rotation]).await;
    append_under(&store, [2; 32], decisions()).await;
    let verified = verify_store(store.as_ref(), &verifier([2; 32])).unwrap();
    assert_eq!(verified.entries, 15);

    let (seq, reason) = first_bad(&store, [1; 32]);
    assert_eq!(seq, 14);
    assert!(
        reason.contains("does not end at the configured key"),
        "{reason}"
    );

    // A signature moved after the rotation is still named by its seq.
    let other = store.entry_signature(12).unwrap().unwrap();
    store.tamper_entry_signature(13, other);
    let (seq, reason) = first_bad(&store, [2; 32]);
    assert_eq!(seq, 13);
    assert!(reason.contains("per-entry signature"), "{reason}");
}

/// The index is read a second at a time; a row pointing elsewhere is
/// still named by the entry it should point at.
#[tokio::test]
async fn a_decision_index_row_pointing_elsewhere_is_named() {
    let store = ledger_with([1; 32], 4).await;
    let entry: serde_json::Value =
        serde_json::from_slice(&store.entry(7).unwrap().unwrap()).unwrap();
    let id = entry["decision_id"].as_str().unwrap().to_owned();
    let mut moved = crate::ledger::store::CommitBatch::default();
    moved
        .decisions
        .push((*DecisionId::parse(&id).unwrap().as_bytes(), 3));
    store.commit(&moved).unwrap();
    // That commit of no entries also stored an empty checkpoint at size 0.
    store.tamper(|_, checkpoints| {
        checkpoints.remove(&0);
    });
    let (seq, reason) = first_bad(&store, [1; 32]);
    assert_eq!(seq, 7, "{reason}");
    assert_eq!(
        reason,
        format!("decision index does not point at this entry for {id}")
    );
}

#[tokio::test]
async fn a_cited_previous_checkpoint_must_be_the_same_keys_under_another_origin() {
    use crate::ledger::checkpoint::{Checkpoint, NoteSigner};
    let note = |key: [u8; 32], origin: &str| {
        let body = Checkpoint {
            origin: origin.to_owned(),
            size: 6,
            root: [7; 32],
        }
        .body();
        NoteSigner::new(origin, SigningKey::from_bytes(&key))
            .unwrap()
            .sign(&body)
            .unwrap()
    };
    let restarted = |previous: String| EntryBody::LedgerRestarted {
        damaged_store: None,
        reason: "left".to_owned(),
        previous_checkpoint: Some(previous),
    };
    let linked = Arc::new(MemStore::new());
    append_under(
        &linked,
        [1; 32],
        vec![restarted(note([1; 32], "old.example/log"))],
    )
    .await;
    let verified = verify_store(linked.as_ref(), &verifier([1; 32])).unwrap();
    let previous = verified.continues.unwrap();
    assert_eq!(
        (previous.origin.as_str(), previous.size),
        ("old.example/log", 6)
    );

    let forged = Arc::new(MemStore::new());
    append_under(
        &forged,
        [1; 32],
        vec![restarted(note([2; 32], "old.example/log"))],
    )
    .await;
    let (seq, reason) = first_bad(&forged, [1; 32]);
    assert_eq!(seq, 0);
    assert!(
        reason.contains("not signed by this log's first key"),
        "{reason}"
    );

    let own = Arc::new(MemStore::new());
    append_under(&own, [1; 32], vec![restarted(note([1; 32], ORIGIN))]).await;
    let (seq, reason) = first_bad(&own, [1; 32]);
    assert_eq!(seq, 0);
    assert!(reason.contains("own origin"), "{reason}");
}
