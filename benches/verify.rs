//! Verification of a whole ledger on all cores against the hashing limit:
//! `store` runs `verify_store` (parse, canonical form, chain, tree,
//! checkpoints, index) over an in-memory store of 100 000 decision
//! entries; `hash_limit` only computes the BLAKE3 chain hash and the
//! SHA-256 leaf of the same bytes on all cores.
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
use govgate::ledger::tree::leaf_hash;
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
                        part.iter()
                            .map(|bytes| (blake3::hash(bytes), leaf_hash(bytes)))
                            .fold(0u8, |acc, (a, b)| acc ^ a.as_bytes()[0] ^ b[0])
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
