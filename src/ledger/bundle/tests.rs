//! Bundles written by the exporter verify; altered ones are refused with
//! the right seq named.

use super::*;
use crate::decision::{
    Capture, Decision, DecisionId, EntrySignatures, Outcome, PayloadMode, Route, Timings,
};
use crate::ledger::checkpoint::NoteSigner;
use crate::ledger::entry::EntryBody;
use crate::ledger::export::{Filter, export_bundle, export_filtered};
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, SequencerConfig};
use crate::ledger::store::LedgerStore;
use ed25519_dalek::SigningKey;
use std::sync::Arc;

const ORIGIN: &str = "test.example/log";
const KEY: [u8; 32] = [7; 32];

fn decision(model: &str) -> Decision {
    Decision {
        id: DecisionId::random(),
        caller: "alice".into(),
        route: Route::KserveInfer,
        protocol: None,
        model: Some(model.into()),
        version: Some("1".into()),
        approval_seq: None,
        outcome: Outcome::Served,
        status: 200,
        error_code: None,
        timings: Timings::default(),
        request: Capture::of_complete(&bytes::Bytes::from_static(b"{\"in\":1}"), 64),
        response: Capture::of_complete(&bytes::Bytes::from_static(b"{\"out\":2}"), 64),
    }
}

fn verifier() -> NoteVerifier {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&KEY).verifying_key()).unwrap()
}

/// Appends `bodies` to `store` under `key`, three at a time, so they are
/// committed in batches of up to 3 (fewer when the writer wakes between
/// two of them).
async fn append(store: &Arc<MemStore>, key: [u8; 32], bodies: Vec<EntryBody>) {
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig {
            origin: ORIGIN.into(),
            signer: NoteSigner::new(ORIGIN, SigningKey::from_bytes(&key)).unwrap(),
            payload_mode: PayloadMode::Full,
            entry_signatures: EntrySignatures::On,
            queue_len: 64,
            max_batch: 3,
            metrics: crate::ledger::metrics::LedgerMetrics::new().unwrap(),
        },
    )
    .unwrap();
    for batch in bodies.chunks(3) {
        let appends: Vec<_> = batch.iter().map(|b| ledger.append(b.clone())).collect();
        for append in appends {
            append.await.unwrap();
        }
    }
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
}

fn decisions(models: &[&str]) -> Vec<EntryBody> {
    models
        .iter()
        .map(|model| EntryBody::Decision(Box::new(decision(model))))
        .collect()
}

/// 12 decisions in batches of 3, models `a` and `b` in turn, entries signed.
async fn ledger() -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    append(&store, KEY, decisions(&["a", "b"].repeat(6))).await;
    store
}

fn model_filter(model: &str) -> Filter {
    Filter {
        model: Some(model.into()),
        ..Filter::default()
    }
}

fn first_bad(dir: &Path, key: &NoteVerifier) -> (Option<u64>, String) {
    match verify_bundle(dir, key, None) {
        Err(BundleError::Bad { seq, item, reason }) => (seq, format!("{item}: {reason}")),
        other => panic!("expected a bad bundle, got {other:?}"),
    }
}

/// Rewrites line `index` of a bundle file.
fn edit_line(dir: &Path, file: &str, index: usize, edit: impl FnOnce(&str) -> Option<String>) {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    match edit(&lines[index]) {
        Some(line) => lines[index] = line,
        None => {
            lines.remove(index);
        }
    }
    std::fs::write(dir.join(file), lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn contiguous_bundles_verify_and_a_changed_entry_is_named() {
    let store = ledger().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    export_bundle(&*store, &verifier(), 5, Some(8), true, &dir, |_, _| {}).unwrap();
    let report = verify_bundle(&dir, &verifier(), None).unwrap();
    // Batches are of up to 3: the export ends at the checkpoint covering seq 7.
    let to = store.checkpoint_covering(7).unwrap().unwrap().0;
    assert_eq!(
        (report.form, report.from, report.to, report.entries),
        (BundleForm::Contiguous, 5, to, to - 5)
    );
    assert_eq!((report.payloads, report.signatures), (to - 5, to - 5));
    edit_line(&dir, "entries.jsonl", 1, |l| {
        Some(l.replace("alice", "alicf"))
    });
    let (seq, why) = first_bad(&dir, &verifier());
    assert_eq!(seq, Some(6), "{why}");
}

#[tokio::test]
async fn a_model_filtered_bundle_holds_that_models_decisions_with_proofs() {
    let store = ledger().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let exported = export_filtered(
        &*store,
        &verifier(),
        0,
        None,
        &model_filter("a"),
        true,
        &dir,
        |_, _| {},
    )
    .unwrap();
    assert_eq!((exported.entries, exported.size), (6, 12));
    let report = verify_bundle(&dir, &verifier(), None).unwrap();
    assert_eq!((report.form, report.entries), (BundleForm::Sparse, 6));
    assert_eq!((report.payloads, report.signatures), (6, 6));
    let entries = std::fs::read_to_string(dir.join("entries.jsonl")).unwrap();
    let seqs: Vec<u64> = entries
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [0, 2, 4, 6, 8, 10]);

    // Another key: the checkpoint is not signed by it.
    let other =
        NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&[9; 32]).verifying_key()).unwrap();
    let (seq, why) = first_bad(&dir, &other);
    assert!(
        seq.is_none() && why.starts_with("checkpoint of size 12"),
        "{why}"
    );

    // A proof hash changed: that entry's proof fails.
    let pristine = tmp.path().join("pristine");
    std::fs::create_dir(&pristine).unwrap();
    for file in std::fs::read_dir(&dir).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), pristine.join(file.file_name())).unwrap();
    }
    edit_line(&dir, "proofs.jsonl", 2, |l| {
        let mut proof: Value = serde_json::from_str(l).unwrap();
        proof["path"][0] = Value::String(base64_of(&[1; 32]));
        Some(proof.to_string())
    });
    assert_eq!(first_bad(&dir, &verifier()).0, Some(4));

    // An entry removed (its proof left): named.
    let dir = pristine;
    edit_line(&dir, "entries.jsonl", 3, |_| None);
    edit_line(&dir, "signatures.jsonl", 3, |_| None);
    edit_line(&dir, "payloads.jsonl", 3, |_| None);
    let (seq, why) = first_bad(&dir, &verifier());
    assert_eq!(seq, Some(6), "{why}");
}

#[tokio::test]
async fn a_time_range_bundle_is_gap_free_and_a_removed_entry_is_named() {
    let store = ledger().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    let filter = Filter {
        since: Some("1970-01-01T00:00:00Z".into()),
        ..Filter::default()
    };
    export_filtered(
        &*store,
        &verifier(),
        2,
        Some(7),
        &filter,
        false,
        &dir,
        |_, _| {},
    )
    .unwrap();
    let report = verify_bundle(&dir, &verifier(), None).unwrap();
    let size = store.checkpoint_covering(6).unwrap().unwrap().0;
    assert_eq!((report.from, report.to, report.size), (2, 7, size));
    edit_line(&dir, "entries.jsonl", 2, |_| None);
    let (seq, why) = first_bad(&dir, &verifier());
    assert_eq!(seq, Some(4), "{why}");
    assert!(why.contains("missing"), "{why}");

    let none = Filter {
        since: Some("2999-01-01T00:00:00Z".into()),
        ..Filter::default()
    };
    let empty = tmp.path().join("empty");
    assert!(
        export_filtered(
            &*store,
            &verifier(),
            0,
            None,
            &none,
            false,
            &empty,
            |_, _| {}
        )
        .is_err()
    );
    assert!(!empty.exists(), "no bundle for an empty selection");
}

#[tokio::test]
async fn key_rotations_are_carried_and_followed_in_both_forms() {
    const NEXT: [u8; 32] = [8; 32];
    let next = NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&NEXT).verifying_key()).unwrap();
    let store = Arc::new(MemStore::new());
    append(&store, KEY, decisions(&["a", "b", "a", "b", "a", "b"])).await;
    let rotation = EntryBody::KeyRotated {
        old_vkey: verifier().vkey(),
        new_vkey: next.vkey(),
    };
    append(&store, KEY, vec![rotation]).await; // seq 6, alone under the old key
    append(&store, NEXT, decisions(&["a", "b", "a"])).await; // seqs 7..10
    let tmp = tempfile::tempdir().unwrap();

    let whole = tmp.path().join("whole");
    export_bundle(&*store, &next, 0, None, false, &whole, |_, _| {}).unwrap();
    let report = verify_bundle(&whole, &verifier(), None).unwrap();
    assert_eq!((report.rotations, report.signatures), (1, 10));
    assert!(
        report.warnings.is_empty(),
        "the manifest names a key of the rotations"
    );
    let (_, why) = first_bad(&whole, &next);
    assert!(why.contains("key_rotated: old_vkey"), "{why}");

    let b = tmp.path().join("b");
    export_filtered(
        &*store,
        &next,
        0,
        None,
        &model_filter("b"),
        false,
        &b,
        |_, _| {},
    )
    .unwrap();
    let report = verify_bundle(&b, &verifier(), None).unwrap();
    assert_eq!(
        (report.entries, report.rotations),
        (5, 1),
        "b at 1, 3, 5, 8 and the rotation"
    );

    let after = tmp.path().join("after");
    export_bundle(&*store, &next, 7, None, false, &after, |_, _| {}).unwrap();
    assert!(verify_bundle(&after, &verifier(), Some(&next)).is_ok());
    let (_, why) = first_bad(&after, &verifier());
    assert!(
        why.starts_with("checkpoint of size 10: no signature by key"),
        "{why}"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
