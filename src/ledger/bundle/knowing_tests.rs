//! A bundle exported right after a verification, with the key rotations
//! the verification found (as `govgate report` exports its bundle), is
//! byte for byte the bundle a plain export writes: the same entries the
//! bundle depends on are found without reading the log again.

use super::tests::{append, decision};
use crate::ledger::checkpoint::NoteVerifier;
use crate::ledger::entry::EntryBody;
use crate::ledger::export::{
    BundleOptions, Chunking, Compression, KnownRotations, SIGNATURES_KIND, export_bundle,
    export_bundle_knowing,
};
use crate::ledger::memstore::MemStore;
use crate::ledger::store::LedgerStore;
use crate::ledger::verify::verify_store;
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const ORIGIN: &str = "test.example/log";
const KEY: [u8; 32] = [7; 32];
const NEXT: [u8; 32] = [8; 32];

fn key(seed: [u8; 32]) -> NoteVerifier {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&seed).verifying_key()).unwrap()
}

fn decisions(count: usize) -> Vec<EntryBody> {
    (0..count)
        .map(|_| EntryBody::Decision(Box::new(decision("m"))))
        .collect()
}

/// Decisions, the `entry_signatures` setting turned off at seq 6, a key
/// rotation at seq 13, and at seq 20 an erasure of seq 2's payload.
async fn log() -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    let mut off = serde_json::Map::new();
    off.insert("entry_signatures".to_owned(), "off".into());
    let mut first = decisions(6);
    first.push(EntryBody::Governance {
        kind: SIGNATURES_KIND,
        members: off,
    });
    first.extend(decisions(6));
    first.push(EntryBody::KeyRotated {
        old_vkey: key(KEY).vkey(),
        new_vkey: key(NEXT).vkey(),
        by: None,
    });
    append(&store, KEY, first).await;
    let mut second = decisions(6);
    let erased = serde_json::from_slice::<serde_json::Value>(&store.entry(2).unwrap().unwrap())
        .unwrap()["decision_id"]
        .as_str()
        .unwrap()
        .to_owned();
    second.push(EntryBody::PayloadErased {
        decision_id: erased,
        erased_seq: 2,
        reason: "request of the data subject".into(),
        by: None,
    });
    second.extend(decisions(4));
    append(&store, NEXT, second).await;
    store
}

/// Every file under `dir`, by its path below it.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for item in std::fs::read_dir(&at).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                found.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

#[tokio::test]
async fn a_bundle_exported_knowing_the_verifications_rotations_is_the_plain_export() {
    let store = log().await;
    let size = store.size().unwrap();
    assert_eq!(size, 25);
    let verified = verify_store(&*store, &key(NEXT)).unwrap();
    assert_eq!(verified.rotation_seqs, vec![13]);
    let unchunked = BundleOptions::payloads(true);
    let chunked = BundleOptions {
        chunks: Some(Chunking {
            entries: 5,
            compression: Compression::Zstd,
        }),
        ..BundleOptions::payloads(false)
    };
    // What a verification of the whole log found, and what one of a
    // shorter log (before the rotation, at it, after it) would have.
    let knowns = [
        KnownRotations {
            below: verified.entries,
            seqs: verified.rotation_seqs.clone(),
        },
        KnownRotations {
            below: 0,
            seqs: Vec::new(),
        },
        KnownRotations {
            below: 13,
            seqs: Vec::new(),
        },
        KnownRotations {
            below: 14,
            seqs: vec![13],
        },
        KnownRotations {
            below: 21,
            seqs: vec![13],
        },
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for from in [0, 3, 6, 7, 9, 14, 22] {
        for (name, options) in [("one", &unchunked), ("chunks", &chunked)] {
            let plain = tmp.path().join(format!("{name}-{from}"));
            export_bundle(&*store, &key(NEXT), from, None, options, &plain, |_, _| {}).unwrap();
            let expected = files(&plain);
            for (at, known) in knowns.iter().enumerate() {
                let dir = tmp.path().join(format!("{name}-{from}-knowing-{at}"));
                export_bundle_knowing(
                    &*store,
                    &key(NEXT),
                    from,
                    options,
                    known.clone(),
                    &dir,
                    |_, _| {},
                )
                .unwrap();
                let got = files(&dir);
                assert_eq!(
                    got.keys().collect::<Vec<_>>(),
                    expected.keys().collect::<Vec<_>>(),
                    "{name} from {from}, {known:?}"
                );
                for (file, bytes) in &expected {
                    assert!(
                        got[file] == *bytes,
                        "{file} of {name} from {from} differs, {known:?}"
                    );
                }
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 70);
    // The bundles hold what the scan is for: a range after the setting
    // carries it, one after the rotation carries the rotation.
    let context = |name: &str| {
        std::fs::read_to_string(tmp.path().join(name).join("context.jsonl")).unwrap_or_default()
    };
    assert!(context("one-9").contains(SIGNATURES_KIND));
    assert!(context("one-14").contains("key_rotated"));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("chunks-0").join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["format"], "govgate-bundle/3");
}
