//! Bundles that say what they know (docs/audit-format.md section 8.1):
//! a chain rebuilt after an altered entry is located between two carried
//! checkpoints, never guessed; a dropped payload line or per-entry
//! signature is an error while an erased payload is not; the manifest and
//! `GET /ledger/keys` name the first key and every rotation. Both
//! verifiers, on bundles of the real binary.

use crate::models;
use crate::support::audit::{
    both_accept_bundle, python_bundle, refresh_file_list, rust_bundle, said,
};
use crate::support::{Gateway, TestUpstream};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn export(gateway: &Gateway, out: &Path, args: &[&str]) {
    let mut all = vec!["export", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let done = gateway.cli(&all);
    assert!(done.status.success(), "export {args:?}: {}", said(&done));
}

fn lines(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(dir: &Path, file: &str, lines: &[String]) {
    std::fs::write(dir.join(file), lines.join("\n") + "\n").unwrap();
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// A copy of a bundle, to tamper with.
fn copy(dir: &Path, name: &str) -> PathBuf {
    let to = dir.with_file_name(name);
    std::fs::create_dir(&to).unwrap();
    for file in std::fs::read_dir(dir).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
    }
    to
}

/// Both verifiers reject the bundle (exit 1), each saying `needle`.
fn both_reject(vkey: &str, dir: &Path, needle: &str) {
    let rust = rust_bundle(vkey, dir);
    assert_eq!(rust.status.code(), Some(1), "{}", said(&rust));
    assert!(
        said(&rust).contains(needle),
        "govgate says: {}",
        said(&rust)
    );
    let python = python_bundle(vkey, dir);
    assert_eq!(python.status.code(), Some(1), "{}", said(&python));
    assert!(
        said(&python).contains(needle),
        "python says: {}",
        said(&python)
    );
}

/// Alters entry `seq` (one byte of its caller) and rebuilds every later
/// `prev_hash`, so the chain is intact again; the file list is refreshed.
fn rebuild_chain_after_altering(dir: &Path, seq: usize) {
    let mut entries = lines(dir, "entries.jsonl");
    assert!(
        entries[seq].contains("\"caller\":\"anonymous\""),
        "{}",
        entries[seq]
    );
    entries[seq] = entries[seq].replace("\"caller\":\"anonymous\"", "\"caller\":\"anonymouz\"");
    for i in seq + 1..entries.len() {
        let old: Value = serde_json::from_str(&entries[i]).unwrap();
        let old = old["prev_hash"].as_str().unwrap().to_owned();
        let new = blake3::hash(entries[i - 1].as_bytes()).to_hex().to_string();
        entries[i] = entries[i].replace(&old, &new);
    }
    write_lines(dir, "entries.jsonl", &entries);
    refresh_file_list(dir);
}

/// The sizes of the checkpoints a bundle carries.
fn carried(dir: &Path) -> Vec<u64> {
    lines(dir, "checkpoints.jsonl")
        .iter()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["size"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_rebuilt_chain_is_located_between_the_carried_checkpoints_never_at_a_guessed_seq() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    for _ in 0..10 {
        gateway.infer("{}").await; // one at a time: a batch, and a checkpoint, each
    }
    gateway.stop().await;
    let bundles = tempfile::tempdir().unwrap();
    let every = bundles.path().join("every");
    export(&gateway, &every, &[]);
    let third = bundles.path().join("third");
    export(&gateway, &third, &["--checkpoints-every", "3"]);
    both_accept_bundle(&gateway.vkey, &every);
    both_accept_bundle(&gateway.vkey, &third);

    let decisions: Vec<usize> = lines(&every, "entries.jsonl")
        .iter()
        .enumerate()
        .filter(|(_, line)| line.contains("\"kind\":\"decision\""))
        .map(|(i, _)| i)
        .collect();
    let altered = decisions[decisions.len() / 2];
    let size = lines(&every, "entries.jsonl").len() as u64;
    assert!((altered as u64) < size - 2, "not the last entry");

    // Every checkpoint carried: the altered entry's own batch is proven.
    let sizes = carried(&every);
    assert!(sizes.contains(&(altered as u64)) && sizes.contains(&(altered as u64 + 1)));
    let tampered = copy(&every, "every-tampered");
    rebuild_chain_after_altering(&tampered, altered);
    both_reject(
        &gateway.vkey,
        &tampered,
        &format!("seq {altered}: entry altered"),
    );

    // A carried checkpoint that is not of the same append-only log: its
    // consistency proof from the one before fails.
    let forked = copy(&every, "every-forked");
    let mut checkpoints = lines(&forked, "checkpoints.jsonl");
    let line = checkpoints.len() / 2;
    let mut item: Value = serde_json::from_str(&checkpoints[line]).unwrap();
    let proof = item["consistency"].as_array_mut().unwrap();
    assert!(!proof.is_empty());
    proof[0] = Value::String(format!("{}=", "A".repeat(43)));
    checkpoints[line] = item.to_string();
    write_lines(&forked, "checkpoints.jsonl", &checkpoints);
    refresh_file_list(&forked);
    both_reject(&gateway.vkey, &forked, "consistency proof from size");

    // Every third: the range between the carried checkpoints around it,
    // said as a range, and no single seq named.
    let sizes = carried(&third);
    let a = sizes
        .iter()
        .copied()
        .filter(|s| *s <= altered as u64)
        .max()
        .unwrap_or(0);
    let b = sizes.iter().copied().find(|s| *s > altered as u64).unwrap() - 1;
    assert!(
        a < b,
        "the checkpoints around seq {altered} are {a} and {}",
        b + 1
    );
    let tampered = copy(&third, "third-tampered");
    rebuild_chain_after_altering(&tampered, altered);
    both_reject(
        &gateway.vkey,
        &tampered,
        &format!("changed within seqs {a}..{b}; cannot be located more precisely"),
    );
    let rust = said(&rust_bundle(&gateway.vkey, &tampered));
    assert!(!rust.contains("first bad seq"), "no seq is guessed: {rust}");
    let python = said(&python_bundle(&gateway.vkey, &tampered));
    assert!(
        !python.contains("entry altered"),
        "no seq is guessed: {python}"
    );
}

/// `entry_signatures` on, a key rotation, an erasure: the omissions the
/// ledger lets a verifier prove.
#[tokio::test]
async fn a_dropped_payload_line_or_rotation_signature_fails_an_erased_payload_does_not() {
    let upstream = TestUpstream::start().await;
    let rest = format!("entry_signatures = \"on\"\n{}", models(&upstream.url()));
    let mut gateway = Gateway::start(&rest).await;
    let erased = gateway.infer("{}").await.decision_id();
    gateway.infer("{}").await;
    gateway.stop().await;
    let first_vkey = gateway.vkey.clone();
    let (next_config, next_vkey) = gateway.config_with_new_key("next");
    let next_key = gateway.dir.path().join("next.key");
    let rotated = gateway.cli(&["rotate-key", "--new-key", next_key.to_str().unwrap()]);
    assert!(rotated.status.success(), "{}", said(&rotated));
    std::fs::copy(
        gateway.dir.path().join(&next_config),
        gateway.dir.path().join("govgate.toml"),
    )
    .unwrap();
    gateway.restart().await;
    gateway.infer("{}").await;

    // GET /ledger/keys: both keys, each with the seqs it signed.
    let keys = crate::support::send(
        http::Method::GET,
        &format!("{}/ledger/keys", gateway.admin),
        &[],
        "",
    )
    .await
    .json();
    let entries = gateway.entries().await;
    let rotation = entries.iter().find(|e| e["kind"] == "key_rotated").unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(keys["keys"][0]["vkey"], first_vkey.as_str(), "{keys}");
    assert_eq!(keys["keys"][0]["first_seq"], 0, "{keys}");
    assert_eq!(keys["keys"][0]["last_seq"], rotation, "{keys}");
    assert_eq!(keys["keys"][1]["vkey"], next_vkey.as_str(), "{keys}");
    assert_eq!(keys["keys"][1]["first_seq"], rotation + 1, "{keys}");
    assert_eq!(
        keys["keys"][1]["last_seq"],
        entries.len() as u64 - 1,
        "{keys}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "entry_signatures_set" && e["entry_signatures"] == "on"),
        "the setting is recorded"
    );
    gateway.stop().await;
    let erase = gateway.cli(&[
        "erase",
        "--decision",
        &erased,
        "--reason",
        "subject request",
    ]);
    assert!(erase.status.success(), "{}", said(&erase));

    let bundles = tempfile::tempdir().unwrap();
    let whole = bundles.path().join("whole");
    export(&gateway, &whole, &["--payloads"]);
    both_accept_bundle(&first_vkey, &whole);
    let manifest = manifest(&whole);
    assert_eq!(manifest["first_vkey"], first_vkey.as_str());
    assert_eq!(manifest["rotations"][0]["seq"], rotation);
    assert_eq!(manifest["rotations"][0]["new_vkey"], next_vkey.as_str());
    assert_eq!(
        manifest["files"]["entries.jsonl"]["lines"],
        lines(&whole, "entries.jsonl").len()
    );

    // A range after the rotation, holding the erased decision's seq but not
    // its erasure: the key and the erasure come as proven context entries.
    let erased_seq = entries
        .iter()
        .find(|e| e["decision_id"] == erased.as_str())
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    let range = bundles.path().join("range");
    let to = (rotation + 3).to_string();
    export(
        &gateway,
        &range,
        &["--payloads", "--from", &erased_seq.to_string(), "--to", &to],
    );
    let context = lines(&range, "context.jsonl").join("\n");
    assert!(context.contains("\"kind\":\"payload_erased\""), "{context}");
    assert!(
        context.contains("\"kind\":\"entry_signatures_set\""),
        "{context}"
    );
    both_accept_bundle(&first_vkey, &range);
    let after = bundles.path().join("after");
    export(&gateway, &after, &["--from", &(rotation + 1).to_string()]);
    both_accept_bundle(&first_vkey, &after);

    // A payload line dropped: the file list finds it, and once a forger
    // fixed the list, the entry's kept payload is missed all the same.
    let dropped = copy(&whole, "payload-dropped");
    let mut payloads = lines(&dropped, "payloads.jsonl");
    let gone: Value = serde_json::from_str(&payloads.remove(0)).unwrap();
    write_lines(&dropped, "payloads.jsonl", &payloads);
    both_reject(&first_vkey, &dropped, "files: payloads.jsonl has");
    refresh_file_list(&dropped);
    both_reject(
        &first_vkey,
        &dropped,
        &format!("seq {}: payload missing", gone["seq"]),
    );

    // The rotation entry's own signature dropped.
    let unsigned = copy(&whole, "rotation-unsigned");
    let signatures: Vec<String> = lines(&unsigned, "signatures.jsonl")
        .into_iter()
        .filter(|line| !line.contains(&format!("\"seq\":{rotation},")))
        .collect();
    assert_eq!(
        signatures.len() + 1,
        lines(&whole, "signatures.jsonl").len()
    );
    write_lines(&unsigned, "signatures.jsonl", &signatures);
    refresh_file_list(&unsigned);
    both_reject(
        &first_vkey,
        &unsigned,
        &format!("seq {rotation}: per-entry signature missing"),
    );
}

/// The finding on a bundle of the earlier form (one checkpoint): the
/// change is somewhere in the whole range, and that is what is said.
#[test]
fn a_rebuilt_chain_in_a_bundle_of_the_earlier_form_names_the_whole_range_not_its_last_seq() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/upgrade/v0.1-57d6b4f");
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    for file in std::fs::read_dir(fixture.join("bundle-full")).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), bundle.join(file.file_name())).unwrap();
    }
    let mut entries = lines(&bundle, "entries.jsonl");
    entries[3] = entries[3].replace("\"caller\":\"anonymous\"", "\"caller\":\"anonymouz\"");
    for i in 4..entries.len() {
        let old: Value = serde_json::from_str(&entries[i]).unwrap();
        let old = old["prev_hash"].as_str().unwrap().to_owned();
        let new = blake3::hash(entries[i - 1].as_bytes()).to_hex().to_string();
        entries[i] = entries[i].replace(&old, &new);
    }
    write_lines(&bundle, "entries.jsonl", &entries);
    let vkey = format!("@{}", fixture.join("log.vkey").display());
    both_reject(
        &vkey,
        &bundle,
        "changed within seqs 0..17; cannot be located more precisely",
    );
    let rust = said(&rust_bundle(&vkey, &bundle));
    assert!(!rust.contains("seq 17"), "no seq is guessed: {rust}");
}
