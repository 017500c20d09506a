//! The offline ledger commands as an auditor or an operator on another
//! machine runs them: without the upstream credentials the config names,
//! or with only a data directory and the verifier key; with progress on a
//! long run; and an export killed midway never leaves a bundle that looks
//! complete.

use crate::models;
use crate::support::filled::Filled;
use crate::support::{Gateway, TestUpstream};
use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

fn said(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn succeeds(output: Output, what: &str) -> String {
    assert!(output.status.success(), "{what}: {}", said(&output));
    said(&output)
}

#[tokio::test]
async fn offline_commands_need_no_upstream_credentials() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let decision = gateway.infer("{}").await.decision_id();
    gateway.infer("{}").await;
    gateway.stop().await;
    let dir = gateway.dir.path();
    let config = dir.join("govgate.toml");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
            .env_remove("TEST_UPSTREAM_KEY")
            .env_remove("GOVGATE_CONFIG")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    // The gateway itself does need it: the variable really is unset.
    let refused = run(&["check-config"]);
    assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
    assert!(
        said(&refused).contains("TEST_UPSTREAM_KEY"),
        "{}",
        said(&refused)
    );

    succeeds(run(&["verify"]), "verify");
    let out = dir.join("bundle");
    succeeds(
        run(&["export", "--payloads", "--out", out.to_str().unwrap()]),
        "export",
    );
    let receipt = succeeds(run(&["proof", "--decision", &decision]), "proof");
    assert!(
        receipt.contains(crate::support::gateway::TEST_ORIGIN),
        "{receipt}"
    );
    let printed = succeeds(run(&["vkey"]), "vkey");
    assert_eq!(printed.trim(), gateway.vkey);
    let erased = succeeds(
        run(&["erase", "--decision", &decision, "--reason", "DSR-1"]),
        "erase",
    );
    assert!(erased.contains("payload erased"), "{erased}");
    let next_key = dir.join("next.key");
    let next_vkey =
        crate::support::gateway::keygen(&next_key, crate::support::gateway::TEST_ORIGIN);
    succeeds(
        run(&["rotate-key", "--new-key", next_key.to_str().unwrap()]),
        "rotate-key",
    );
    // The log now ends at the new key, before the config is changed to it.
    let data = dir.join("data");
    let verified = succeeds(
        run(&[
            "verify",
            "--data-dir",
            data.to_str().unwrap(),
            "--vkey",
            &next_vkey,
        ]),
        "verify after erase and rotation",
    );
    assert!(verified.contains("ledger ok"), "{verified}");
}

#[test]
fn a_data_directory_and_the_verifier_key_are_enough_and_what_is_missing_is_named() {
    let filled = Filled::new(30);
    let data = filled.data_dir();
    let data = data.to_str().unwrap();
    let vkey_file = filled.dir.path().join("log.vkey");
    std::fs::write(&vkey_file, format!("{}\n", filled.vkey)).unwrap();
    let at_vkey = format!("@{}", vkey_file.display());
    // No config at all: GOVGATE_CONFIG and the default path name nothing.
    let nowhere = filled.dir.path().join("absent");
    std::fs::create_dir(&nowhere).unwrap();
    let run = |args: &[&str]| {
        let mut command = filled.command(args);
        command.current_dir(&nowhere);
        command.output().unwrap()
    };
    let verified = succeeds(
        run(&["verify", "--data-dir", data, "--vkey", &filled.vkey]),
        "verify",
    );
    assert!(verified.contains("ledger ok: 30 entries"), "{verified}");
    let out = filled.dir.path().join("bundle");
    succeeds(
        run(&[
            "export",
            "--data-dir",
            data,
            "--vkey",
            &at_vkey,
            "--out",
            out.to_str().unwrap(),
        ]),
        "export",
    );
    let bundle = succeeds(
        run(&[
            "verify",
            "--bundle",
            out.to_str().unwrap(),
            "--vkey",
            &filled.vkey,
        ]),
        "verify --bundle",
    );
    assert!(bundle.contains("bundle ok"), "{bundle}");
    succeeds(
        run(&[
            "proof",
            "--data-dir",
            data,
            "--vkey",
            &at_vkey,
            "--old",
            "10",
            "--new",
            "30",
        ]),
        "proof",
    );

    // A wrong key is a failed verification, not a pass.
    let other = crate::support::gateway::keygen(
        &filled.dir.path().join("other.key"),
        crate::support::gateway::TEST_ORIGIN,
    );
    let wrong = run(&["verify", "--data-dir", data, "--vkey", &other]);
    assert_eq!(wrong.status.code(), Some(1), "{}", said(&wrong));
    // What is missing is named.
    let no_key = run(&["verify", "--data-dir", data]);
    assert_eq!(no_key.status.code(), Some(2), "{}", said(&no_key));
    assert!(said(&no_key).contains("--vkey"), "{}", said(&no_key));
    let empty = nowhere.to_str().unwrap();
    for args in [
        vec!["verify", "--data-dir", empty, "--vkey", &filled.vkey],
        vec![
            "export",
            "--data-dir",
            empty,
            "--vkey",
            &filled.vkey,
            "--out",
            "x",
        ],
    ] {
        let missing = run(&args);
        assert_eq!(
            missing.status.code(),
            Some(2),
            "{args:?}: {}",
            said(&missing)
        );
        assert!(
            said(&missing).contains("no ledger in") && said(&missing).contains("--data-dir"),
            "{args:?}: {}",
            said(&missing)
        );
        assert!(
            !nowhere.join("ledger").exists(),
            "no empty ledger is created"
        );
    }
    let no_config = run(&["verify"]);
    assert_eq!(no_config.status.code(), Some(2), "{}", said(&no_config));
    assert!(
        said(&no_config).contains("config/govgate.toml"),
        "{}",
        said(&no_config)
    );
}

/// The lines of `what` progress ("verifying", "exporting") in `stderr`.
fn progress_lines(output: &Output, what: &str) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.starts_with(&format!("govgate: {what} ")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn long_offline_commands_write_periodic_progress_lines_when_not_on_a_terminal() {
    // Store verification reports after each chunk of 4096 entries.
    let filled = Filled::new(9_000);
    let verify = filled
        .cli(&["verify"])
        .env("GOVGATE_PROGRESS_EVERY", "4000")
        .output()
        .unwrap();
    let lines = progress_lines(&verify, "verifying");
    assert!(verify.status.success(), "{}", said(&verify));
    let counts: Vec<&str> = lines
        .iter()
        .map(|line| line.split_whitespace().nth(2).unwrap_or_default())
        .collect();
    assert_eq!(counts, ["4096/9000", "8192/9000"], "{}", said(&verify));
    assert!(
        lines
            .iter()
            .all(|line| line.contains("/s, ") && line.ends_with(" left")),
        "{lines:?}"
    );

    let out = filled.dir.path().join("bundle");
    let export = filled
        .cli(&["export", "--payloads", "--out", out.to_str().unwrap()])
        .env("GOVGATE_PROGRESS_EVERY", "2500")
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", said(&export));
    let lines = progress_lines(&export, "exporting");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains(" 2500/9000 entries (28%), "), "{lines:?}");
    assert!(
        String::from_utf8_lossy(&export.stdout).starts_with("wrote "),
        "the summary stays on stdout: {}",
        said(&export)
    );

    // By default, a run shorter than the 10 s interval writes no line,
    // and --quiet none at all.
    let plain = filled.cli(&["verify"]).output().unwrap();
    assert_eq!(progress_lines(&plain, "verifying"), Vec::<String>::new());
    let quiet = filled
        .cli(&["verify", "--quiet"])
        .env("GOVGATE_PROGRESS_EVERY", "1")
        .output()
        .unwrap();
    assert!(quiet.status.success(), "{}", said(&quiet));
    assert_eq!(progress_lines(&quiet, "verifying"), Vec::<String>::new());
    let bad = filled
        .cli(&["verify"])
        .env("GOVGATE_PROGRESS_EVERY", "often")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", said(&bad));
    assert!(
        said(&bad).contains("GOVGATE_PROGRESS_EVERY"),
        "{}",
        said(&bad)
    );
}

/// Starts `export --payloads --out OUT`, waits for its first progress line
/// and stops it with `signal` (`KILL`, `INT`). The export writes a line per
/// entry and nobody drains the pipe after the first, so it is blocked, not
/// finished, when the signal comes.
fn interrupt_export(filled: &Filled, out: &std::path::Path, signal: &str) {
    let export = filled.cli(&["export", "--payloads", "--out", out.to_str().unwrap()]);
    // A test run started in the background of a non-interactive shell
    // inherits SIGINT ignored, and exec keeps that: the export would
    // outlive its SIGINT. Ctrl-C reaches a user's export with the default
    // action, so the export runs under `env --default-signal=INT`.
    let mut defaulted = std::process::Command::new("env");
    defaulted
        .arg("--default-signal=INT")
        .arg(export.get_program())
        .args(export.get_args());
    for (key, value) in export.get_envs() {
        match value {
            Some(value) => defaulted.env(key, value),
            None => defaulted.env_remove(key),
        };
    }
    if let Some(dir) = export.get_current_dir() {
        defaulted.current_dir(dir);
    }
    let mut child = defaulted
        .env("GOVGATE_PROGRESS_EVERY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "export ended early"
        );
        if line.starts_with("govgate: exporting ") {
            break;
        }
    }
    // The rest of its progress lines are read, so a full pipe never holds
    // the export up.
    let drained = std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let killed = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let _ = drained.join();
    assert!(!status.success(), "the export was stopped by SIG{signal}");
}

#[test]
fn an_export_killed_midway_leaves_no_bundle_and_the_next_one_cleans_up() {
    let filled = Filled::new(3_000);
    let out = filled.dir.path().join("bundle");
    let out_arg = out.to_str().unwrap();
    let partial = filled.dir.path().join("bundle.partial");
    for signal in ["KILL", "INT"] {
        interrupt_export(&filled, &out, signal);
        assert!(!out.exists(), "SIG{signal}: nothing at --out");
        assert!(
            partial.join("GOVGATE-EXPORT-INCOMPLETE").is_file(),
            "SIG{signal}: the partial export is marked"
        );
        // Both verifiers refuse what was left, saying why.
        for dir in [&out, &partial, &partial.join("bundle")] {
            let refused = filled
                .command(&[
                    "verify",
                    "--bundle",
                    dir.to_str().unwrap(),
                    "--vkey",
                    &filled.vkey,
                ])
                .output()
                .unwrap();
            assert_eq!(
                refused.status.code(),
                Some(2),
                "{dir:?}: {}",
                said(&refused)
            );
            assert!(
                said(&refused).contains("did not finish"),
                "{dir:?}: {}",
                said(&refused)
            );
        }
        let python = crate::support::python_verifier(&[
            "bundle".as_ref(),
            "--vkey".as_ref(),
            filled.vkey.as_ref(),
            partial.join("bundle").as_os_str(),
        ]);
        assert_ne!(python.status.code(), Some(0), "{}", said(&python));
        assert!(said(&python).contains("manifest"), "{}", said(&python));
    }
    let again = filled
        .cli(&["export", "--payloads", "--out", out_arg])
        .output()
        .unwrap();
    let again = succeeds(again, "export after the interrupted ones");
    assert!(again.contains("removing"), "{again}");
    assert!(!partial.exists());
    let verified = filled
        .command(&["verify", "--bundle", out_arg, "--vkey", &filled.vkey])
        .output()
        .unwrap();
    let verified = succeeds(verified, "verify --bundle");
    assert!(verified.contains("entries 0..3000"), "{verified}");
    // A finished bundle is never written over.
    let twice = filled.cli(&["export", "--out", out_arg]).output().unwrap();
    assert_eq!(twice.status.code(), Some(2), "{}", said(&twice));
    assert!(said(&twice).contains("already exists"), "{}", said(&twice));
}

/// The address space `verify --bundle` is given in the test below. The
/// debug binary needs about 64 MB of it on its own (its mapped code and
/// data, a stack, the allocator's first segments), and on one core about
/// 32 MB more for rounds of bundle lines; a verifier that holds a bundle
/// file whole needs the file's size on top of the 64 MB.
const VERIFY_ADDRESS_SPACE: u64 = 160 << 20;

/// `govgate verify --bundle DIR --vkey VKEY` in [`VERIFY_ADDRESS_SPACE`]
/// on one core. prlimit(1) sets the limit before the binary starts, so
/// nothing it allocates escapes it; taskset(1) gives it one core, so one
/// thread: the threads a verifier starts per core each reserve address
/// space of their own (a stack, an allocator heap), which would make the
/// limit depend on the machine.
fn verify_limited(dir: &std::path::Path, vkey: &str) -> Output {
    std::process::Command::new("taskset")
        .args(["--cpu-list", &a_core(), "prlimit"])
        .arg(format!("--as={VERIFY_ADDRESS_SPACE}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_govgate"))
        .args(["verify", "--bundle", dir.to_str().unwrap(), "--vkey", vkey])
        .env_remove("GOVGATE_CONFIG")
        .output()
        .unwrap()
}

/// The first core this process may run on (`Cpus_allowed_list`).
fn a_core() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    list.split([',', '-']).next().unwrap().to_owned()
}

#[test]
fn verify_bundle_streams_a_bundle_much_larger_than_the_memory_it_may_use() {
    // 1 300 decisions with 48 KB request and response bodies: a bundle of
    // about 170 MB, almost all of it payloads.jsonl.
    let filled = Filled::with_payloads(1_300, Some(48 << 10));
    let out = filled.dir.path().join("bundle");
    let export = filled
        .cli(&[
            "export",
            "--quiet",
            "--payloads",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    succeeds(export, "export");
    let size: u64 = std::fs::read_dir(&out)
        .unwrap()
        .map(|file| file.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        size > VERIFY_ADDRESS_SPACE,
        "the bundle ({size} bytes) must be larger than the verifier's address space"
    );
    let verify = |dir: &std::path::Path| verify_limited(dir, &filled.vkey);
    let verified = verify(&out);
    let said_ok = succeeds(verified, "verify --bundle under the memory limit");
    assert!(
        said_ok.contains("bundle ok: ") && said_ok.contains(" 1300 payloads,"),
        "{said_ok}"
    );

    // A damaged line deep in the bundle is still named by its file, line
    // and seq (the manifest's file list made to match, as a forger would).
    let entries = out.join("entries.jsonl");
    let text = std::fs::read_to_string(&entries).unwrap();
    let damaged: String = text
        .lines()
        .enumerate()
        .map(|(i, line)| match i {
            1_234 => line.replacen('{', "{ ", 1) + "\n",
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&entries, &damaged).unwrap();
    let manifest_path = out.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    use sha2::Digest;
    manifest["files"]["entries.jsonl"]["sha256"] = serde_json::Value::String(
        sha2::Sha256::digest(damaged.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    );
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let refused = verify(&out);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused).contains(
            "first bad seq 1234: entries.jsonl line 1235: bytes are not RFC 8785 canonical JSON"
        ),
        "{}",
        said(&refused)
    );

    // The same ledger chunked (govgate-bundle/3), its chunks checked by
    // the parallel pass (one at a time on the one core), under the same
    // limit.
    let chunked = filled.dir.path().join("chunked");
    let export = filled
        .cli(&[
            "export",
            "--quiet",
            "--payloads",
            "--chunk-entries",
            "400",
            "--out",
            chunked.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    succeeds(export, "export --chunk-entries");
    std::fs::remove_dir_all(&out).unwrap();
    let said_ok = succeeds(
        verify(&chunked),
        "verify --bundle (chunked) under the memory limit",
    );
    assert!(
        said_ok.contains("bundle ok: ") && said_ok.contains(" 1300 payloads,"),
        "{said_ok}"
    );
}

#[test]
fn verify_bundle_streams_a_sparse_bundle_much_larger_than_the_memory_it_may_use() {
    // 18 000 decisions with 3 KB request and response bodies, exported by
    // model (the sparse form: each entry with its inclusion proof): about
    // 180 MB. Held in memory, 15 000 such entries with their proofs
    // already need more than the verifier's address space.
    let filled = Filled::with_payloads(18_000, Some(3 << 10));
    let out = filled.dir.path().join("sparse");
    let export = filled
        .cli(&[
            "export",
            "--quiet",
            "--payloads",
            "--model",
            "scorer",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    succeeds(export, "export --model");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "govgate-bundle-sparse/1");
    let size: u64 = std::fs::read_dir(&out)
        .unwrap()
        .map(|file| file.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        size > VERIFY_ADDRESS_SPACE,
        "the bundle ({size} bytes) must be larger than the verifier's address space"
    );
    let verified = verify_limited(&out, &filled.vkey);
    let said_ok = succeeds(verified, "verify --bundle (sparse) under the memory limit");
    assert!(
        said_ok.contains("sparse bundle (model=scorer) ok") && said_ok.contains(" 18000 payloads"),
        "{said_ok}"
    );
}

#[test]
fn verify_bundle_of_a_range_whose_payloads_retention_erased_stays_in_bounded_memory() {
    // 60 000 decisions, every payload erased afterwards (as retention
    // does): a bundle of the decisions carries one context line for each
    // erasure, its entry and inclusion path, about 67 MB of context.jsonl.
    // A verifier that holds the file and its parsed lines (entries as
    // JSON values, paths) needs several times that.
    const DECISIONS: u64 = 60_000;
    let filled = Filled::erased(DECISIONS as usize);
    let out = filled.dir.path().join("bundle");
    let to = DECISIONS.to_string();
    filled.export(&out, &["--to", &to]);
    let context = std::fs::metadata(out.join("context.jsonl")).unwrap().len();
    assert!(
        context > VERIFY_ADDRESS_SPACE / 3,
        "context.jsonl ({context} bytes) must be a large part of the verifier's address space"
    );
    let verified = |dir: &std::path::Path, what: &str| {
        let said_ok = succeeds(verify_limited(dir, &filled.vkey), what);
        let range = format!("entries 0..{DECISIONS}");
        assert!(
            said_ok.contains("bundle ok: ")
                && said_ok.contains(&range)
                && said_ok.contains(" 0 payloads,"),
            "{what}: {said_ok}"
        );
    };
    verified(
        &out,
        "verify --bundle (erased range) under the memory limit",
    );

    // Chunked, the chunks checked by the parallel pass, under the same
    // limit.
    let chunked = filled.dir.path().join("chunked");
    filled.export(&chunked, &["--to", &to, "--chunk-entries", "20000"]);
    verified(
        &chunked,
        "verify --bundle (erased range, chunked) under the memory limit",
    );
    std::fs::remove_dir_all(&chunked).unwrap();

    // The erasures are what excuse the missing payloads: one context line
    // dropped (its path then leads nowhere else, the manifest made to
    // match) leaves a decision whose payload is neither there nor erased.
    let path = out.join("context.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 41_999)
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    std::fs::write(&path, kept.as_bytes()).unwrap();
    refresh_listed(&out, "context.jsonl", kept.as_bytes());
    let refused = verify_limited(&out, &filled.vkey);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused).contains("first bad seq 41999: payload missing"),
        "{}",
        said(&refused)
    );
}

/// The manifest's line count and SHA-256 of `name` made to match `bytes`,
/// as a forger would.
fn refresh_listed(bundle: &std::path::Path, name: &str, bytes: &[u8]) {
    use sha2::Digest;
    let manifest_path = bundle.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let lines = bytes.iter().filter(|b| **b == b'\n').count();
    manifest["files"][name]["lines"] = lines.into();
    manifest["files"][name]["sha256"] = serde_json::Value::String(
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    );
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
}
