//! The independent Python verifier on chunked, compressed bundles that the
//! real `govgate export --chunk-entries N --compress zstd|gzip` writes
//! (docs/audit-format.md section 8.4): each verifies whole, with worker
//! processes and chunk by chunk, and a changed entry in a chunk is named
//! by the chunk's file and the seq.

use crate::support::audit::said;
use crate::support::filled::Filled;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// tools/govgate_verify.py `bundle [extra...] --vkey VKEY DIR`.
fn python_bundle(filled: &Filled, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["bundle"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--vkey", &filled.vkey, dir.to_str().unwrap()]);
    crate::support::python_verifier(&args)
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_python_verifier_checks_real_chunked_bundles_whole_and_chunk_by_chunk() {
    let filled = Filled::signed(2_500);
    let root = filled.dir.path();

    let zstd = root.join("zstd");
    filled.export(&zstd, &["--chunk-entries", "700", "--compress", "zstd"]);
    let chunks = manifest(&zstd)["chunks"].as_array().unwrap().clone();
    assert!(chunks.len() >= 3, "{chunks:?}");
    let whole = python_bundle(&filled, &zstd, &[]);
    assert!(whole.status.success(), "{}", said(&whole));
    assert!(
        said(&whole).contains("OK bundle origin="),
        "{}",
        said(&whole)
    );

    let gzip = root.join("gzip");
    filled.export(&gzip, &["--chunk-entries", "450", "--compress", "gzip"]);
    let parallel = python_bundle(&filled, &gzip, &["--jobs", "2"]);
    assert!(parallel.status.success(), "{}", said(&parallel));
    assert_eq!(
        parallel.stdout, whole.stdout,
        "the same bundle content, the same result"
    );

    // Each chunk alone, with the checks it cannot make named.
    for chunk in &chunks {
        let from = chunk["from"].as_u64().unwrap();
        let alone = python_bundle(&filled, &zstd, &["--chunk", &format!("{from:012}")]);
        assert!(alone.status.success(), "chunk {from}: {}", said(&alone));
        let out = said(&alone);
        assert!(
            out.contains("note: not made with --chunk: the joins"),
            "{out}"
        );
        assert!(out.contains(&format!("OK chunk {from}..")), "{out}");
    }

    // One entry of the second chunk changed (and the file list mended, so
    // only the content is wrong): named by its file and seq.
    let second = &chunks[1];
    let from = second["from"].as_u64().unwrap();
    let name = format!("chunks/{from:012}/entries.jsonl.zst");
    let path = zstd.join(&name);
    let content = zstd::stream::decode_all(&std::fs::read(&path).unwrap()[..]).unwrap();
    let mut lines: Vec<Vec<u8>> = content.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let line = String::from_utf8(lines[4].clone()).unwrap();
    assert!(line.contains("\"status\":200"), "{line}");
    lines[4] = line
        .replacen("\"status\":200", "\"status\":201", 1)
        .into_bytes();
    let stored = zstd::stream::encode_all(&lines.join(&b'\n')[..], 3).unwrap();
    std::fs::write(&path, &stored).unwrap();
    let mut mended = manifest(&zstd);
    mended["files"][&name]["sha256"] = sha256_hex(&stored).into();
    mended["files"][&name]["bytes"] = stored.len().into();
    std::fs::write(
        zstd.join("manifest.json"),
        serde_json::to_vec(&mended).unwrap(),
    )
    .unwrap();
    let seq = from + 4;
    for extra in [&[][..], &["--chunk", &from.to_string()][..]] {
        let checked = python_bundle(&filled, &zstd, extra);
        assert_eq!(
            checked.status.code(),
            Some(1),
            "{extra:?}: {}",
            said(&checked)
        );
        let out = said(&checked);
        assert!(
            out.contains(&format!("FAIL {name}: seq {seq}: entry altered")),
            "{extra:?}: {out}"
        );
    }
}
