//! Ledger append throughput against the bare store, same run, same bytes,
//! same flush cadence: `ledger` appends decision entries through the real
//! sequencer (chain, tree, signed checkpoint, sled commit, fsync) in
//! batches of 256; `bare_sled` inserts values of the same size with
//! sequential keys and flushes plus fsyncs every 256.
//!
//! Run: `cargo bench --bench ledger_append`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use govgate::decision::{Capture, Decision, DecisionId, Outcome, PayloadMode, Route, Timings};
use govgate::ledger::checkpoint::NoteSigner;
use govgate::ledger::entry::EntryBody;
use govgate::ledger::metrics::LedgerMetrics;
use govgate::ledger::sequencer::{Ledger, SequencerConfig};
use govgate::ledger::store::SledStore;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 256;

/// The allocator the gateway binary uses, so the bench measures the same code.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn decision() -> Decision {
    Decision {
        id: DecisionId::random(),
        caller: "svc-loan-origination".into(),
        route: Route::KserveInfer,
        protocol: Some(govgate::decision::Protocol::KserveV2),
        model: Some("credit-scoring".into()),
        version: Some("2".into()),
        outcome: Outcome::Served,
        status: 200,
        error_code: None,
        timings: Timings {
            received_unix_ms: 1_795_779_308_556,
            upstream_head_us: Some(1_109),
            complete_us: 1_132,
        },
        request: Capture::of_complete(&Bytes::from_static(&[b'r'; 84]), 65_536),
        response: Capture::of_complete(&Bytes::from_static(&[b's'; 138]), 65_536),
    }
}

fn ledger(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let origin = "bench.govgate.example/append";
    let (ledger, _writer) = Ledger::open(
        store,
        SequencerConfig {
            origin: origin.into(),
            signer: NoteSigner::new(origin, ed25519_dalek::SigningKey::from_bytes(&[5; 32]))
                .unwrap(),
            payload_mode: PayloadMode::Full,
            entry_signatures: govgate::decision::EntrySignatures::Off,
            queue_len: 4 * BATCH,
            max_batch: BATCH,
            metrics: LedgerMetrics::new().unwrap(),
        },
    )
    .unwrap();
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
                    let appends: Vec<_> = (0..BATCH)
                        .map(|_| ledger.append(EntryBody::Decision(Box::new(decision()))))
                        .collect();
                    for append in appends {
                        append.await.unwrap();
                    }
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
        &EntryBody::Decision(Box::new(decision())),
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
