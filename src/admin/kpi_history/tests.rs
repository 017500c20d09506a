//! The history read over an in-memory store: the range's snapshots of
//! the model only, those held in memory not read again, the register in
//! force before them found through the governance index, and the bounds
//! said when they stop the read.

use super::*;
use crate::ledger::memstore::MemStore;
use crate::ledger::store::CommitBatch;

/// Entry `seq` at minute `seq` of 2026-12-06 10:00 (kind and members).
fn entry(seq: u64, kind: &str, model: &str) -> Vec<u8> {
    let time = format!("2026-12-06T{:02}:{:02}:00.000Z", 10 + seq / 60, seq % 60);
    serde_json::to_vec(&json!({"seq": seq, "time": time, "kind": kind, "model": model})).unwrap()
}

/// A store of `kinds` (kind, model) at seqs 0.., governance entries
/// (registers) indexed.
fn store(kinds: &[(&str, &str)]) -> MemStore {
    let store = MemStore::new();
    let mut batch = CommitBatch::default();
    for (seq, (kind, model)) in kinds.iter().enumerate() {
        let seq = seq as u64;
        batch.entries.push((seq, entry(seq, kind, model)));
        if *kind != "decision" && *kind != SNAPSHOT_KIND {
            batch.governance.push(seq);
        }
    }
    batch.checkpoint = (kinds.len() as u64, String::new());
    store.commit(&batch).unwrap();
    store
}

/// Nothing held in memory: everything is read from the store.
fn none_held() -> Covered {
    Covered {
        since: u64::MAX,
        snapshots: Vec::new(),
    }
}

fn seqs(history: &Value, member: &str) -> Vec<u64> {
    history[member]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn the_ranges_snapshots_of_the_model_come_with_the_register_in_force() {
    let store = store(&[
        (REGISTER_KIND, ""),       // 0: replaced by 2
        ("decision", "scorer"),    // 1
        (REGISTER_KIND, ""),       // 2: in force at 5
        ("version_approved", "x"), // 3
        (SNAPSHOT_KIND, "scorer"), // 4: before the range
        (SNAPSHOT_KIND, "scorer"), // 5
        (SNAPSHOT_KIND, "other"),  // 6
        ("decision", "scorer"),    // 7
        (REGISTER_KIND, ""),       // 8
        (SNAPSHOT_KIND, "scorer"), // 9
        (SNAPSHOT_KIND, "scorer"), // 10: at `to`, outside
    ]);
    let history = read_history(
        &store,
        "scorer",
        Some("2026-12-06T10:05:00Z"),
        Some("2026-12-06T10:10:00Z"),
        none_held(),
    )
    .unwrap();
    assert_eq!(seqs(&history, "snapshots"), [5, 9]);
    assert_eq!(seqs(&history, "registers"), [2, 8]);
    assert_eq!(history["register_in_force"], "found");
    assert_eq!(history["range"], json!({"from_seq": 5, "to_seq": 10}));
    assert_eq!(history["read"], 5);
    assert_eq!(history["read_from_seq"], 5);
    assert_eq!(history["limited_by"], Value::Null);
    assert_eq!(history["source"], "ledger");

    // The whole log: the register read before the first snapshot is in
    // force, the earlier one is not listed.
    let all = read_history(&store, "scorer", None, None, none_held()).unwrap();
    assert_eq!(seqs(&all, "snapshots"), [4, 5, 9, 10]);
    assert_eq!(seqs(&all, "registers"), [2, 8]);

    let bad = read_history(&store, "scorer", Some("yesterday"), None, none_held());
    assert!(matches!(bad, Err(HistoryError::Time(why)) if why.starts_with("from:")));
}

#[test]
fn the_latest_snapshots_are_kept_and_the_bound_is_said() {
    let mut kinds = vec![(REGISTER_KIND, "")];
    kinds.extend(std::iter::repeat_n(
        (SNAPSHOT_KIND, "scorer"),
        MAX_SNAPSHOTS + 3,
    ));
    let store = store(&kinds);
    let history = read_history(&store, "scorer", None, None, none_held()).unwrap();
    let kept = seqs(&history, "snapshots");
    assert_eq!(kept.len(), MAX_SNAPSHOTS);
    assert_eq!(kept[0], 4);
    assert_eq!(*kept.last().unwrap(), MAX_SNAPSHOTS as u64 + 3);
    assert_eq!(history["limited_by"], "points");
    assert_eq!(seqs(&history, "registers"), [0]);
}

#[test]
fn snapshots_held_in_memory_are_not_read_again() {
    let store = store(&[
        (SNAPSHOT_KIND, "scorer"), // 0
        (REGISTER_KIND, ""),       // 1
        (SNAPSHOT_KIND, "scorer"), // 2: held from here on
        ("decision", "scorer"),    // 3
        (SNAPSHOT_KIND, "scorer"), // 4
    ]);
    let held =
        |seq: u64| json!({"seq": seq, "kind": SNAPSHOT_KIND, "model": "scorer", "held": true});
    let recent = Covered {
        since: 2,
        snapshots: vec![held(2), held(4)],
    };
    let history = read_history(&store, "scorer", None, None, recent).unwrap();
    assert_eq!(seqs(&history, "snapshots"), [0, 2, 4]);
    assert_eq!(history["snapshots"][0]["held"], Value::Null);
    assert_eq!(history["snapshots"][1]["held"], true);
    assert_eq!(history["from_memory"], 2);
    assert_eq!(history["read"], 2, "only the entries below seq 2");
    assert_eq!(history["read_from_seq"], 0);
    assert_eq!(seqs(&history, "registers"), [1]);
    // The register recorded after the first snapshot, none before it.
    assert_eq!(history["limited_by"], Value::Null);
}

#[test]
fn at_most_the_read_budget_is_read_below_them() {
    let mut kinds = vec![(SNAPSHOT_KIND, "scorer"), (REGISTER_KIND, "")];
    kinds.extend(std::iter::repeat_n(
        ("decision", "scorer"),
        READ_BUDGET as usize + 2 * BLOCK as usize,
    ));
    let store = store(&kinds);
    let size = kinds.len() as u64;
    let history = read_history(&store, "scorer", None, None, none_held()).unwrap();
    assert_eq!(history["limited_by"], "read_budget", "{}", history["read"]);
    assert!(seqs(&history, "snapshots").is_empty());
    assert_eq!(history["read"], READ_BUDGET.div_ceil(BLOCK) * BLOCK);
    assert_eq!(
        history["read_from_seq"],
        size - READ_BUDGET.div_ceil(BLOCK) * BLOCK
    );
    // The register in force at the range's end is still named.
    assert_eq!(seqs(&history, "registers"), [1]);
}

#[test]
fn no_snapshot_in_the_range_still_names_the_register_in_force() {
    let log = store(&[
        (REGISTER_KIND, ""),
        ("decision", "scorer"),
        ("decision", "scorer"),
    ]);
    let history = read_history(
        &log,
        "scorer",
        Some("2026-12-06T10:01:00Z"),
        None,
        none_held(),
    )
    .unwrap();
    assert!(seqs(&history, "snapshots").is_empty());
    assert_eq!(seqs(&history, "registers"), [0]);

    let none = store(&[(SNAPSHOT_KIND, "scorer"), ("version_approved", "x")]);
    let history = read_history(&none, "scorer", None, None, none_held()).unwrap();
    assert_eq!(history["register_in_force"], "none_recorded");
}

#[test]
fn the_register_search_is_bounded_and_says_so() {
    let mut kinds = vec![(REGISTER_KIND, "")];
    kinds.extend(std::iter::repeat_n(
        ("review_opened", "scorer"),
        REGISTER_BUDGET,
    ));
    kinds.push((SNAPSHOT_KIND, "scorer"));
    let store = store(&kinds);
    let history = read_history(&store, "scorer", None, None, none_held()).unwrap();
    assert_eq!(seqs(&history, "snapshots"), [REGISTER_BUDGET as u64 + 1]);
    assert!(seqs(&history, "registers").is_empty());
    assert_eq!(history["register_in_force"], "not_found_within_budget");
}
