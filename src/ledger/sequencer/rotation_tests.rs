//! Online key rotation in the writer: the switch happens between batches,
//! the rotation's batch ends with it, and a failed commit of that batch
//! leaves the old key in force.

use super::*;
use crate::ledger::memstore::MemStore;
use crate::ledger::verify::verify_store;
use ed25519_dalek::SigningKey;
use std::time::Duration;

const ORIGIN: &str = "test.example/rotation";

fn signer(seed: u8) -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[seed; 32])).unwrap()
}

fn open(store: Arc<MemStore>) -> (Ledger, LedgerWriter) {
    Ledger::open(
        store,
        SequencerConfig::for_tests(
            ORIGIN,
            &SigningKey::from_bytes(&[1; 32]),
            EntrySignatures::On,
            256,
            64,
        ),
    )
    .unwrap()
}

#[tokio::test]
async fn later_batches_are_signed_by_the_new_key_and_the_log_verifies() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = open(store.clone());
    ledger.append(EntryBody::GatewayStopped).await.unwrap();
    // Entries queued behind the rotation go into the next batch.
    let rotated = ledger.rotate_key(signer(2), None).unwrap();
    let behind: Vec<_> = (0..5)
        .map(|_| ledger.append(EntryBody::GatewayStopped))
        .collect();
    let rotation_seq = rotated.await.unwrap().seq.unwrap();
    for entry in behind {
        entry.await.unwrap();
    }
    assert_eq!(ledger.key_in_force().vkey(), signer(2).verifier().vkey());
    assert!(matches!(
        ledger.rotate_key(signer(2), None),
        Err(RotateError::SameKey)
    ));
    let (size, _) = store.checkpoint_covering(rotation_seq).unwrap().unwrap();
    assert_eq!(size, rotation_seq + 1, "the rotation ends its batch");
    drop(ledger);
    writer.close();
    verify_store(store.as_ref(), &signer(2).verifier()).unwrap();
    assert!(verify_store(store.as_ref(), &signer(1).verifier()).is_err());
}

#[tokio::test]
async fn a_rotation_whose_commit_fails_leaves_the_old_key_in_force() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = open(store.clone());
    ledger.append(EntryBody::GatewayStopped).await.unwrap();
    store.fail_commits(true);
    ledger
        .rotate_key(signer(2), None)
        .unwrap()
        .await
        .unwrap_err();
    store.fail_commits(false);
    // The writer resumes by itself; then entries are signed by the old key.
    let mut appended = false;
    for _ in 0..200 {
        if ledger.append(EntryBody::GatewayStopped).await.is_ok() {
            appended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(appended, "the ledger resumed");
    assert_eq!(ledger.key_in_force().vkey(), signer(1).verifier().vkey());
    // Nothing is left parked: another rotation may go ahead.
    ledger.rotate_key(signer(3), None).unwrap().await.unwrap();
    drop(ledger);
    writer.close();
    verify_store(store.as_ref(), &signer(3).verifier()).unwrap();
}

#[tokio::test]
async fn the_key_rotated_from_is_refused_at_the_next_open() {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = open(store.clone());
    ledger.append(EntryBody::GatewayStopped).await.unwrap();
    ledger.rotate_key(signer(2), None).unwrap().await.unwrap();
    drop(ledger);
    writer.close();
    // As after a crash before the new key reached the key file.
    let refused = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            ORIGIN,
            &SigningKey::from_bytes(&[1; 32]),
            EntrySignatures::On,
            256,
            64,
        ),
    );
    assert!(
        matches!(refused, Err(LedgerError::RotatedAway { seq: 1, .. })),
        "{:?}",
        refused.err()
    );
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            ORIGIN,
            &SigningKey::from_bytes(&[2; 32]),
            EntrySignatures::On,
            256,
            64,
        ),
    )
    .unwrap();
    ledger.append(EntryBody::GatewayStopped).await.unwrap();
    drop(ledger);
    writer.close();
    verify_store(store.as_ref(), &signer(2).verifier()).unwrap();
}
