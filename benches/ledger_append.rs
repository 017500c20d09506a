//! Ledger append throughput against the bare store, same run, same flush
//! cadence:
//! - `ledger`: decision entries through the real sequencer and the
//!   gateway's store (chain, tree, signed checkpoint, one write-ahead
//!   record and its fdatasync per commit; the sled store written and
//!   flushed in the background) in commits of 256, with two commits' worth
//!   in flight, as under load;
//! - `ledger_sled_commit`: the same with every commit written to sled and
//!   fsynced before its acknowledgement (no write-ahead file);
//! - `bare_file/same_bytes`: per 256 entries, one append of as many bytes
//!   as the ledger stores for them to a file, and one fdatasync: the floor
//!   of the write-ahead commit;
//! - `bare_sled/same_bytes`: per entry, one sled insert (sequential key) of
//!   a value as large as everything the ledger stores for that entry
//!   (canonical entry, payload record, index pair, tree nodes), flushed and
//!   fsynced every 256;
//! - `bare_sled/entry_bytes`: the same with values only as large as the
//!   canonical entry.
//!
//! Run: `cargo bench --bench ledger_append`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use govgate::decision::{EntrySignatures, PayloadMode};
use govgate::ledger::entry::EntryBody;
use govgate::ledger::store::{LedgerStore, SledStore};
use govgate::ledger::wal::WalStore;
use std::fs::File;
use std::io::{Seek, Write};
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
    let origin = "bench.govgate.example/append";
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let mut group = c.benchmark_group("ledger_append");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for name in ["ledger/batch_256", "ledger_sled_commit/batch_256"] {
        let dir = tempfile::tempdir().unwrap();
        let sled = Arc::new(SledStore::open(dir.path()).unwrap());
        let store: Arc<dyn LedgerStore> = if name.starts_with("ledger/") {
            Arc::new(WalStore::open(&govgate::ledger::wal::dir_of(dir.path()), sled).unwrap())
        } else {
            sled
        };
        let (ledger, _writer) = common::sequencer(store, origin, &key, EntrySignatures::Off, BATCH);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    common::append_streaming(&ledger, iters as usize * BATCH, 2 * BATCH).await;
                    started.elapsed()
                })
            });
        });
    }
    group.finish();
}

/// Bytes the ledger stores per decision entry: `(canonical entry, all)`.
fn bytes_per_entry() -> (usize, usize) {
    let salts = govgate::ledger::entry::Salts {
        request: [0; 32],
        response: [0; 32],
    };
    let decision = common::decision();
    let sealed = govgate::ledger::entry::seal(
        0,
        std::time::SystemTime::now(),
        "bench.govgate.example/append",
        &[0; 32],
        &EntryBody::Decision(Box::new(decision.clone())),
        PayloadMode::Full,
        Some(&salts),
    )
    .unwrap();
    let payload = govgate::ledger::sequencer::payload_record(&salts, &decision).len();
    // Index: 12 bytes of id and an 8-byte seq per decision (the row keys
    // are per commit). Tree: leaves 0..n finish 2n - popcount(n) nodes of
    // 32 bytes, about 64 bytes per entry.
    let all = sealed.canonical.len() + payload + 12 + 8 + 64;
    (sealed.canonical.len(), all)
}

fn bare_sled(c: &mut Criterion) {
    let (entry, all) = bytes_per_entry();
    let mut group = c.benchmark_group("ledger_append");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for (name, size) in [
        ("bare_sled/same_bytes", all),
        ("bare_sled/entry_bytes", entry),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path())
            .mode(sled::Mode::HighThroughput)
            .segment_size(8 << 20)
            .cache_capacity(64 << 20)
            .open()
            .unwrap();
        let data = File::open(dir.path().join("db")).unwrap();
        let value = vec![b'x'; size];
        let mut key = 0u64;
        group.bench_function(name, |b| {
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
    }
    let dir = tempfile::tempdir().unwrap();
    let mut file = File::create(dir.path().join("wal")).unwrap();
    let record = vec![b'x'; all * BATCH];
    let mut written = 0;
    group.bench_function("bare_file/same_bytes", |b| {
        b.iter(|| {
            // Starts over at 16 MiB, as the write-ahead file's segments do.
            if written >= 16 << 20 {
                file.set_len(0).unwrap();
                file.seek(std::io::SeekFrom::Start(0)).unwrap();
                written = 0;
            }
            file.write_all(&record).unwrap();
            file.sync_data().unwrap();
            written += record.len();
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
