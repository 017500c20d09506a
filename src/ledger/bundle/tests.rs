//! Bundles written by the exporter verify; altered ones are refused with
//! the right seq named.

use super::*;
use crate::decision::{Capture, Decision, DecisionId, EntrySignatures, Outcome, Route, Timings};
use crate::ledger::entry::EntryBody;
use crate::ledger::export::{BundleOptions, Filter, export_bundle, export_filtered};
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, SequencerConfig};
use crate::ledger::store::LedgerStore;
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;
use std::sync::Arc;

const ORIGIN: &str = "test.example/log";
const KEY: [u8; 32] = [7; 32];

pub(super) fn decision(model: &str) -> Decision {
    Decision {
        id: DecisionId::random(),
        caller: "alice".into(),
        route: Route::KserveInfer,
        protocol: None,
        model: Some(model.into()),
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

pub(super) fn verifier() -> NoteVerifier {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&KEY).verifying_key()).unwrap()
}

/// Appends `bodies` to `store` under `key`, three at a time, so they are
/// committed in batches of up to 3 (fewer when the writer wakes between
/// two of them).
pub(super) async fn append(store: &Arc<MemStore>, key: [u8; 32], bodies: Vec<EntryBody>) {
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

pub(super) fn first_bad(dir: &Path, key: &NoteVerifier) -> (Option<u64>, String) {
    evidence::refresh_file_list(dir);
    match verify_bundle(dir, key, None) {
        Err(BundleError::Bad { seq, item, reason }) => (seq, format!("{item}: {reason}")),
        other => panic!("expected a bad bundle, got {other:?}"),
    }
}

/// Rewrites line `index` of a bundle file.
pub(super) fn edit_line(
    dir: &Path,
    file: &str,
    index: usize,
    edit: impl FnOnce(&str) -> Option<String>,
) {
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
    export_bundle(
        &*store,
        &verifier(),
        5,
        Some(8),
        &BundleOptions::payloads(true),
        &dir,
        |_, _| {},
    )
    .unwrap();
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
        by: Some(crate::ledger::entry::ActedBy {
            principal: "ops-lead".into(),
            roles: vec!["admin".into()],
            issuer: Some("https://id.example".into()),
        }),
    };
    append(&store, KEY, vec![rotation]).await; // seq 6, alone under the old key
    append(&store, NEXT, decisions(&["a", "b", "a"])).await; // seqs 7..10
    let tmp = tempfile::tempdir().unwrap();

    let whole = tmp.path().join("whole");
    export_bundle(
        &*store,
        &next,
        0,
        None,
        &BundleOptions::payloads(false),
        &whole,
        |_, _| {},
    )
    .unwrap();
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
    export_bundle(
        &*store,
        &next,
        7,
        None,
        &BundleOptions::payloads(false),
        &after,
        |_, _| {},
    )
    .unwrap();
    assert!(verify_bundle(&after, &verifier(), Some(&next)).is_ok());
    // The rotation before `from` is a proven context entry: the first key
    // alone leads to the key in force at `from`.
    let report = verify_bundle(&after, &verifier(), None).unwrap();
    assert_eq!(report.rotations, 1);
    match verify_bundle(&after, &verifier(), Some(&verifier())) {
        Err(BundleError::Bad { item, reason, .. }) => {
            assert_eq!(item, "keys");
            assert!(
                reason.contains("is not the key in force at from"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let (_, why) = first_bad(&after, &next);
    assert!(why.contains("key_rotated: old_vkey"), "{why}");
}

/// A model-version entry of `kind` for `model` version `version`, its
/// state after the change `state` (members as section 12 lists them).
fn version_entry(kind: &'static str, model: &str, version: &str, state: &str) -> EntryBody {
    let members = serde_json::json!({
        "model": model,
        "version": version,
        "principal": "root",
        "principal_roles": ["admin"],
        "change_ref": "CHG-1",
        "risk_class": "limited",
        "approvals": [],
        "state": state,
    });
    let Value::Object(members) = members else {
        unreachable!()
    };
    EntryBody::Governance { kind, members }
}

fn approved_decision(model: &str, approval_seq: u64) -> EntryBody {
    let mut decision = decision(model);
    decision.approval_seq = Some(approval_seq);
    EntryBody::Decision(Box::new(decision))
}

/// 0-4: versions of `a` and `b` proposed, approved (a at 1, b at 3), a
/// activated; 5-10: decisions of a and b in turn, each naming its
/// approval; 11: a's version retired; 12: b's version 2 proposed.
async fn governed_ledger() -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    let mut bodies = vec![
        version_entry("version_proposed", "a", "1", "proposed"),
        version_entry("version_approved", "a", "1", "approved"),
        version_entry("version_proposed", "b", "1", "proposed"),
        version_entry("version_approved", "b", "1", "approved"),
        version_entry("version_activated", "a", "1", "active"),
    ];
    for _ in 0..3 {
        bodies.push(approved_decision("a", 1));
        bodies.push(approved_decision("b", 3));
    }
    bodies.push(version_entry("version_retired", "a", "1", "retired"));
    bodies.push(version_entry("version_proposed", "b", "2", "proposed"));
    append(&store, KEY, bodies).await;
    // Where the sequencer cut its batches depends on timing, and a filtered
    // export reaches up to the checkpoint covering its last seq: keep only
    // the checkpoint of the whole log so every export here sees all 13.
    store.tamper(|_, checkpoints| {
        let last = checkpoints.pop_last().expect("a checkpoint");
        *checkpoints = BTreeMap::from([last]);
    });
    store
}

fn seqs_of(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("entries.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn copy_bundle(dir: &Path, name: &str) -> std::path::PathBuf {
    let to = dir.with_file_name(name);
    std::fs::create_dir(&to).unwrap();
    for file in std::fs::read_dir(dir).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
    }
    to
}

/// Line `index` of a bundle file.
fn line_of(dir: &Path, file: &str, index: usize) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .lines()
        .nth(index)
        .unwrap()
        .to_owned()
}

/// Inserts `line` before line `index` of a bundle file.
fn insert_line(dir: &Path, file: &str, index: usize, line: String) {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.insert(index, line);
    std::fs::write(dir.join(file), lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn a_model_bundle_holds_its_version_entries_wherever_they_are_and_approvals_resolve() {
    let store = governed_ledger().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    // From seq 7: the approval (1) and activation (4) of a come before it,
    // the retirement (11) after the last decision.
    let exported = export_filtered(
        &*store,
        &verifier(),
        7,
        Some(11),
        &model_filter("a"),
        true,
        &dir,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(seqs_of(&dir), [0, 1, 4, 7, 9, 11]);
    assert_eq!(exported.entries, 6);
    let report = verify_bundle(&dir, &verifier(), None).unwrap();
    assert_eq!((report.from, report.to, report.entries), (7, 11, 6));
    assert_eq!(
        (report.payloads, report.signatures),
        (2, 3),
        "no signature before from: the key in force there is not the bundle's to say"
    );
    let b = tmp.path().join("b");
    export_filtered(
        &*store,
        &verifier(),
        0,
        None,
        &model_filter("b"),
        false,
        &b,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(seqs_of(&b), [2, 3, 6, 8, 10, 12]);
    assert!(verify_bundle(&b, &verifier(), None).is_ok());

    // The approval removed with its proof: the first decision naming it fails.
    let removed = copy_bundle(&dir, "removed");
    edit_line(&removed, "entries.jsonl", 1, |_| None);
    edit_line(&removed, "proofs.jsonl", 1, |_| None);
    let (seq, why) = first_bad(&removed, &verifier());
    assert_eq!(seq, Some(7), "{why}");
    assert!(why.contains("approval_seq 1 is not in the bundle"), "{why}");

    // Another model's version entry: not selected by the filter.
    let foreign = copy_bundle(&dir, "foreign");
    insert_line(
        &foreign,
        "entries.jsonl",
        2,
        line_of(&b, "entries.jsonl", 1),
    );
    let (seq, why) = first_bad(&foreign, &verifier());
    assert_eq!(seq, Some(3), "{why}");
    assert!(
        why.contains("not a decision, stream_ended nor model-version entry"),
        "{why}"
    );

    // A decision of the model before from: outside the range.
    let whole_a = tmp.path().join("whole-a");
    export_filtered(
        &*store,
        &verifier(),
        0,
        None,
        &model_filter("a"),
        false,
        &whole_a,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(seqs_of(&whole_a), [0, 1, 4, 5, 7, 9, 11]);
    let early = copy_bundle(&dir, "early");
    insert_line(
        &early,
        "entries.jsonl",
        3,
        line_of(&whole_a, "entries.jsonl", 3),
    );
    let (seq, why) = first_bad(&early, &verifier());
    assert_eq!(seq, Some(5), "{why}");
    assert!(why.contains("outside the bundle's range 7..11"), "{why}");

    // Seqs out of order: the second one named.
    let order = copy_bundle(&dir, "order");
    let first = line_of(&order, "entries.jsonl", 0);
    edit_line(&order, "entries.jsonl", 0, |_| None);
    insert_line(&order, "entries.jsonl", 1, first);
    let (seq, why) = first_bad(&order, &verifier());
    assert_eq!(seq, Some(0), "{why}");

    // A signature for an entry before from.
    let signed = copy_bundle(&dir, "signed");
    let signature = store.entry_signature(1).unwrap().unwrap();
    insert_line(
        &signed,
        "signatures.jsonl",
        0,
        serde_json::json!({"seq": 1, "signature": base64_of(&signature)}).to_string(),
    );
    let (seq, why) = first_bad(&signed, &verifier());
    assert_eq!(seq, Some(1), "{why}");
    assert!(why.contains("before from"), "{why}");

    // A time-range bundle stays gap-free and takes no entry before from.
    let range = tmp.path().join("range");
    let filter = Filter {
        since: Some("1970-01-01T00:00:00Z".into()),
        ..Filter::default()
    };
    export_filtered(
        &*store,
        &verifier(),
        5,
        Some(9),
        &filter,
        false,
        &range,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(seqs_of(&range), [5, 6, 7, 8]);
    assert!(verify_bundle(&range, &verifier(), None).is_ok());
}

#[tokio::test]
async fn an_approval_seq_must_lead_to_the_approval_of_the_same_model_and_version() {
    let store = Arc::new(MemStore::new());
    append(
        &store,
        KEY,
        vec![
            version_entry("version_proposed", "a", "1", "proposed"), // 0
            version_entry("version_approved", "a", "1", "proposed"), // 1: one of two approvals
            version_entry("version_approved", "a", "1", "approved"), // 2
            version_entry("version_approved", "a", "2", "approved"), // 3
            approved_decision("a", 2),                               // 4: right
            approved_decision("a", 0),                               // 5: a proposal
            approved_decision("a", 1),                               // 6: approval incomplete
            approved_decision("a", 3),                               // 7: another version
            approved_decision("a", 8),                               // 8: a decision
            EntryBody::Decision(Box::new(decision("a"))),            // 9: null
        ],
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    for (decision_seq, needle) in [
        (5, "its kind is \"version_proposed\""),
        (6, "its state is \"proposed\""),
        (7, "its version is \"2\", the decision's \"1\""),
        (8, "its kind is \"decision\""),
    ] {
        let dir = tmp.path().join(format!("d{decision_seq}"));
        export_filtered(
            &*store,
            &verifier(),
            decision_seq,
            Some(decision_seq + 1),
            &model_filter("a"),
            false,
            &dir,
            |_, _| {},
        )
        .unwrap();
        let (seq, why) = first_bad(&dir, &verifier());
        assert_eq!(seq, Some(decision_seq), "{why}");
        assert!(why.contains(needle), "{why}");
    }
    let fine = tmp.path().join("fine");
    for (from, to) in [(4, 5), (9, 10)] {
        let dir = fine.with_extension(format!("{from}"));
        export_filtered(
            &*store,
            &verifier(),
            from,
            Some(to),
            &model_filter("a"),
            false,
            &dir,
            |_, _| {},
        )
        .unwrap();
        assert!(verify_bundle(&dir, &verifier(), None).is_ok());
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
