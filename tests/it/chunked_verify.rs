//! `govgate verify --bundle` on a chunked bundle (`govgate-bundle/3`,
//! docs/audit-format.md section 8.4): zstd and gzip chunks verify; a
//! changed chunk file, a changed entry (file list recomputed) and a
//! changed chunk prefix are refused, named by file (and seq).

use crate::support::audit::said;
use crate::support::filled::Filled;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn export(filled: &Filled, out: &Path, compress: &str) {
    filled.export(out, &["--chunk-entries", "300", "--compress", compress]);
}

fn verify(filled: &Filled, dir: &Path) -> Output {
    filled
        .cli(&[
            "verify",
            "--bundle",
            dir.to_str().unwrap(),
            "--vkey",
            &filled.vkey,
        ])
        .output()
        .unwrap()
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn write_manifest(dir: &Path, manifest: &Value) {
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(manifest).unwrap(),
    )
    .unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn chunked_bundles_verify_and_changes_are_named_by_file_and_seq() {
    let filled = Filled::signed(2_500);
    let root = filled.dir.path();
    for compress in ["zstd", "gzip"] {
        let dir = root.join(compress);
        export(&filled, &dir, compress);
        let m = manifest(&dir);
        assert_eq!(m["format"], "govgate-bundle/3");
        assert!(m["chunks"].as_array().unwrap().len() >= 3, "{m}");
        let output = verify(&filled, &dir);
        assert!(output.status.success(), "{compress}: {}", said(&output));

        // One byte of a compressed chunk file changed: its SHA-256.
        let file = m["chunks"][1]["files"][0].as_str().unwrap().to_owned();
        let path = dir.join(&file);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let output = verify(&filled, &dir);
        let text = said(&output);
        assert!(!output.status.success(), "{compress}: {text}");
        assert!(text.contains(&file) && text.contains("SHA-256"), "{text}");
    }

    // Uncompressed: one entry line changed, the file list made to match.
    let dir = root.join("none");
    export(&filled, &dir, "none");
    let mut m = manifest(&dir);
    let chunk = m["chunks"][1].clone();
    let from = chunk["from"].as_u64().unwrap();
    let file = chunk["files"][0].as_str().unwrap().to_owned();
    let path = dir.join(&file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let changed = lines[4].replacen("\"decision\"", "\"decisiom\"", 1);
    assert_ne!(changed, lines[4]);
    lines[4] = changed;
    let bytes = (lines.join("\n") + "\n").into_bytes();
    std::fs::write(&path, &bytes).unwrap();
    m["files"][&file]["sha256"] = sha256_hex(&bytes).into();
    m["files"][&file]["bytes"] = (bytes.len() as u64).into();
    write_manifest(&dir, &m);
    let output = verify(&filled, &dir);
    let said_now = said(&output);
    assert!(!output.status.success(), "{said_now}");
    let seq = from + 4;
    assert!(
        said_now.contains(&format!("{file}: seq {seq}"))
            || said_now.contains(&format!("{file}: seq {}", seq + 1)),
        "{said_now}"
    );

    // A chunk's prefix changed in the manifest.
    let dir = root.join("prefix");
    export(&filled, &dir, "zstd");
    let output = verify(&filled, &dir);
    assert!(output.status.success(), "{}", said(&output));
    let mut m = manifest(&dir);
    let third = m["chunks"][2].clone();
    let hash = third["prefix"][0].as_str().unwrap();
    let swapped = if hash.starts_with('A') { "B" } else { "A" };
    m["chunks"][2]["prefix"][0] = format!("{swapped}{}", &hash[1..]).into();
    write_manifest(&dir, &m);
    let output = verify(&filled, &dir);
    let text = said(&output);
    assert!(!output.status.success(), "{text}");
    let named = format!(
        "{}: seq {}",
        third["files"][0].as_str().unwrap(),
        third["from"]
    );
    assert!(text.contains(&named) && text.contains("prefix"), "{text}");
}
