//! `context.jsonl` read a line at a time: a bundle whose payloads were
//! erased after it verifies, and a context line whose inclusion path does
//! not lead to the last carried checkpoint is named, the first of them
//! whichever way the others are wrong.

use super::tests::{append, decision, edit_line, first_bad, verifier};
use super::*;
use crate::decision::Decision;
use crate::ledger::entry::EntryBody;
use crate::ledger::export::{BundleOptions, export_bundle};
use crate::ledger::memstore::MemStore;
use crate::ledger::store::LedgerStore;
use std::sync::Arc;

const KEY: [u8; 32] = [7; 32];
const DECISIONS: u64 = 9;

/// 9 decisions, then the erasure of each one's payload (seqs 9..18).
async fn erased() -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    let decisions: Vec<Decision> = (0..DECISIONS).map(|_| decision("m")).collect();
    let bodies = decisions
        .iter()
        .map(|d| EntryBody::Decision(Box::new(d.clone())))
        .collect();
    append(&store, KEY, bodies).await;
    let erasures = decisions
        .iter()
        .enumerate()
        .map(|(seq, d)| EntryBody::PayloadErased {
            decision_id: d.id.to_string(),
            erased_seq: seq as u64,
            reason: "retention".into(),
            by: None,
        })
        .collect();
    append(&store, KEY, erasures).await;
    let seqs: Vec<u64> = (0..DECISIONS).collect();
    store.erase_payloads(&seqs).unwrap();
    store
}

/// The decisions' bundle: its context carries the nine erasures.
async fn bundle(tmp: &Path) -> std::path::PathBuf {
    let store = erased().await;
    let dir = tmp.join("b");
    let options = BundleOptions::payloads(true);
    export_bundle(
        &*store,
        &verifier(),
        0,
        Some(DECISIONS),
        &options,
        &dir,
        |_, _| {},
    )
    .unwrap();
    dir
}

/// Line `index` of `context.jsonl` with the first hash of its path
/// replaced by `hash` (base64).
fn other_path(dir: &Path, index: usize, hash: &str) {
    edit_line(dir, "context.jsonl", index, |line| {
        let mut value: Value = serde_json::from_str(line).unwrap();
        value["path"][0] = hash.into();
        Some(value.to_string())
    });
}

const ZEROS: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const ONES: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

#[tokio::test]
async fn erasures_after_the_range_excuse_its_missing_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = bundle(tmp.path()).await;
    let context = std::fs::read_to_string(dir.join("context.jsonl")).unwrap();
    assert_eq!(context.lines().count(), DECISIONS as usize);
    let report = verify_bundle(&dir, &verifier(), None).unwrap();
    assert_eq!((report.entries, report.payloads), (DECISIONS, 0));

    // One erasure dropped: its decision's payload is missing.
    edit_line(&dir, "context.jsonl", 4, |_| None);
    let (seq, why) = first_bad(&dir, &verifier());
    assert_eq!(seq, Some(4), "{why}");
    assert!(why.contains("payload missing"), "{why}");
}

#[tokio::test]
async fn the_first_context_line_whose_path_leads_elsewhere_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = bundle(tmp.path()).await;
    // Line 6 (the erasure at seq 15) wrong alone.
    other_path(&dir, 6, ZEROS);
    let (seq, why) = first_bad(&dir, &verifier());
    assert_eq!(seq, Some(15), "{why}");
    assert!(
        why.contains("its inclusion proof into the checkpoint of size 18 does not verify"),
        "{why}"
    );
    // Lines 3 and 7 wrong as well, each another way: line 3 comes first.
    other_path(&dir, 7, ONES);
    other_path(&dir, 3, ONES);
    let (seq, why) = first_bad(&dir, &verifier());
    assert_eq!(seq, Some(12), "{why}");
    // A line proven into another size is named as such.
    edit_line(&dir, "context.jsonl", 1, |line| {
        let mut value: Value = serde_json::from_str(line).unwrap();
        value["size"] = 17.into();
        Some(value.to_string())
    });
    let (seq, why) = first_bad(&dir, &verifier());
    assert_eq!(seq, Some(10), "{why}");
    assert!(
        why.contains("proven into size 17, not the last carried checkpoint (18)"),
        "{why}"
    );
}
