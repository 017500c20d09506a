//! `govgate export` at scale: a ledger much larger than the memory the
//! export may use is exported whole (every form), and an export killed
//! midway never leaves `--out` looking complete and is finished by the
//! next run of the same command.

use crate::support::audit::said;
use crate::support::filled::Filled;
use std::path::Path;
use std::process::Output;

/// The peak resident memory each export may reach below: the debug binary
/// with the store open takes about 90 MB on its own; an export that keeps
/// what it reads (sled's page cache evicts almost nothing of a sequential
/// read) takes the ledger's size on top.
const EXPORT_PEAK_RSS: u64 = 240 << 20;

/// Runs `command` to its end; its output and its peak resident memory
/// (`VmHWM`, read from /proc while it runs: the high-water mark only
/// grows, so the last reading is the peak up to a few milliseconds
/// before the end).
fn run_measured(command: &mut std::process::Command) -> (Output, u64) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    // Reads of the pipes would block: the outputs here are a few lines,
    // well within a pipe's buffer.
    while child.try_wait().unwrap().is_none() {
        let hwm = std::fs::read_to_string(&status).ok().and_then(|text| {
            let line = text
                .lines()
                .find(|line| line.starts_with("VmHWM:"))?
                .to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        peak = peak.max(hwm.unwrap_or(0) * 1024);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (child.wait_with_output().unwrap(), peak)
}

fn disk_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            disk_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

#[test]
fn exports_stream_a_ledger_much_larger_than_the_memory_they_may_use() {
    // 2 600 decisions with 48 KB request and response bodies: a ledger of
    // about 250 MB, almost all of it payloads.
    let filled = Filled::with_payloads(2_600, Some(48 << 10));
    let ledger = disk_size(&filled.data_dir().join("ledger"));
    assert!(
        ledger > EXPORT_PEAK_RSS,
        "the ledger ({ledger} bytes) must be larger than the memory the export may use"
    );
    let export = |out: &Path, extra: &[&str]| {
        let mut command = filled.cli(&["export", "--quiet", "--payloads"]);
        command.arg("--out").arg(out).args(extra);
        let (output, peak) = run_measured(&mut command);
        assert!(
            output.status.success(),
            "export {extra:?}: {}",
            said(&output)
        );
        assert!(
            peak < EXPORT_PEAK_RSS,
            "export {extra:?}: peak RSS {} MB, over {} MB",
            peak >> 20,
            EXPORT_PEAK_RSS >> 20
        );
        said(&output)
    };
    let root = filled.dir.path();
    let whole = root.join("whole");
    let said = export(&whole, &[]);
    assert!(said.contains("2600 payloads"), "{said}");
    export(
        &root.join("chunked"),
        &["--chunk-entries", "1000", "--compress", "zstd"],
    );
    let said = export(&root.join("sparse"), &["--model", "scorer"]);
    assert!(said.contains("sparse"), "{said}");
    // What came out is the whole ledger: the contiguous bundle verifies.
    let verified = filled
        .command(&[
            "verify",
            "--bundle",
            whole.to_str().unwrap(),
            "--vkey",
            &filled.vkey,
        ])
        .output()
        .unwrap();
    let verified = self::said(&verified);
    assert!(verified.contains(" 2600 payloads,"), "{verified}");
}

#[test]
fn a_chunked_export_killed_midway_is_never_complete_and_the_same_command_starts_over() {
    use std::io::{BufRead, BufReader};
    let filled = Filled::new(3_000);
    let out = filled.dir.path().join("bundle");
    let partial = filled.dir.path().join("bundle.partial");
    let args = [
        "export",
        "--payloads",
        "--chunk-entries",
        "500",
        "--compress",
        "gzip",
        "--out",
        out.to_str().unwrap(),
    ];
    // A progress line per entry, and nobody drains the pipe after the
    // first ones: the export is blocked mid-way, with chunks begun, when
    // SIGKILL comes.
    let mut child = filled
        .cli(&args)
        .env("GOVGATE_PROGRESS_EVERY", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("govgate: exporting ") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "export ended early"
        );
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    assert!(!out.exists(), "nothing at --out");
    assert!(partial.join("GOVGATE-EXPORT-INCOMPLETE").is_file());
    assert!(
        partial.join("bundle/chunks").is_dir(),
        "killed while writing chunks"
    );
    assert!(!partial.join("bundle/manifest.json").exists());
    let refused = filled
        .command(&[
            "verify",
            "--bundle",
            out.to_str().unwrap(),
            "--vkey",
            &filled.vkey,
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
    assert!(
        said(&refused).contains("did not finish"),
        "{}",
        said(&refused)
    );

    // The same command again: it says what it does with what was left.
    let again = filled.cli(&args).output().unwrap();
    assert!(again.status.success(), "{}", said(&again));
    assert!(
        said(&again).contains("that did not finish; exporting again from the start"),
        "{}",
        said(&again)
    );
    assert!(!partial.exists());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "govgate-bundle/3");
    assert_eq!(manifest["to"], 3000);
}
