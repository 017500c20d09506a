//! The one-pass verification of a contiguous bundle reports what checking
//! one rule after the other reports: a problem of an earlier rule wins
//! even when the pass meets it after another; lines out of seq order
//! (which the exporter never writes) are verified in memory instead.

use super::*;
use crate::decision::{Decision, EntrySignatures, fixture};
use crate::ledger::entry::EntryBody;
use crate::ledger::export::{BundleOptions, export_bundle};
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, SequencerConfig};
use ed25519_dalek::SigningKey;
use std::sync::Arc;

const ORIGIN: &str = "test.example/pass";
const KEY: [u8; 32] = [9; 32];

fn verifier() -> NoteVerifier {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&KEY).verifying_key()).unwrap()
}

fn decision() -> EntryBody {
    EntryBody::Decision(Box::new(Decision {
        request: fixture::captured(b"{\"in\":1}"),
        response: fixture::captured(b"{\"out\":2}"),
        ..fixture::streamed_chat()
    }))
}

/// A bundle of `count` signed decisions with payloads, in batches of 4.
async fn bundle(count: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            ORIGIN,
            &SigningKey::from_bytes(&KEY),
            EntrySignatures::On,
            64,
            4,
        ),
    )
    .unwrap();
    for _ in 0..count.div_ceil(4) {
        let appends: Vec<_> = (0..4).map(|_| ledger.append(decision())).collect();
        for append in appends {
            append.await.unwrap();
        }
    }
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let options = BundleOptions::payloads(true);
    export_bundle(&*store, &verifier(), 0, None, &options, &dir, |_, _| {}).unwrap();
    (tmp, dir)
}

fn lines(dir: &Path, file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    text.lines().map(str::to_owned).collect()
}

fn write(dir: &Path, file: &str, lines: &[String]) {
    std::fs::write(dir.join(file), lines.join("\n") + "\n").unwrap();
    evidence::refresh_file_list(dir);
}

fn refused(dir: &Path) -> (Option<u64>, String) {
    match verify_bundle(dir, &verifier(), None) {
        Err(BundleError::Bad { seq, item, reason }) => (seq, format!("{item}: {reason}")),
        other => panic!("expected a bad bundle, got {other:?}"),
    }
}

#[tokio::test]
async fn a_problem_of_an_earlier_rule_wins_over_one_the_pass_met_first() {
    let (_tmp, dir) = bundle(12).await;
    // The first payload line opens no commitment (the payload rule, met
    // at the start of the pass)...
    let mut payloads = lines(&dir, "payloads.jsonl");
    let salt_at = payloads[0].find("\"request_salt\":\"").unwrap() + 16;
    let flipped = if &payloads[0][salt_at..=salt_at] == "0" {
        "1"
    } else {
        "0"
    };
    payloads[0].replace_range(salt_at..=salt_at, flipped);
    write(&dir, "payloads.jsonl", &payloads);
    let (seq, why) = refused(&dir);
    assert_eq!(seq, Some(0), "{why}");
    assert!(why.contains("payloads.jsonl line 1"), "{why}");
    // ...and an entry near the end is altered (the chain, an earlier rule).
    let mut entries = lines(&dir, "entries.jsonl");
    entries[10] = entries[10].replace("alice", "alicf");
    write(&dir, "entries.jsonl", &entries);
    let (seq, why) = refused(&dir);
    assert_eq!(seq, Some(10), "{why}");
    assert!(
        why.contains("hash chain broken between seq 10 and seq 11"),
        "{why}"
    );
    // The manifest's file list comes first of all.
    std::fs::write(dir.join("context.jsonl"), "").unwrap();
    let (seq, why) = refused(&dir);
    assert_eq!(seq, None, "{why}");
    assert!(why.contains("files: context.jsonl"), "{why}");
}

#[tokio::test]
async fn lines_out_of_seq_order_are_verified_in_memory_with_the_same_verdicts() {
    let (_tmp, dir) = bundle(12).await;
    let whole = verify_bundle(&dir, &verifier(), None).unwrap();
    assert_eq!(
        (whole.entries, whole.payloads, whole.signatures),
        (12, 12, 12)
    );
    for file in ["signatures.jsonl", "payloads.jsonl"] {
        let mut reversed = lines(&dir, file);
        reversed.reverse();
        write(&dir, file, &reversed);
    }
    assert_eq!(verify_bundle(&dir, &verifier(), None).unwrap(), whole);
    let mut payloads = lines(&dir, "payloads.jsonl");
    payloads.insert(5, payloads[2].clone());
    write(&dir, "payloads.jsonl", &payloads);
    let (seq, why) = refused(&dir);
    assert!(
        why.contains("repeats the payload of line 3"),
        "{seq:?} {why}"
    );
}
