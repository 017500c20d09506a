//! Inclusion proofs in a tree of 10 million entries: building the proof
//! from complete-subtree hashes held in memory, and verifying it; then
//! building it from the real sled store (`sled/...`: 10 million small
//! entries committed in batches of 4096, about 1.5 GB on disk, built once
//! before measuring; `TREE_PROOF_SLED_SIZE` sets another size).
//!
//! Run: `cargo bench --bench tree_proof`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use govgate::ledger::store::{CommitBatch, LedgerStore, SledStore, StoreNodes};
use govgate::ledger::tree::{
    Frontier, Hash, NodeSource, inclusion_proof, leaf_hash, root, verify_inclusion,
};
use std::convert::Infallible;

const SIZE: u64 = 10_000_000;

/// Complete-subtree hashes per level, as the store keeps them.
struct Levels(Vec<Vec<Hash>>);

impl NodeSource for Levels {
    type Error = Infallible;
    fn node(&self, level: u8, index: u64) -> Result<Hash, Infallible> {
        Ok(self.0[level as usize][index as usize])
    }
}

fn build() -> Levels {
    let mut levels: Vec<Vec<Hash>> = vec![Vec::new(); 64];
    let mut frontier = Frontier::new();
    for seq in 0..SIZE {
        for (level, index, hash) in frontier.push(leaf_hash(&seq.to_be_bytes())) {
            debug_assert_eq!(levels[level as usize].len() as u64, index);
            levels[level as usize].push(hash);
        }
    }
    Levels(levels)
}

fn tree_proof(c: &mut Criterion) {
    let tree = build();
    let root = root(&tree, SIZE).unwrap();
    let mut index = 0x9e37_79b9_7f4a_7c15u64;
    let mut group = c.benchmark_group("tree_proof");
    group.bench_function("inclusion_proof/10M", |b| {
        b.iter(|| {
            index = index
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            inclusion_proof(&tree, index % SIZE, SIZE).unwrap()
        });
    });
    let seq = 7_654_321u64;
    let proof = inclusion_proof(&tree, seq, SIZE).unwrap();
    let leaf = leaf_hash(&seq.to_be_bytes());
    group.bench_function("verify_inclusion/10M", |b| {
        b.iter(|| assert!(verify_inclusion(&leaf, seq, SIZE, &proof, &root)));
    });
    group.finish();
}

/// A sled store of `size` entries (each its seq's 8 bytes) with every node.
fn build_sled(dir: &std::path::Path, size: u64) -> SledStore {
    const BATCH: u64 = 4096;
    let store = SledStore::open(dir).unwrap();
    let mut frontier = Frontier::new();
    let started = std::time::Instant::now();
    for first in (0..size).step_by(BATCH as usize) {
        let mut batch = CommitBatch::default();
        for seq in first..(first + BATCH).min(size) {
            let entry = seq.to_be_bytes().to_vec();
            batch.nodes.extend(frontier.push(leaf_hash(&entry)));
            batch.entries.push((seq, entry));
        }
        let end = first + batch.entries.len() as u64;
        batch.checkpoint = (end, format!("checkpoint of size {end}"));
        store.commit(&batch).unwrap();
        if end % (1 << 20) < BATCH {
            eprintln!(
                "sled tree: {end} of {size} entries, {:?}",
                started.elapsed()
            );
        }
    }
    store
}

fn sled_proof(c: &mut Criterion) {
    let size = std::env::var("TREE_PROOF_SLED_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SIZE);
    let dir = tempfile::tempdir().unwrap();
    let store = build_sled(dir.path(), size);
    let nodes = StoreNodes(&store);
    let root = root(&nodes, size).unwrap();
    let mut index = 0x9e37_79b9_7f4a_7c15u64;
    let mut group = c.benchmark_group("tree_proof");
    group.bench_function(format!("sled/proof_and_verify/{size}"), |b| {
        b.iter(|| {
            index = index
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let seq = index % size;
            let proof = inclusion_proof(&nodes, seq, size).unwrap();
            let leaf = leaf_hash(&store.entry(seq).unwrap().unwrap());
            assert!(verify_inclusion(&leaf, seq, size, &proof, &root));
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = tree_proof, sled_proof
}
criterion_main!(benches);
