//! A log written before streamed decisions had two entries verifies
//! unchanged: the whole log of tests/data/upgrade/v0.1-a2c4271 (its
//! contiguous bundle from seq 0), stored as the writer stores it.

use super::*;
use crate::decision::DecisionId;
use crate::ledger::memstore::MemStore;
use crate::ledger::store::CommitBatch;
use crate::ledger::tree::{Frontier, leaf_hash};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/upgrade/v0.1-a2c4271"
);

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

#[test]
fn a_log_from_before_stream_entries_verifies_unchanged() {
    let mut batch = CommitBatch::default();
    let mut frontier = Frontier::new();
    for (seq, line) in (0u64..).zip(read("bundle-full/entries.jsonl").lines()) {
        let bytes = line.as_bytes().to_vec();
        batch.nodes.extend(frontier.push(leaf_hash(&bytes)));
        let entry: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        if entry["kind"] == "decision" {
            let id = DecisionId::parse(entry["decision_id"].as_str().unwrap()).unwrap();
            batch.decisions.push((*id.as_bytes(), seq));
        }
        batch.entries.push((seq, bytes));
    }
    batch.checkpoint = (
        batch.entries.len() as u64,
        read("bundle-full/checkpoint.txt"),
    );
    let store = MemStore::new();
    store.commit(&batch).unwrap();
    let verifier = NoteVerifier::parse(read("log.vkey").trim()).unwrap();
    let verified = verify_store(&store, &verifier).unwrap();
    assert_eq!(
        verified,
        Verified {
            entries: 21,
            checkpoints: 1,
            latest_checkpoint_size: 21,
            open_streams: Vec::new(),
            continues: None,
            rotation_seqs: Vec::new(),
        }
    );
}
