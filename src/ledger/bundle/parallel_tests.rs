//! The parallel check of a chunked bundle takes the bundles the exporter
//! writes (key rotations, payloads, signatures, a range after a rotation)
//! on its own, with the report of the one-stream pass, whatever the number
//! of threads; and each chunk checks alone.

use super::tests::append;
use super::*;
use crate::ledger::entry::EntryBody;
use crate::ledger::export::{BundleOptions, Chunking, Compression, export_bundle};
use crate::ledger::memstore::MemStore;
use ed25519_dalek::SigningKey;
use std::sync::Arc;

const ORIGIN: &str = "test.example/log";
const KEY: [u8; 32] = [7; 32];
const NEXT: [u8; 32] = [8; 32];

fn key(seed: [u8; 32]) -> NoteVerifier {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&seed).verifying_key()).unwrap()
}

/// A decision of model `m` with its payloads.
fn decision() -> EntryBody {
    EntryBody::Decision(Box::new(super::tests::decision("m")))
}

/// 12 decisions, a rotation at seq 12, 12 more under the next key.
async fn rotated() -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    append(&store, KEY, (0..12).map(|_| decision()).collect()).await;
    let rotation = EntryBody::KeyRotated {
        old_vkey: key(KEY).vkey(),
        new_vkey: key(NEXT).vkey(),
        by: None,
    };
    append(&store, KEY, vec![rotation]).await;
    append(&store, NEXT, (0..12).map(|_| decision()).collect()).await;
    store
}

/// The parallel check on `jobs` threads, `None` when it passed the bundle on.
fn parallel_on(dir: &Path, jobs: usize) -> Option<BundleReport> {
    let manifest = read_manifest(dir).unwrap();
    let note = read_text(dir, "checkpoint.txt").unwrap().unwrap();
    let claimed = peek_checkpoint(&note).unwrap();
    parallel::verify(dir, &manifest, &claimed, &key(KEY), None, &note, jobs)
        .map(|(report, _)| report)
}

/// The one-stream pass alone.
fn one_stream(dir: &Path) -> BundleReport {
    let manifest = read_manifest(dir).unwrap();
    let note = read_text(dir, "checkpoint.txt").unwrap().unwrap();
    let claimed = peek_checkpoint(&note).unwrap();
    match stream::contiguous(dir, &manifest, &claimed, &key(KEY), None, &note, 0) {
        Ok(stream::Outcome::Verified(verified)) => verified.0,
        _ => panic!("the one-stream pass does not verify {}", dir.display()),
    }
}

#[tokio::test]
async fn chunked_bundles_are_checked_chunk_by_chunk_with_the_one_stream_report() {
    let store = rotated().await;
    let tmp = tempfile::tempdir().unwrap();
    for (name, compression, from) in [
        ("zstd", Compression::Zstd, 0),
        ("none", Compression::None, 0),
        ("after", Compression::Gzip, 15),
    ] {
        let dir = tmp.path().join(name);
        let options = BundleOptions {
            chunks: Some(Chunking {
                entries: 4,
                compression,
            }),
            ..BundleOptions::payloads(true)
        };
        export_bundle(&*store, &key(NEXT), from, None, &options, &dir, |_, _| {}).unwrap();
        let whole = one_stream(&dir);
        assert_eq!(whole.rotations, 1, "{name}");
        for jobs in [1, 2, 3] {
            assert_eq!(
                parallel_on(&dir, jobs).as_ref(),
                Some(&whole),
                "{name} on {jobs}"
            );
        }
        let manifest = read_manifest(&dir).unwrap();
        let chunks = manifest.raw["chunks"].as_array().unwrap().clone();
        assert!(chunks.len() >= 3, "{name}: {chunks:?}");
        let mut entries = 0;
        for chunk in &chunks {
            let at = chunk["from"].as_u64().unwrap();
            let report = verify_chunk(&dir, &key(KEY), None, at, 2).unwrap();
            assert_eq!(report.from, at);
            assert!(!report.not_made.is_empty(), "{name} {at}");
            entries += report.entries;
        }
        assert_eq!(entries, whole.entries, "{name}");
    }
}

/// `store` from `from` in chunks of 4 entries with payloads, exported
/// under the key `current` is in force at its end: the directory and
/// what keeps it.
fn export_chunked(
    store: &MemStore,
    current: [u8; 32],
    from: u64,
    compression: Compression,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let options = BundleOptions {
        chunks: Some(Chunking {
            entries: 4,
            compression,
        }),
        ..BundleOptions::payloads(true)
    };
    export_bundle(store, &key(current), from, None, &options, &dir, |_, _| {}).unwrap();
    (tmp, dir)
}

#[tokio::test]
async fn a_chunked_bundle_with_payloads_but_none_kept_verifies() {
    // No decision, so no payload: every chunk's payloads file would be
    // empty, and the exporter writes none (section 8.4).
    let store = Arc::new(MemStore::new());
    let started = || EntryBody::GatewayStarted {
        version: "0.1.0".into(),
    };
    append(&store, KEY, (0..10).map(|_| started()).collect()).await;
    let (_tmp, dir) = export_chunked(&store, KEY, 0, Compression::Zstd);
    let manifest = read_manifest(&dir).unwrap();
    assert!(manifest.payloads, "declared");
    assert!(
        !std::fs::read_to_string(dir.join("manifest.json"))
            .unwrap()
            .contains("payloads.jsonl"),
        "and no chunk has a payloads file"
    );
    let report = verify_bundle(&dir, &key(KEY), None).unwrap();
    assert_eq!((report.entries, report.payloads), (10, 0));
    assert_eq!(
        parallel_on(&dir, 2).map(|r| (r.entries, r.payloads)),
        Some((10, 0)),
        "the parallel check takes it too"
    );
}

#[tokio::test]
async fn a_chunk_checked_alone_needs_the_context_the_manifest_lists() {
    // From seq 15, after the rotation at 12: the context carries it.
    let store = rotated().await;
    let (_tmp, dir) = export_chunked(&store, NEXT, 15, Compression::None);
    assert!(verify_chunk(&dir, &key(KEY), None, 15, 1).is_ok());
    std::fs::remove_file(dir.join("context.jsonl")).unwrap();
    let err = verify_chunk(&dir, &key(KEY), None, 15, 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("context.jsonl is missing (the manifest lists it)"),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_under_chunks_that_the_manifest_does_not_list_is_refused() {
    let store = rotated().await;
    let (_tmp, dir) = export_chunked(&store, NEXT, 0, Compression::Zstd);
    assert!(verify_bundle(&dir, &key(KEY), None).is_ok());
    std::fs::write(dir.join("chunks/000000000000/signatures.jsonl"), b"").unwrap();
    let err = verify_bundle(&dir, &key(KEY), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "files: chunks/000000000000/signatures.jsonl is present but the manifest does not list it"
    );
}

/// Writes `text` as bundle file `name` and makes the manifest's file list
/// match it, as a forger would.
fn rewrite_listed(dir: &Path, name: &str, text: &str) {
    use sha2::Digest;
    std::fs::write(dir.join(name), text).unwrap();
    let path = dir.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let listed = &mut manifest["files"][name];
    listed["lines"] = text.matches('\n').count().into();
    listed["sha256"] = crate::ledger::entry::hex(&sha2::Sha256::digest(text.as_bytes())).into();
    if listed.get("bytes").is_some() {
        listed["bytes"] = text.len().into();
    }
    std::fs::write(&path, manifest.to_string()).unwrap();
}

#[tokio::test]
async fn a_line_moved_into_the_previous_chunks_file_is_named_there() {
    let store = rotated().await;
    let (_tmp, dir) = export_chunked(&store, NEXT, 0, Compression::None);
    let manifest = read_manifest(&dir).unwrap();
    let chunks = manifest.raw["chunks"].as_array().unwrap().clone();
    let file = |chunk: usize, kind: &str| {
        chunks[chunk]["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .find(|name| name.ends_with(&format!("/{kind}.jsonl")))
            .unwrap()
            .to_owned()
    };
    let to = chunks[0]["to"].as_u64().unwrap();
    for kind in ["signatures", "payloads"] {
        let (_tmp, dir) = export_chunked(&store, NEXT, 0, Compression::None);
        let (first, second) = (file(0, kind), file(1, kind));
        let mine = std::fs::read_to_string(dir.join(&first)).unwrap();
        let theirs = std::fs::read_to_string(dir.join(&second)).unwrap();
        let (moved, rest) = theirs.split_once('\n').unwrap();
        assert!(moved.contains(&format!("\"seq\":{to}")), "{moved}");
        // Read as one stream the lines are still in seq order.
        rewrite_listed(&dir, &first, &format!("{mine}{moved}\n"));
        rewrite_listed(&dir, &second, rest);
        let lines = mine.lines().count() + 1;
        let err = verify_bundle(&dir, &key(KEY), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "seq {to}: {first} line {lines}: seq {to} lies outside its chunk's range 0..{to}"
            ),
            "{kind}"
        );
        assert_eq!(
            parallel_on(&dir, 2),
            None,
            "{kind}: the parallel check refuses it too"
        );
    }

    // A bad line is named by its chunk file and its number there, not by
    // the chunk's entries file and its number in the stream of them all.
    let second = file(1, "signatures");
    let theirs = std::fs::read_to_string(dir.join(&second)).unwrap();
    let (line, rest) = theirs.split_once('\n').unwrap();
    let mut value: Value = serde_json::from_str(line).unwrap();
    value["signature"] = base64_of(&[0; 64]).into();
    rewrite_listed(&dir, &second, &format!("{value}\n{rest}"));
    let err = verify_bundle(&dir, &key(KEY), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("seq {to}: per-entry signature does not verify ({second} line 1)")
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_bad_entry_line_is_named_by_its_chunk_file_and_its_number_there() {
    let store = rotated().await;
    let (_tmp, dir) = export_chunked(&store, NEXT, 0, Compression::None);
    let manifest = read_manifest(&dir).unwrap();
    let chunk = &manifest.raw["chunks"][1];
    let (from, name) = (
        chunk["from"].as_u64().unwrap(),
        chunk["files"][0].as_str().unwrap().to_owned(),
    );
    let text = std::fs::read_to_string(dir.join(&name)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replacen('{', "{ ", 1);
    rewrite_listed(&dir, &name, &(lines.join("\n") + "\n"));
    let err = verify_bundle(&dir, &key(KEY), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{name}: seq {}: line 2: bytes are not RFC 8785 canonical JSON",
            from + 1
        )),
        "{err}"
    );
}
