//! `govgate export --chunk-entries N --compress zstd|gzip|none`: the
//! chunked contiguous bundle (`govgate-bundle/3`, docs/audit-format.md
//! section 8.4) holds exactly the lines of the one-file bundle of the same
//! range, split at carried checkpoints, each file as the manifest says.

use crate::support::audit::said;
use crate::support::filled::Filled;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Every file under `dir` but the manifest, as paths relative to it.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().to_str().unwrap().to_owned();
                if name != "manifest.json" {
                    found.insert(name);
                }
            }
        }
    }
    found
}

fn decompressed(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let name = path.to_str().unwrap();
    if name.ends_with(".zst") {
        zstd::stream::decode_all(&bytes[..]).unwrap()
    } else if name.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a chunked bundle against the one-file bundle `whole` of the same
/// range; chunks of at most `limit` entries unless carried checkpoints are
/// further apart.
fn same_as_whole(dir: &Path, whole: &Path, compression: &str, limit: u64) {
    let m = manifest(dir);
    let w = manifest(whole);
    assert_eq!(m["format"], "govgate-bundle/3");
    assert_eq!(m["compression"], compression);
    for key in [
        "origin",
        "vkey",
        "first_vkey",
        "rotations",
        "from",
        "to",
        "prefix",
    ] {
        assert_eq!(m[key], w[key], "{key}");
    }
    let ext = match compression {
        "zstd" => ".zst",
        "gzip" => ".gz",
        _ => "",
    };

    // Every file is listed, as stored: lines of its content, hash and
    // length of its bytes.
    let files = m["files"].as_object().unwrap();
    let listed: BTreeSet<String> = files.keys().cloned().collect();
    assert_eq!(listed, files_under(dir));
    for (name, said) in files {
        let path = dir.join(name);
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(said["bytes"], stored.len() as u64, "{name}");
        assert_eq!(said["sha256"], sha256_hex(&stored), "{name}");
        let lines = decompressed(&path).iter().filter(|b| **b == b'\n').count();
        assert_eq!(said["lines"], lines as u64, "{name}");
    }
    // Never compressed, and the same as the one-file bundle's.
    for name in ["checkpoint.txt", "checkpoints.jsonl"] {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            std::fs::read(whole.join(name)).unwrap(),
            "{name}"
        );
    }

    // The chunks join, and each ends at a carried checkpoint.
    let carried: Vec<u64> = std::fs::read_to_string(dir.join("checkpoints.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["size"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let chunks = m["chunks"].as_array().unwrap();
    assert!(chunks.len() > 2, "{} chunks", chunks.len());
    let mut at = m["from"].as_u64().unwrap();
    let mut joined: [Vec<u8>; 3] = Default::default();
    for (i, chunk) in chunks.iter().enumerate() {
        let (from, to) = (
            chunk["from"].as_u64().unwrap(),
            chunk["to"].as_u64().unwrap(),
        );
        assert_eq!(from, at, "chunk {i} starts where the one before ended");
        assert!(carried.contains(&to), "chunk {i} ends at {to}, not carried");
        if to - from > limit {
            assert!(
                !carried
                    .iter()
                    .any(|size| *size > from && *size <= from + limit),
                "chunk {i} ({from}..{to}) longer than {limit} with a carried checkpoint inside"
            );
        }
        let setting = if from == 0 { "off" } else { "on" };
        assert_eq!(chunk["entry_signatures"], setting, "chunk {i}");
        assert_eq!(
            chunk["prefix"].as_array().unwrap().len(),
            from.count_ones() as usize
        );
        let base = format!("chunks/{from:012}");
        let names: Vec<&str> = chunk["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect();
        let expected: Vec<String> = ["entries", "signatures", "payloads"]
            .iter()
            .map(|file| format!("{base}/{file}.jsonl{ext}"))
            .collect();
        // A first chunk may be the setting entry alone: no payload.
        let alone = from == 0 && names == expected[..2];
        assert!(alone || names == expected, "chunk {i}: {names:?}");
        for (k, name) in names.iter().enumerate() {
            let content = decompressed(&dir.join(name));
            let first_seq = |line: &[u8]| -> u64 {
                serde_json::from_slice::<Value>(line).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            };
            let lines: Vec<&[u8]> = content.split_inclusive(|b| *b == b'\n').collect();
            if k == 0 {
                assert_eq!(lines.len() as u64, to - from, "{name}");
            }
            assert!(first_seq(lines[0]) >= from && first_seq(lines[lines.len() - 1]) < to);
            joined[k].extend_from_slice(&content);
        }
        at = to;
    }
    assert_eq!(at, m["to"].as_u64().unwrap());
    // Decompressed and put together: the one-file bundle's bytes.
    for (k, file) in ["entries.jsonl", "signatures.jsonl", "payloads.jsonl"]
        .iter()
        .enumerate()
    {
        assert!(
            joined[k] == std::fs::read(whole.join(file)).unwrap(),
            "{file} differs"
        );
    }
}

#[test]
fn chunked_exports_hold_the_one_file_bundles_lines_split_at_carried_checkpoints() {
    let filled = Filled::signed(3_000);
    let root = filled.dir.path();
    let whole = root.join("whole");
    filled.export(&whole, &[]);
    assert_eq!(manifest(&whole)["format"], "govgate-bundle/2");

    let zstd = root.join("zstd");
    let said = filled.export(&zstd, &["--chunk-entries", "700", "--compress", "zstd"]);
    assert!(said.contains("chunked"), "{said}");
    same_as_whole(&zstd, &whole, "zstd", 700);

    let gzip = root.join("gzip");
    filled.export(&gzip, &["--chunk-entries", "450", "--compress", "gzip"]);
    same_as_whole(&gzip, &whole, "gzip", 450);

    // A chunk's prefix is the subtrees left of it, as a bundle starting
    // there says.
    let chunks = manifest(&gzip)["chunks"].clone();
    let second = &chunks[1];
    let from = second["from"].as_u64().unwrap().to_string();
    let tail = root.join("tail");
    filled.export(&tail, &["--from", &from]);
    assert_eq!(manifest(&tail)["prefix"], second["prefix"]);

    // --compress alone: chunks of a million entries, so one here.
    let one = root.join("one");
    filled.export(&one, &["--compress", "gzip"]);
    let m = manifest(&one);
    assert_eq!(m["chunks"].as_array().unwrap().len(), 1);
    assert_eq!(m["chunks"][0]["to"], m["to"]);
}

#[test]
fn chunking_is_refused_for_sparse_and_online_exports() {
    let filled = Filled::new(3);
    let out = filled.dir.path().join("b");
    for extra in [
        &["--model", "scorer"][..],
        &["--since", "2026-01-01T00:00:00Z"][..],
    ] {
        let mut args = vec![
            "export",
            "--chunk-entries",
            "10",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let refused = filled.cli(&args).output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
        assert!(
            said(&refused).contains("cannot be used with"),
            "{}",
            said(&refused)
        );
    }
    let refused = filled
        .command(&[
            "export",
            "--compress",
            "zstd",
            "--admin-url",
            "http://127.0.0.1:9",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
    let refused = filled
        .cli(&[
            "export",
            "--compress",
            "lz4",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
    assert!(
        said(&refused).contains("zstd, gzip or none"),
        "{}",
        said(&refused)
    );
    assert!(!out.exists());
}
