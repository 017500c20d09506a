//! Ledger append throughput against the bare store, same run, same bytes,
//! same flush cadence: `ledger` appends decision entries through the real
//! sequencer (chain, tree, signed checkpoint, sled commit, fsync) in
//! batches of 256; `bare_sled` inserts values of the same size with
//! sequential keys and flushes plus fsyncs every 256.
//!
//! Run: `cargo bench --bench ledger_append`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use govgate::decision::{EntrySignatures, PayloadMode};
use govgate::ledger::entry::EntryBody;
use govgate::ledger::store::SledStore;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 256;

/// The allocator the gateway binary uses, so the bench measures the same code.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn ledger(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let origin = "bench.govgate.example/append";
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let (ledger, _writer) = common::sequencer(store, origin, &key, EntrySignatures::Off, BATCH);
    let mut group = c.benchmark_group("ledger_append");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("ledger/batch_256", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    common::append_decisions(&ledger, BATCH).await;
                }
                started.elapsed()
            })
        });
    });
    group.finish();
}

fn bare_sled(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .mode(sled::Mode::HighThroughput)
        .open()
        .unwrap();
    let data = File::open(dir.path().join("db")).unwrap();
    // Values as large as the canonical decision entries the ledger writes.
    let sealed = govgate::ledger::entry::seal(
        0,
        std::time::SystemTime::now(),
        "bench.govgate.example/append",
        &[0; 32],
        &EntryBody::Decision(Box::new(common::decision())),
        PayloadMode::Full,
        Some(&govgate::ledger::entry::Salts {
            request: [0; 32],
            response: [0; 32],
        }),
    )
    .unwrap();
    let value = vec![b'x'; sealed.canonical.len()];
    let mut key = 0u64;
    let mut group = c.benchmark_group("ledger_append");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("bare_sled/batch_256", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                for _ in 0..BATCH {
                    key += 1;
                    db.insert(key.to_be_bytes(), value.as_slice()).unwrap();
                }
                db.flush().unwrap();
                data.sync_data().unwrap();
            }
            started.elapsed()
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = ledger, bare_sled
}
criterion_main!(benches);
