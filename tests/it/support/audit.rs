//! Offline audits with both verifiers: `govgate verify` (the gateway's own)
//! and tools/govgate_verify.py (independent), on bundles and on a stopped
//! gateway's whole ledger.

use super::Gateway;
use std::path::Path;
use std::process::Output;

/// Stdout and stderr of a command, for messages and `contains` checks.
pub fn said(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// `govgate verify --bundle DIR --vkey VKEY` (VKEY the key or `@FILE`); no
/// configuration is read.
pub fn rust_bundle(vkey: &str, dir: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .args(["verify", "--bundle"])
        .arg(dir)
        .args(["--vkey", vkey])
        .output()
        .unwrap()
}

/// tools/govgate_verify.py `bundle --vkey VKEY DIR`.
pub fn python_bundle(vkey: &str, dir: &Path) -> Output {
    super::python_verifier(&[
        "bundle".as_ref(),
        "--vkey".as_ref(),
        vkey.as_ref(),
        dir.as_os_str(),
    ])
}

/// Both verifiers accept the bundle; returns what each printed (`govgate`'s
/// first).
pub fn both_accept_bundle(vkey: &str, dir: &Path) -> (String, String) {
    let rust = rust_bundle(vkey, dir);
    assert!(
        rust.status.success(),
        "govgate verify --bundle {}: {}",
        dir.display(),
        said(&rust)
    );
    let python = python_bundle(vkey, dir);
    assert!(
        python.status.success(),
        "govgate_verify.py bundle {}: {}",
        dir.display(),
        said(&python)
    );
    (said(&rust), said(&python))
}

/// What [`Gateway::audit_offline`] saw.
pub struct Audit {
    /// `govgate verify` of the store.
    pub store: String,
    /// Both verifiers on the contiguous bundle of the whole log, with payloads.
    pub whole: (String, String),
    /// Both verifiers on each requested model's sparse bundle, with payloads.
    pub models: Vec<(String, String)>,
}

impl Gateway {
    /// For a stopped gateway: its log exported into its directory's `name`
    /// with `extra` options, and accepted by both verifiers (panics
    /// otherwise); the bundle's directory.
    pub fn export_both_accept(&self, name: &str, extra: &[&str]) -> std::path::PathBuf {
        let out = self.dir.path().join(name);
        let mut args = vec!["export", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let exported = self.cli(&args);
        assert!(
            exported.status.success(),
            "export {extra:?}: {}",
            said(&exported)
        );
        both_accept_bundle(&self.vkey, &out);
        out
    }

    /// For a stopped gateway: `govgate verify` of its store, then the whole
    /// log exported with payloads and, for each of `models`, a model bundle,
    /// each accepted by both verifiers (panics otherwise). The bundles are
    /// written into the gateway's directory (`audit-whole`, `audit-<model>`).
    pub fn audit_offline(&self, models: &[&str]) -> Audit {
        let store = self.cli(&["verify"]);
        assert!(store.status.success(), "govgate verify: {}", said(&store));
        let bundle = |name: &str, extra: &[&str]| {
            let out = self.dir.path().join(format!("audit-{name}"));
            let mut args = vec!["export", "--payloads", "--out", out.to_str().unwrap()];
            args.extend_from_slice(extra);
            let exported = self.cli(&args);
            assert!(
                exported.status.success(),
                "export {extra:?}: {}",
                said(&exported)
            );
            both_accept_bundle(&self.vkey, &out)
        };
        Audit {
            store: said(&store),
            whole: bundle("whole", &[]),
            models: models
                .iter()
                .map(|model| bundle(model, &["--model", model]))
                .collect(),
        }
    }
}

/// What a forger does after editing a bundle: the manifest's file list
/// (not signed) made to match the files again, so the checks behind it
/// are the ones that answer.
pub fn refresh_file_list(dir: &Path) {
    use sha2::Digest;
    let path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let Some(files) = manifest["files"].as_object_mut() else {
        return;
    };
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|file| file.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "manifest.json")
        .collect();
    files.clear();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let lines = bytes.iter().filter(|b| **b == b'\n').count();
        let sha: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        files.insert(name, serde_json::json!({ "lines": lines, "sha256": sha }));
    }
    std::fs::write(&path, format!("{manifest:#}\n")).unwrap();
}
