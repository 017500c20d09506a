//! Per-entry signing mode against the bare Ed25519 signing rate, same run:
//! `ledger` appends decisions through the real sequencer (commits of 256,
//! two commits' worth in flight) with `entry_signatures = on`, through
//! the write-ahead file (one record and fdatasync per commit) in front of
//! an in-memory store (so sled does not hide the signing cost);
//! `bare_ed25519` signs 256 messages of the same size on one core.
//!
//! Run: `cargo bench --bench entry_signing`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};
use govgate::decision::EntrySignatures;
use govgate::ledger::memstore::MemStore;
use govgate::ledger::wal::WalStore;
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 256;
const ORIGIN: &str = "bench.govgate.example/sign";

fn signing(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::from_bytes(&[4; 32]);
    let dir = tempfile::tempdir().unwrap();
    let store = WalStore::open(dir.path(), Arc::new(MemStore::new())).unwrap();
    let (ledger, _writer) =
        common::sequencer(Arc::new(store), ORIGIN, &key, EntrySignatures::On, BATCH);
    let mut group = c.benchmark_group("entry_signing");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("ledger/batch_256", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                common::append_streaming(&ledger, iters as usize * BATCH, 2 * BATCH).await;
                started.elapsed()
            })
        });
    });
    // Messages as long as the signed entry messages.
    let message = vec![b'x'; 720];
    group.bench_function("bare_ed25519/256", |b| {
        b.iter(|| {
            (0..BATCH)
                .map(|_| key.sign(&message).to_bytes()[0])
                .fold(0u8, |acc, x| acc ^ x)
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = signing
}
criterion_main!(benches);
