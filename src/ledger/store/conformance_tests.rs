//! Both stores answer the same: the decision index across commits and id
//! seconds, governance seqs, and range reads that agree with the lookups
//! one seq at a time. The sled store is checked again after reopening,
//! with nothing in memory.

use super::{CommitBatch, LedgerStore, SledStore};
use crate::ledger::memstore::MemStore;
use crate::ledger::tree::{Frontier, Hash, leaf_hash};
use crate::ledger::wal::WalStore;
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;

/// The second every commit also writes ids of: spread across all commits.
const LONG_SECOND: u32 = 1_795_000_000;

fn id(second: u32, n: u64) -> [u8; 16] {
    let mut id = [0; 16];
    id[..4].copy_from_slice(&second.to_be_bytes());
    id[4..].copy_from_slice(&blake3::hash(&n.to_be_bytes()).as_bytes()[..12]);
    id
}

/// What was committed, to check the store against.
#[derive(Default, Clone)]
struct Expected {
    size: u64,
    decisions: HashMap<[u8; 16], u64>,
    governance: Vec<u64>,
    subjects: BTreeMap<[u8; 32], Vec<u64>>,
}

/// 40 commits of 1 to 13 entries. Decision ids of a new second every three
/// commits, with every fifth one of [`LONG_SECOND`]; every seventh entry a
/// governance event; entries of even commits signed. The last commit gives
/// an id already used a new seq (the later row holds).
fn commits() -> Vec<CommitBatch> {
    let mut batches = Vec::new();
    let mut frontier = Frontier::new();
    let mut seq = 0u64;
    for commit in 0..40u32 {
        let mut batch = CommitBatch::default();
        for _ in 0..1 + (commit * 7) % 13 {
            let entry = format!("{{\"seq\":{seq}}}").into_bytes();
            batch.nodes.extend(frontier.push(leaf_hash(&entry)));
            batch.entries.push((seq, entry));
            if seq % 4 != 3 {
                let second = if seq.is_multiple_of(5) {
                    LONG_SECOND
                } else {
                    LONG_SECOND + 10 + commit / 3
                };
                batch.decisions.push((id(second, seq), seq));
                if seq.is_multiple_of(3) {
                    batch.subjects.push(([(seq % 4) as u8; 32], seq));
                }
            }
            if seq.is_multiple_of(7) {
                batch.governance.push(seq);
            }
            if commit % 2 == 0 {
                batch.signatures.push([seq as u8; 64]);
            }
            seq += 1;
        }
        if commit == 39 {
            batch.decisions.push((id(LONG_SECOND, 0), seq - 1));
        }
        batch.checkpoint = (seq, format!("note {seq}"));
        batches.push(batch);
    }
    batches
}

/// Commits `batches`; what the store then holds, together with `before`.
fn commit_all(store: &dyn LedgerStore, batches: &[CommitBatch], before: Expected) -> Expected {
    let mut expected = before;
    for batch in batches {
        store.commit(batch).unwrap();
        expected.decisions.extend(batch.decisions.iter().copied());
        expected.governance.extend(&batch.governance);
        for (subject, seq) in &batch.subjects {
            expected.subjects.entry(*subject).or_default().push(*seq);
        }
        expected.size = batch.checkpoint.0;
    }
    expected
}

fn fill(store: &dyn LedgerStore) -> Expected {
    commit_all(store, &commits(), Expected::default())
}

fn check(store: &dyn LedgerStore, expected: &Expected) {
    assert_eq!(store.size().unwrap(), expected.size);
    check_index(store, expected);
    assert_eq!(store.governance_seqs().unwrap(), expected.governance);
    assert_eq!(expected.subjects.len(), 3);
    for (subject, seqs) in &expected.subjects {
        assert_eq!(&store.subject_seqs(subject).unwrap(), seqs, "{subject:?}");
    }
    assert!(store.subject_seqs(&[9; 32]).unwrap().is_empty());
    check_ranges(store, expected.size);
}

fn check_index(store: &dyn LedgerStore, expected: &Expected) {
    assert!(
        expected.decisions.len() > 150,
        "{}",
        expected.decisions.len()
    );
    for (id, seq) in &expected.decisions {
        assert_eq!(store.decision_seq(id).unwrap(), Some(*seq), "{id:?}");
    }
    // Never committed, sharing a second with committed ids: below, above
    // and between their suffixes; and seconds with no rows.
    for second in [LONG_SECOND, LONG_SECOND + 12, LONG_SECOND + 5, 0] {
        for n in 10_000..10_050 {
            assert_eq!(store.decision_seq(&id(second, n)).unwrap(), None);
        }
        for fill in [0x00, 0xff] {
            let mut missing = [fill; 16];
            missing[..4].copy_from_slice(&second.to_be_bytes());
            assert_eq!(store.decision_seq(&missing).unwrap(), None);
        }
    }
    // Each second's rows, read whole, give the same answers.
    let mut by_second: BTreeMap<[u8; 4], HashMap<[u8; 16], u64>> = BTreeMap::new();
    for (id, seq) in &expected.decisions {
        let second = [id[0], id[1], id[2], id[3]];
        by_second.entry(second).or_default().insert(*id, *seq);
    }
    assert!(by_second.len() > 10);
    for (second, ids) in by_second {
        let mut read = HashMap::new();
        store
            .decisions_of_second(second, &mut |id, seq| {
                assert_eq!(id[..4], second);
                read.insert(*id, seq);
            })
            .unwrap();
        assert_eq!(read, ids, "second {second:?}");
    }
}

fn check_ranges(store: &dyn LedgerStore, size: u64) {
    for (from, to) in [
        (0, size),
        (1, 2),
        (5, 70),
        (63, 65),
        (size - 3, size + 10),
        (7, 7),
    ] {
        let mut entries = Vec::new();
        store
            .entries_in(from, to, &mut |seq, bytes| {
                entries.push((seq, bytes.to_vec()));
                ControlFlow::Continue(())
            })
            .unwrap();
        let one_by_one: Vec<(u64, Vec<u8>)> = (from..to)
            .filter_map(|seq| Some((seq, store.entry(seq).unwrap()?)))
            .collect();
        assert_eq!(entries, one_by_one, "entries {from}..{to}");

        let mut leaves = Vec::new();
        store
            .leaf_nodes_in(from, to, &mut |leaf, nodes| {
                leaves.push((leaf, nodes.to_vec()))
            })
            .unwrap();
        let one_by_one: Vec<(u64, Vec<Hash>)> = (from..to)
            .map(|leaf| {
                let nodes = (0..=(leaf + 1).trailing_zeros())
                    .map_while(|level| store.node(level as u8, leaf >> level).unwrap())
                    .collect();
                (leaf, nodes)
            })
            .collect();
        assert_eq!(leaves, one_by_one, "nodes {from}..{to}");
        if to <= size {
            assert!(leaves.iter().all(|(_, nodes)| !nodes.is_empty()));
        }

        let mut signatures = Vec::new();
        store
            .signatures_in(from, to, &mut |seq, signature| {
                signatures.push((seq, *signature))
            })
            .unwrap();
        let one_by_one: Vec<(u64, [u8; 64])> = (from..to)
            .filter_map(|seq| Some((seq, store.entry_signature(seq).unwrap()?)))
            .collect();
        assert_eq!(signatures, one_by_one, "signatures {from}..{to}");
    }
    assert!(store.entry_signature(0).unwrap().is_some());
    assert!(
        store.entry_signature(1).unwrap().is_none(),
        "commit 1 unsigned"
    );
    let mut seen = Vec::new();
    store
        .entries_in(3, size, &mut |seq, _| {
            seen.push(seq);
            if seq == 9 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(seen, (3..=9).collect::<Vec<_>>(), "stops at Break");
}

#[test]
fn the_memory_store_answers_lookups_and_ranges_alike() {
    let store = MemStore::new();
    let expected = fill(&store);
    assert_eq!(expected.decisions[&id(LONG_SECOND, 0)], expected.size - 1);
    check(&store, &expected);
}

/// Commits all, discards the last 10 commits, checks the store holds the
/// first 30 exactly, commits the 10 again and checks the whole.
fn discard_and_commit_again(store: &dyn LedgerStore) {
    let batches = commits();
    let (first, rest) = batches.split_at(30);
    let after_first = commit_all(&MemStore::new(), first, Expected::default());
    commit_all(store, &batches, Expected::default());
    assert!(
        store.discard_above(after_first.size + 1).is_err(),
        "only back to a checkpoint"
    );
    let removed = store.discard_above(after_first.size).unwrap();
    assert_eq!(removed, batches[39].checkpoint.0 - after_first.size);
    assert_eq!(store.discard_above(after_first.size).unwrap(), 0);
    check(store, &after_first);
    assert_eq!(
        store.decision_seq(&id(LONG_SECOND, 0)).unwrap(),
        Some(0),
        "the earlier row of a reused id holds again"
    );
    assert_eq!(store.checkpoints().unwrap().len(), 30);
    assert_eq!(store.entry(after_first.size).unwrap(), None);
    assert_eq!(store.payload(after_first.size).unwrap(), None);
    let whole = commit_all(store, rest, after_first);
    check(store, &whole);
}

#[test]
fn both_stores_discard_back_to_a_checkpoint_and_take_the_seqs_again() {
    discard_and_commit_again(&MemStore::new());
    let dir = tempfile::tempdir().unwrap();
    discard_and_commit_again(&SledStore::open(dir.path()).unwrap());
    let expected = fill(&MemStore::new());
    check(&SledStore::open(dir.path()).unwrap(), &expected);
}

#[test]
fn the_sled_store_answers_alike_before_and_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let store = SledStore::open(dir.path()).unwrap();
        let expected = fill(&store);
        check(&store, &expected);
        expected
    };
    // Reopened: nothing remembered, every decision found from its rows.
    let store = SledStore::open(dir.path()).unwrap();
    check(&store, &expected);
}

/// Its store stays behind (a tick of an hour): reads come from memory, from
/// the store, or both, as the test moves batches along.
fn wal_over(dir: &std::path::Path, inner: Arc<dyn LedgerStore>) -> WalStore {
    WalStore::open_flushing_every(
        &crate::ledger::wal::dir_of(dir),
        inner,
        std::time::Duration::from_secs(3600),
    )
    .unwrap()
}

#[test]
fn the_write_ahead_store_answers_alike_from_memory_and_store_and_after_replay() {
    let dir = tempfile::tempdir().unwrap();
    let batches = commits();
    let (first, rest) = batches.split_at(20);
    let expected = {
        let wal = wal_over(dir.path(), Arc::new(SledStore::open(dir.path()).unwrap()));
        let half = commit_all(&wal, first, Expected::default());
        // The first half goes to the store; the second stays in memory.
        wal.apply_now().unwrap();
        assert_eq!(wal.size().unwrap(), half.size);
        let whole = commit_all(&wal, rest, half);
        check(&wal, &whole);
        // The store behind fails from here on: the file keeps everything.
        wal.faults().fail_applies(u64::MAX);
        whole
    };
    // The applier gave up on closing (injected failures): the store holds
    // the first half only, the file all of it.
    let sled = SledStore::open(dir.path()).unwrap();
    assert_eq!(sled.size().unwrap(), batches[19].checkpoint.0);
    drop(sled);
    let wal = wal_over(dir.path(), Arc::new(SledStore::open(dir.path()).unwrap()));
    assert!(wal.torn_tail().is_none());
    check(&wal, &expected);
}
