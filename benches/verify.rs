//! Verification of a whole ledger on all cores against the hashing limit:
//! `store` runs `verify_store` (canonical form, chain, tree, checkpoints,
//! index) over an in-memory store of 100 000 decision entries;
//! `hash_limit` only hashes what any verifier of these entries must hash,
//! on all cores: the BLAKE3 chain hash and the SHA-256 leaf of each
//! entry's bytes, and the SHA-256 interior nodes above the leaves (one per
//! entry, less one), without which no stored node or checkpoint root can
//! be checked. It reads nothing from the store.
//!
//! Run: `cargo bench --bench verify`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use govgate::decision::EntrySignatures;
use govgate::ledger::checkpoint::NoteSigner;
use govgate::ledger::memstore::MemStore;
use govgate::ledger::store::LedgerStore;
use govgate::ledger::tree::{Hash, leaf_hash, node_hash};
use govgate::ledger::verify::verify_store;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENTRIES: u64 = 100_000;
const ORIGIN: &str = "bench.govgate.example/verify";

fn build() -> (Arc<MemStore>, NoteSigner) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(MemStore::new());
    let key = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    let (ledger, writer) =
        common::sequencer(store.clone(), ORIGIN, &key, EntrySignatures::Off, 1024);
    runtime.block_on(async {
        for _ in 0..ENTRIES / 1000 {
            common::append_decisions(&ledger, 1000).await;
        }
    });
    drop(ledger);
    writer.close();
    (store, NoteSigner::new(ORIGIN, key).unwrap())
}

fn verify(c: &mut Criterion) {
    let (store, signer) = build();
    let verifier = signer.verifier();
    let entries: Vec<Vec<u8>> = (0..ENTRIES)
        .map(|seq| store.entry(seq).unwrap().unwrap())
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(ENTRIES));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("store/100k", |b| {
        b.iter(|| verify_store(store.as_ref(), &verifier).unwrap());
    });
    group.bench_function("hash_limit/100k", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for part in entries.chunks(entries.len().div_ceil(workers)) {
                    scope.spawn(move || {
                        let mut level: Vec<Hash> = part
                            .iter()
                            .map(|bytes| {
                                std::hint::black_box(blake3::hash(bytes));
                                leaf_hash(bytes)
                            })
                            .collect();
                        // Pairwise up to this part's root: as many interior
                        // nodes as the whole tree has, less a few per part.
                        while level.len() > 1 {
                            let pairs = level.chunks_exact(2);
                            let odd = pairs.remainder().first().copied();
                            level = pairs
                                .map(|pair| node_hash(&pair[0], &pair[1]))
                                .chain(odd)
                                .collect();
                        }
                        std::hint::black_box(level)
                    });
                }
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = verify
}
criterion_main!(benches);
