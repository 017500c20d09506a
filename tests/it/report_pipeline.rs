//! `govgate report`'s pipeline on a filled ledger: the whole log verified
//! while the period is read (one progress display that reaches its
//! total), the report's bundle chunked and compressed (`govgate-bundle/3`),
//! accepted by `verify --report`, by the Python verifier and by `report
//! --bundle`; a period at the end of the log reads only its own entries
//! but still has the whole log verified.

use crate::support::audit::{both_accept_bundle, said};
use crate::support::filled::Filled;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

const DECISIONS: u64 = 3000;

/// `govgate report --from FROM --to 2100-01-01T00:00:00Z --out DIR` with a
/// progress line each time more entries are done.
fn report(filled: &Filled, from: &str, out: &Path) -> Output {
    let made = filled
        .cli(&[
            "report",
            "--from",
            from,
            "--to",
            "2100-01-01T00:00:00Z",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("GOVGATE_PROGRESS_EVERY", "1")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", said(&made));
    made
}

/// The `done/total` of each progress line of the report's one pass.
fn progress(made: &Output) -> Vec<(u64, u64)> {
    String::from_utf8_lossy(&made.stderr)
        .lines()
        .filter_map(|line| line.strip_prefix("govgate: verifying and reading the period "))
        .map(|rest| {
            let counts = rest.split_whitespace().next().unwrap();
            let (done, total) = counts.split_once('/').unwrap();
            (done.parse().unwrap(), total.parse().unwrap())
        })
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn verify_report(dir: &Path, vkey: &str) -> String {
    let checked = filled_command(&["verify", "--report", dir.to_str().unwrap(), "--vkey", vkey]);
    assert!(checked.status.success(), "{}", said(&checked));
    said(&checked)
}

fn filled_command(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .args(args)
        .env_remove("GOVGATE_PROGRESS_EVERY")
        .output()
        .unwrap()
}

#[test]
fn a_report_has_a_compressed_chunked_bundle_that_every_verifier_accepts() {
    let filled = Filled::new(DECISIONS as usize);
    let out = filled.dir.path().join("report");
    let made = report(&filled, "2000-01-01T00:00:00Z", &out);

    // One display for both: the whole log verified (3000 entries) and the
    // period read (the same 3000), done only when both are.
    let lines = progress(&made);
    assert_eq!(
        lines.last(),
        Some(&(2 * DECISIONS, 2 * DECISIONS)),
        "{}",
        said(&made)
    );
    assert!(lines.windows(2).all(|w| w[0].0 <= w[1].0), "{lines:?}");

    let found = json(&out.join("report.json"));
    assert_eq!(found["scope"]["entries"], DECISIONS);
    assert_eq!(found["scope"]["last_seq"], DECISIONS - 1);
    assert_eq!(found["traffic"]["decisions"], DECISIONS);
    assert_eq!(
        found["traffic"]["by_caller"]["counts"]
            .as_object()
            .unwrap()
            .len(),
        1
    );

    let bundle = out.join("bundle");
    let manifest = json(&bundle.join("manifest.json"));
    assert_eq!(manifest["format"], "govgate-bundle/3");
    assert_eq!(manifest["compression"], "zstd");
    // The bundle runs to the report_issued entry (the ledger, opened to
    // append it, records its own opening first: seq 3000).
    let bundled = bundle_entries(&bundle);
    assert_eq!(manifest["to"], DECISIONS + 2);
    assert_eq!(bundled.len() as u64, DECISIONS + 2);
    assert_eq!(bundled.last().unwrap()["kind"], "report_issued");
    assert!(!bundle.join("entries.jsonl").exists());
    assert!(
        bundle
            .join("chunks/000000000000/entries.jsonl.zst")
            .is_file()
    );

    let checked = verify_report(&out, &filled.vkey);
    assert!(
        checked.contains(&format!(
            "report ok: every figure recomputes from the bundle's entries 0..={}",
            DECISIONS - 1
        )),
        "{checked}"
    );
    let (rust, python) = both_accept_bundle(&filled.vkey, &bundle);
    assert!(rust.contains("bundle ok"), "{rust}");
    assert!(python.starts_with("OK bundle"), "{python}");

    // A report made from that bundle copies its chunks, and verifies.
    let again = filled.dir.path().join("from-bundle");
    let from_bundle = filled_command(&[
        "report",
        "--bundle",
        bundle.to_str().unwrap(),
        "--vkey",
        &filled.vkey,
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
        "--out",
        again.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(from_bundle.status.success(), "{}", said(&from_bundle));
    assert_eq!(
        json(&again.join("report.json"))["traffic"],
        found["traffic"]
    );
    assert!(
        again
            .join("bundle/chunks/000000000000/entries.jsonl.zst")
            .is_file(),
        "{}",
        said(&from_bundle)
    );
    let checked = verify_report(&again, &filled.vkey);
    assert!(checked.contains("made from a bundle"), "{checked}");
}

#[test]
fn a_period_at_the_end_reads_its_entries_only_but_the_whole_log_is_verified() {
    let filled = Filled::new(DECISIONS as usize);
    // A first report appends its report_issued entry (seq 3000) after
    // every decision: the second report's period starts at its time.
    let first = filled.dir.path().join("first");
    report(&filled, "2000-01-01T00:00:00Z", &first);
    let bundled = bundle_entries(&first.join("bundle"));
    let issued = bundled.last().unwrap();
    assert_eq!(issued["kind"], "report_issued");
    let from = issued["time"].as_str().unwrap();
    // The period: the entries from that time on (the report_issued entry,
    // and the ledger's opening before it if in the same millisecond).
    let size = bundled.len() as u64;
    let first_seq = bundled
        .iter()
        .find(|entry| entry["time"].as_str().unwrap() >= from)
        .map(|entry| entry["seq"].as_u64().unwrap())
        .unwrap();
    assert!(first_seq >= DECISIONS, "{first_seq}");

    let second = filled.dir.path().join("second");
    let made = report(&filled, from, &second);
    let found = json(&second.join("report.json"));
    assert_eq!(found["scope"]["first_seq"], first_seq);
    assert_eq!(found["scope"]["last_seq"], size - 1);
    assert_eq!(found["scope"]["entries"], size - first_seq);
    assert_eq!(found["traffic"]["decisions"], 0);
    // Verified: the whole log (every entry up to the first report's
    // report_issued); read: the period's own entries only.
    assert_eq!(
        progress(&made).last(),
        Some(&(size + size - first_seq, size + size - first_seq)),
        "{}",
        said(&made)
    );
    // Its bundle starts at the period.
    assert_eq!(
        json(&second.join("bundle/manifest.json"))["from"],
        first_seq
    );
    let checked = verify_report(&second, &filled.vkey);
    assert!(
        checked.contains(&format!("entries {first_seq}..={}", size - 1)),
        "{checked}"
    );
}

/// Every entry of the (chunked) bundle in `dir`, as JSON, read as the
/// report's verification reads them.
pub(crate) fn bundle_entries(dir: &Path) -> Vec<Value> {
    let mut entries = govgate::report::BundleEntries::open(dir).unwrap();
    let mut read = Vec::new();
    while let Some((seq, line)) = entries.next_line().unwrap() {
        let entry: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(entry["seq"], seq);
        read.push(entry);
    }
    read
}
