//! The policy set at start: loaded and recorded with the hash of every
//! file, or the start refused naming the broken file and line.

use crate::models;
use crate::support::{Gateway, TestUpstream};
use sha2::{Digest, Sha256};
use std::path::Path;

/// A folder with the repository's example policies, plus `extra` files.
fn policy_dir(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for file in std::fs::read_dir(shipped).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "rego") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn review_table(dir: &Path) -> String {
    format!("\n[review]\npolicies_dir = \"{}\"\n", dir.display())
}

#[tokio::test]
async fn the_loaded_policy_set_is_an_entry_with_every_files_hash() {
    let upstream = TestUpstream::start().await;
    let policies = policy_dir(&[]);
    let rest = format!(
        "{}{}",
        models(&upstream.url()),
        review_table(policies.path())
    );
    let gateway = Gateway::start(&rest).await;
    let entries = gateway.entries().await;
    let loaded: Vec<_> = entries
        .iter()
        .filter(|e| e["kind"] == "policy_set_loaded")
        .collect();
    assert_eq!(loaded.len(), 1, "one policy set loaded at start");
    let mut expected: Vec<(String, String)> = std::fs::read_dir(policies.path())
        .unwrap()
        .map(|f| f.unwrap().path())
        // The shipped tests are in the folder but never served.
        .filter(|path| !path.to_string_lossy().ends_with("_test.rego"))
        .map(|path| {
            let hash = Sha256::digest(std::fs::read(&path).unwrap());
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                hex,
            )
        })
        .collect();
    expected.sort();
    let recorded: Vec<(String, String)> = loaded[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_owned(),
                f["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(recorded, expected);
    assert!(expected.len() >= 4, "the shipped examples: {expected:?}");
    let tests = std::fs::read_dir(policies.path())
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("_test.rego")
        })
        .count();
    assert!(tests >= 4, "the shipped tests were copied too");
}

#[tokio::test]
async fn a_broken_policy_stops_the_start_naming_file_and_line() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let before = gateway.entries().await.len();
    gateway.stop().await;
    let broken = policy_dir(&[(
        "broken.rego",
        "package govgate\n\nimport rego.v1\n\ndeny contains \"x\" if {\n    input.model ==\n}\n",
    )]);
    let text = std::fs::read_to_string(gateway.dir.path().join("govgate.toml")).unwrap()
        + &review_table(broken.path());
    std::fs::write(gateway.dir.path().join("broken.toml"), text).unwrap();
    let checked = gateway.cli_with("broken.toml", &["check-config"]);
    assert_eq!(
        checked.status.code(),
        Some(2),
        "check-config refuses it too"
    );
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains("broken.rego:"),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let refused = gateway.cli_with("broken.toml", &["serve"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "refused to start");
    assert!(stderr.contains("broken.rego:"), "{stderr}");
    let line: u32 = stderr
        .split("broken.rego:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("a line number: {stderr}"));
    assert!((6..=7).contains(&line), "line {line}: {stderr}");
    // Nothing was written: the ledger is as the last run left it.
    gateway.restart().await;
    let after = gateway.entries().await;
    assert_eq!(
        after[before..]
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ["gateway_stopped", "gateway_started"]
    );
}
