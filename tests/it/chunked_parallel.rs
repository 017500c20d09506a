//! `govgate verify --bundle` on a chunked bundle (`govgate-bundle/3`,
//! docs/audit-format.md section 8.4) with `--jobs` and `--chunk`: the
//! outcome, good or bad, is the same on one thread and on two; a corrupted
//! chunk is named by its file and seq; one chunk handed on alone (with the
//! manifest, checkpoint.txt and checkpoints.jsonl) verifies, with the
//! checks that need the others said not made, and fails when corrupted.

use crate::support::audit::said;
use crate::support::filled::Filled;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn verify(filled: &Filled, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["verify", "--bundle", dir.to_str().unwrap()];
    args.extend_from_slice(&["--vkey", &filled.vkey]);
    args.extend_from_slice(extra);
    filled.cli(&args).output().unwrap()
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Line `index` of the uncompressed chunk file `file` altered, the
/// manifest's file list made to match (as a forger would).
fn alter_entry(dir: &Path, file: &str, index: usize) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let changed = lines[index].replacen("\"caller\":\"", "\"caller\":\"x", 1);
    assert_ne!(changed, lines[index]);
    lines[index] = changed;
    let bytes = (lines.join("\n") + "\n").into_bytes();
    std::fs::write(&path, &bytes).unwrap();
    let mut m = manifest(dir);
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    m["files"][file]["sha256"] = sha.into();
    m["files"][file]["bytes"] = (bytes.len() as u64).into();
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
}

fn same(one: &Output, two: &Output) {
    assert_eq!(
        one.status.code(),
        two.status.code(),
        "{}\n{}",
        said(one),
        said(two)
    );
    assert_eq!(one.stdout, two.stdout, "{}\n{}", said(one), said(two));
    assert_eq!(one.stderr, two.stderr, "{}\n{}", said(one), said(two));
}

#[test]
fn jobs_do_not_change_the_outcome_and_a_corrupted_chunk_is_named_by_file_and_seq() {
    let filled = Filled::signed(1_500);
    let dir = filled.dir.path().join("bundle");
    filled.export(&dir, &["--chunk-entries", "300", "--compress", "none"]);
    let m = manifest(&dir);
    assert!(m["chunks"].as_array().unwrap().len() >= 3, "{m}");

    let one = verify(&filled, &dir, &["--jobs", "1"]);
    let two = verify(&filled, &dir, &["--jobs", "2"]);
    assert!(two.status.success(), "{}", said(&two));
    assert!(said(&two).contains("bundle ok: "), "{}", said(&two));
    same(&one, &two);

    // The largest chunk but the first, one of its middle entries.
    let chunks = m["chunks"].as_array().unwrap();
    let size = |c: &Value| c["to"].as_u64().unwrap() - c["from"].as_u64().unwrap();
    let chunk = chunks[1..].iter().max_by_key(|c| size(c)).unwrap().clone();
    let file = chunk["files"][0].as_str().unwrap();
    let index = size(&chunk) / 2;
    let seq = chunk["from"].as_u64().unwrap() + index;
    alter_entry(&dir, file, index as usize);
    let two = verify(&filled, &dir, &["--jobs", "2"]);
    assert_eq!(two.status.code(), Some(1), "{}", said(&two));
    let text = said(&two);
    assert!(
        text.contains(&format!("{file}: seq {seq}"))
            || text.contains(&format!("{file}: seq {}", seq + 1)),
        "{text}"
    );
    same(&verify(&filled, &dir, &["--jobs", "1"]), &two);
}

#[test]
fn one_chunk_handed_on_alone_verifies_and_fails_when_corrupted() {
    let filled = Filled::signed(1_500);
    let whole = filled.dir.path().join("whole");
    filled.export(&whole, &["--chunk-entries", "300", "--compress", "zstd"]);
    let m = manifest(&whole);
    let chunk = m["chunks"][1].clone();
    let from = chunk["from"].as_u64().unwrap();
    let to = chunk["to"].as_u64().unwrap();

    // The chunk alone, as handed to someone: its files and the three
    // files that tie it to the bundle's checkpoint.
    let alone = filled.dir.path().join("alone");
    let chunk_dir = format!("chunks/{from:012}");
    std::fs::create_dir_all(alone.join(&chunk_dir)).unwrap();
    for name in ["manifest.json", "checkpoint.txt", "checkpoints.jsonl"] {
        std::fs::copy(whole.join(name), alone.join(name)).unwrap();
    }
    for file in chunk["files"].as_array().unwrap() {
        let file = file.as_str().unwrap();
        std::fs::copy(whole.join(file), alone.join(file)).unwrap();
    }
    let at = from.to_string();
    let output = verify(&filled, &alone, &["--chunk", &at, "--jobs", "2"]);
    let text = said(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!("chunk {from}..{to} of bundle ok: ")),
        "{text}"
    );
    assert!(
        text.contains("note: not made with --chunk: the joins"),
        "{text}"
    );
    // Without --chunk the bundle is incomplete.
    let output = verify(&filled, &alone, &[]);
    assert_ne!(output.status.code(), Some(0), "{}", said(&output));
    // No chunk starts there: cannot check.
    let output = verify(&filled, &alone, &["--chunk", &(from + 1).to_string()]);
    assert_eq!(output.status.code(), Some(2), "{}", said(&output));
    assert!(
        said(&output).contains("no chunk of the bundle starts at"),
        "{}",
        said(&output)
    );

    // One byte of the compressed entries changed: named by its SHA-256.
    let file = chunk["files"][0].as_str().unwrap();
    let mut bytes = std::fs::read(alone.join(file)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(alone.join(file), &bytes).unwrap();
    let output = verify(&filled, &alone, &["--chunk", &at]);
    let text = said(&output);
    assert_ne!(output.status.code(), Some(0), "{text}");
    assert!(text.contains(file), "{text}");
}
