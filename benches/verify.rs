//! Verification of a whole ledger on all cores against the hashing limit:
//! `store` runs `verify_store` (canonical form, chain, tree, checkpoints,
//! index) over an in-memory store of 100 000 decision entries;
//! `hash_limit` only hashes what any verifier of these entries must hash,
//! on all cores: the BLAKE3 chain hash and the SHA-256 leaf of each
//! entry's bytes, and the SHA-256 interior nodes above the leaves (one per
//! entry, less one), without which no stored node or checkpoint root can
//! be checked. It reads nothing from the store.
//!
//! `bundle` runs `verify_bundle` over the same entries exported with their
//! payloads (`export_bundle`, as `govgate export --payloads` does) into a
//! temporary directory; `bundle_hash_limit` only hashes what any verifier
//! of that bundle must hash, on all cores: the SHA-256 of every file's
//! bytes (the manifest's file list; one file's digest is one stream), the
//! leaves and interior nodes, the BLAKE3 chain, and the BLAKE3 commitment
//! of each payload's request and response (decoded beforehand).
//!
//! `bundle_chunked_zstd` and `bundle_chunked_none` run `verify_bundle`
//! over the same entries exported as a chunked bundle (`govgate-bundle/3`,
//! chunks of 10 000 entries, zstd or uncompressed), whose chunks are
//! checked in parallel; their `..._hash_limit` hashes what any verifier of
//! that bundle must hash, split per chunk across all cores: the SHA-256 of
//! each chunk file's stored bytes, the leaves, nodes and chain of each
//! chunk's entries, and its payloads' commitments; with zstd also the
//! decompression of every chunk file (no verifier can read a line without
//! it).
//!
//! Run: `cargo bench --bench verify`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use govgate::decision::EntrySignatures;
use govgate::ledger::bundle::verify_bundle;
use govgate::ledger::checkpoint::NoteSigner;
use govgate::ledger::entry::commitment;
use govgate::ledger::export::{BundleOptions, Chunking, Compression, export_bundle};
use govgate::ledger::memstore::MemStore;
use govgate::ledger::store::LedgerStore;
use govgate::ledger::tree::{Hash, leaf_hash, node_hash};
use govgate::ledger::verify::verify_store;
use sha2::Digest as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
                    scope.spawn(move || tree_and_chain(part));
                }
            })
        });
    });

    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let options = BundleOptions::payloads(true);
    export_bundle(
        store.as_ref(),
        &verifier,
        0,
        None,
        &options,
        &bundle,
        |_, _| {},
    )
    .unwrap();
    let source = store;
    let files: Vec<Vec<u8>> = [
        "entries.jsonl",
        "signatures.jsonl",
        "payloads.jsonl",
        "checkpoints.jsonl",
    ]
    .iter()
    .filter_map(|name| std::fs::read(bundle.join(name)).ok())
    .collect();
    let payloads = decoded_payloads(&std::fs::read(bundle.join("payloads.jsonl")).unwrap());
    let report = verify_bundle(&bundle, &verifier, None).unwrap();
    assert_eq!((report.entries, report.payloads), (ENTRIES, ENTRIES));
    group.bench_function("bundle/100k", |b| {
        b.iter(|| verify_bundle(&bundle, &verifier, None).unwrap());
    });
    group.bench_function("bundle_hash_limit/100k", |b| {
        b.iter(|| bundle_hash_limit(&files, &entries, &payloads, workers));
    });
    for (name, compression) in [("zstd", Compression::Zstd), ("none", Compression::None)] {
        let chunked = dir.path().join(name);
        let options = BundleOptions {
            chunks: Some(Chunking {
                entries: 10_000,
                compression,
            }),
            ..BundleOptions::payloads(true)
        };
        export_bundle(
            source.as_ref(),
            &verifier,
            0,
            None,
            &options,
            &chunked,
            |_, _| {},
        )
        .unwrap();
        let report = verify_bundle(&chunked, &verifier, None).unwrap();
        assert_eq!((report.entries, report.payloads), (ENTRIES, ENTRIES));
        let limit = ChunkedLimit::read(&chunked, &entries, compression);
        group.bench_function(format!("bundle_chunked_{name}/100k"), |b| {
            b.iter(|| verify_bundle(&chunked, &verifier, None).unwrap());
        });
        group.bench_function(format!("bundle_chunked_{name}_hash_limit/100k"), |b| {
            b.iter(|| limit.run(workers));
        });
    }
    group.finish();
}

/// What any verifier of a chunked bundle must hash (and decompress), per
/// chunk.
struct ChunkedLimit<'a> {
    /// Every chunk file as stored.
    stored: Vec<Vec<u8>>,
    compression: Compression,
    /// Each chunk's entries and its payloads, decoded.
    chunks: Vec<(&'a [Vec<u8>], Vec<Payload>)>,
}

impl<'a> ChunkedLimit<'a> {
    fn read(dir: &std::path::Path, entries: &'a [Vec<u8>], compression: Compression) -> Self {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let mut stored = Vec::new();
        let mut chunks = Vec::new();
        for chunk in manifest["chunks"].as_array().unwrap() {
            let (from, to) = (
                chunk["from"].as_u64().unwrap(),
                chunk["to"].as_u64().unwrap(),
            );
            let mut payloads = Vec::new();
            for file in chunk["files"].as_array().unwrap() {
                let file = file.as_str().unwrap();
                let bytes = std::fs::read(dir.join(file)).unwrap();
                if file.contains("/payloads.") {
                    let content = match compression {
                        Compression::Zstd => zstd::decode_all(bytes.as_slice()).unwrap(),
                        _ => bytes.clone(),
                    };
                    payloads = decoded_payloads(&content);
                }
                stored.push(bytes);
            }
            chunks.push((&entries[from as usize..to as usize], payloads));
        }
        Self {
            stored,
            compression,
            chunks,
        }
    }

    /// On `workers` threads taking jobs in turn: one per chunk file (its
    /// SHA-256, and its decompression), one per chunk (tree, chain,
    /// commitments).
    fn run(&self, workers: usize) {
        let jobs = self.stored.len() + self.chunks.len();
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let job = next.fetch_add(1, Ordering::Relaxed);
                        if job >= jobs {
                            break;
                        }
                        if let Some(file) = self.stored.get(job) {
                            std::hint::black_box(sha2::Sha256::digest(file));
                            if self.compression == Compression::Zstd {
                                let mut decoder =
                                    zstd::stream::read::Decoder::new(file.as_slice()).unwrap();
                                std::io::copy(&mut decoder, &mut std::io::sink()).unwrap();
                            }
                        } else if let Some((entries, payloads)) =
                            self.chunks.get(job - self.stored.len())
                        {
                            tree_and_chain(entries);
                            for (request_salt, request, response_salt, response) in payloads {
                                std::hint::black_box(commitment(request_salt, request));
                                std::hint::black_box(commitment(response_salt, response));
                            }
                        }
                    }
                });
            }
        });
    }
}

/// The leaves, the interior nodes up to `part`'s root (as many as the
/// whole tree has, less a few per part) and the BLAKE3 chain hashes.
fn tree_and_chain(part: &[Vec<u8>]) -> Vec<Hash> {
    let mut level: Vec<Hash> = part
        .iter()
        .map(|bytes| {
            std::hint::black_box(blake3::hash(bytes));
            leaf_hash(bytes)
        })
        .collect();
    while level.len() > 1 {
        let pairs = level.chunks_exact(2);
        let odd = pairs.remainder().first().copied();
        level = pairs
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .chain(odd)
            .collect();
    }
    std::hint::black_box(level)
}

/// One payload line's salts and captures, decoded.
type Payload = ([u8; 32], Vec<u8>, [u8; 32], Vec<u8>);

fn decoded_payloads(file: &[u8]) -> Vec<Payload> {
    use base64::Engine as _;
    let hex32 = |value: &serde_json::Value| -> [u8; 32] {
        let text = value.as_str().unwrap();
        std::array::from_fn(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
    };
    let base64 = |value: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap())
            .unwrap()
    };
    file.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let line: serde_json::Value = serde_json::from_slice(line).unwrap();
            (
                hex32(&line["request_salt"]),
                base64(&line["request"]),
                hex32(&line["response_salt"]),
                base64(&line["response"]),
            )
        })
        .collect()
}

/// What verifying the bundle must hash, on `workers` threads taking jobs
/// in turn: each file's SHA-256 (one job per file: a digest is one
/// stream), and per part of the entries their tree, chain and payload
/// commitments.
fn bundle_hash_limit(files: &[Vec<u8>], entries: &[Vec<u8>], payloads: &[Payload], workers: usize) {
    let parts = 4 * workers;
    let entry_parts: Vec<&[Vec<u8>]> = entries.chunks(entries.len().div_ceil(parts)).collect();
    let payload_parts: Vec<&[Payload]> = payloads.chunks(payloads.len().div_ceil(parts)).collect();
    let jobs = files.len() + entry_parts.len() + payload_parts.len();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let job = next.fetch_add(1, Ordering::Relaxed);
                    if job >= jobs {
                        break;
                    }
                    if let Some(file) = files.get(job) {
                        std::hint::black_box(sha2::Sha256::digest(file));
                    } else if let Some(part) = entry_parts.get(job - files.len()) {
                        tree_and_chain(part);
                    } else if let Some(part) =
                        payload_parts.get(job - files.len() - entry_parts.len())
                    {
                        for (request_salt, request, response_salt, response) in *part {
                            std::hint::black_box(commitment(request_salt, request));
                            std::hint::black_box(commitment(response_salt, response));
                        }
                    }
                }
            });
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = verify
}
criterion_main!(benches);
