//! The README's and the docs' shell examples, run as printed
//! (support/blocks.rs says how blocks are marked and run).

use crate::support::blocks::{
    Block, EXAMPLE_ADDRESSES, Session, copy_tree, free_addresses, sh_blocks,
};
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_govgate");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A directory laid out like a fresh clone after `cargo build --release`,
/// its config listening on `addresses` instead of the example's.
fn fresh_clone(addresses: &[String; 2]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for part in ["config", "policies", "tools", "tests/data"] {
        copy_tree(&Path::new(ROOT).join(part), &dir.path().join(part));
    }
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::os::unix::fs::symlink(BIN, dir.path().join("target/release/govgate")).unwrap();
    let path = dir.path().join("config/govgate.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    for (key, (example, free)) in ["public_listen", "admin_listen"]
        .iter()
        .zip(EXAMPLE_ADDRESSES.iter().zip(addresses))
    {
        let line = format!("{key} = \"{example}\"");
        assert!(
            config.contains(&line),
            "config/govgate.toml no longer has `{line}`: update EXAMPLE_ADDRESSES"
        );
        config = config.replace(&line, &format!("{key} = \"{free}\""));
    }
    std::fs::write(&path, config).unwrap();
    dir
}

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(name)).unwrap()
}

/// Every ```sh block of README.md works as printed on a fresh clone, in
/// order: keygen, check-config, serve, the models walkthrough with its
/// tokens (three approvals, activation, a second version, a rollback), a
/// call through the proxy, then on the stopped gateway verify, export of
/// ranges that exist, verify of the bundles and the Python verifier.
#[tokio::test]
async fn readme_commands_work_as_printed_on_a_fresh_clone() {
    let blocks = sh_blocks("README.md", &read("README.md"));
    let count = |f: fn(&Block) -> bool| blocks.iter().filter(|b| f(b)).count();
    assert_eq!(count(|b| b.background), 1, "one gateway: {blocks:#?}");
    assert_eq!(count(|b| b.stop), 1, "stopped once: {blocks:#?}");
    let addresses = free_addresses();
    let clone = fresh_clone(&addresses);
    let mut session = Session::new("README.md", clone.path(), addresses);
    let stdout = session.run_all(&blocks).await;

    // What the walkthrough must have done, beyond every command exiting 0.
    for wanted in [
        // check-config
        ": ok",
        // each approval says what is still needed, the third completes
        // the high-risk policy; activation
        "now proposed: approved by dana, sam; 1 more approval needed",
        "now approved",
        "now active",
        "version_rolled_back",
        // the call through the proxy is answered (no model server) and recorded
        "upstream_unreachable",
        // offline
        "ledger ok: ",
        "bundle ok: ",
        "sparse bundle (since=",
        "OK bundle origin=govgate.example/local",
        "OK sparse bundle origin=govgate.example/local",
    ] {
        assert!(stdout.contains(wanted), "no `{wanted}` in:\n{stdout}");
    }
    let vkey = std::fs::read_to_string(clone.path().join("data/govgate.vkey")).unwrap();
    assert!(
        vkey.starts_with("govgate.example/local+"),
        "data/govgate.vkey: {vkey:?}"
    );
}

/// The files whose ```sh blocks a test here runs; in every other file
/// each block must be marked `skip (why)`.
const RUN: [&str; 13] = [
    "README.md",
    "docs/admin-api.md",
    "docs/reviews.md",
    "docs/verification.md",
    "tools/README.md",
    "docs/audit-format.md",
    "docs/config.md",
    "docs/kpis.md",
    "docs/metrics.md",
    "docs/tiles.md",
    "docs/policies.md",
    "docs/operations.md",
    "docs/evidence.md",
];

/// Runs the files `names` one after the other in `session`, as one
/// reader in one terminal; returns what they printed on stdout.
async fn run_files(session: &mut Session, names: &[&str]) -> String {
    let mut stdout = String::new();
    for name in names {
        session.name = (*name).to_owned();
        stdout.push_str(&session.run_all(&sh_blocks(name, &read(name))).await);
    }
    stdout
}

fn assert_printed(stdout: &str, wanted: &[&str]) {
    for wanted in wanted {
        assert!(stdout.contains(wanted), "no `{wanted}` in:\n{stdout}");
    }
}

/// A session in `dir` for files that start the demo with `govgate demo`
/// (`govgate` on PATH, as the docs print it).
fn demo_session(dir: &Path) -> Session {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("govgate")).unwrap();
    let addresses = free_addresses();
    let mut session = Session::new("", dir, addresses.clone());
    session.path_prefix = Some(bin);
    // The demo's own options for its listeners, which the docs leave
    // at their defaults (the example addresses).
    session.background_args = format!(
        " --public-listen {} --admin-listen {}",
        addresses[0], addresses[1]
    );
    session.ready_after = Some("Try these");
    session
}

/// docs/tiles.md's examples against the demo: the tiles hash to the
/// checkpoint's root, with the headers the doc shows.
#[tokio::test]
async fn tiles_doc_works_as_printed_against_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = run_files(&mut demo_session(dir.path()), &["docs/tiles.md"]).await;
    assert_printed(
        &stdout,
        &[
            "govgate.demo/local\n",
            "cache-control: public, max-age=60",
            "tiles hash to the checkpoint root",
        ],
    );
}

/// The admin API's and the review docs' examples, each file in order
/// against the demo it starts.
#[tokio::test]
async fn docs_commands_work_as_printed_against_the_demo() {
    for name in ["docs/admin-api.md", "docs/reviews.md"] {
        let blocks = sh_blocks(name, &read(name));
        assert!(
            blocks.first().is_some_and(|b| b.background),
            "{name} starts with the demo: {blocks:#?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let stdout = run_files(&mut demo_session(dir.path()), &[name]).await;
        assert!(!stdout.is_empty(), "{name} printed nothing");
    }
}

/// docs/operations.md against the demo: an export from the running
/// gateway, checked by `govgate verify --bundle`.
#[tokio::test]
async fn operations_doc_works_as_printed_against_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = run_files(&mut demo_session(dir.path()), &["docs/operations.md"]).await;
    assert_printed(&stdout, &["wrote evidence: entries 2..", "bundle ok: "]);
}

/// docs/verification.md on a fresh clone: keygen, a gateway that records
/// a call and is stopped, verify, the three exports, verify of a bundle,
/// the Python verifier in its virtual environment.
#[tokio::test]
async fn verification_doc_works_as_printed_on_a_fresh_clone() {
    let addresses = free_addresses();
    let clone = fresh_clone(&addresses);
    let mut session = Session::new("", clone.path(), addresses);
    let stdout = run_files(&mut session, &["docs/verification.md"]).await;
    assert_printed(
        &stdout,
        &[
            "model_version_not_approved",
            "ledger ok: ",
            "wrote bundle-today: ",
            "wrote bundle-scoring: ",
            "bundle ok: ",
            "OK bundle origin=govgate.example/local",
        ],
    );
}

/// tools/README.md on a fresh clone, then docs/audit-format.md's
/// commands on what it left (the bundle, the fetched log), in the same
/// terminal: install, selftest, keygen, a gateway that signs every entry
/// (the receipt's `--signature` example needs it), a receipt, the whole
/// log, then on the stopped gateway a bundle and the audit sample.
#[tokio::test]
async fn verifier_docs_work_as_printed_on_a_fresh_clone() {
    let addresses = free_addresses();
    let clone = fresh_clone(&addresses);
    let path = clone.path().join("config/govgate.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let line = "payloads = \"full\"\n";
    assert!(config.contains(line), "config/govgate.toml: no `{line}`");
    let config = config.replacen(line, &format!("{line}entry_signatures = \"on\"\n"), 1);
    std::fs::write(&path, config).unwrap();
    let mut session = Session::new("", clone.path(), addresses);
    let stdout = run_files(&mut session, &["tools/README.md", "docs/audit-format.md"]).await;
    assert_printed(
        &stdout,
        &[
            "OK selftest ",
            "OK receipt origin=govgate.example/local",
            " signature=ok",
            "OK log origin=govgate.example/local",
            "OK bundle origin=govgate.example/local from=0",
            "OK chunk 0..",
            "bundle ok: ",
            "OK sample decisions=",
            "\"verified\": true",
        ],
    );
}

/// docs/config.md on a fresh clone: keygen, the verifier key derived
/// again two ways, a gateway on the example configuration.
#[tokio::test]
async fn config_doc_works_as_printed_on_a_fresh_clone() {
    let addresses = free_addresses();
    let clone = fresh_clone(&addresses);
    let mut session = Session::new("", clone.path(), addresses);
    let stdout = run_files(&mut session, &["docs/config.md"]).await;
    let vkey = std::fs::read_to_string(clone.path().join("data/govgate.vkey")).unwrap();
    assert!(vkey.starts_with("govgate.example/local+"), "{vkey:?}");
    // keygen, `vkey --key` and `vkey --out` print the key the file holds.
    assert_eq!(stdout.matches(vkey.trim()).count(), 3, "{stdout}");
}

/// docs/policies.md on a fresh clone: the shipped policies' tests, a
/// policy with a failing test (exit 1), an input document evaluated, and
/// policy sets under change control on a gateway it starts.
#[tokio::test]
async fn policies_doc_works_as_printed_on_a_fresh_clone() {
    let addresses = free_addresses();
    let clone = fresh_clone(&addresses);
    let mut session = Session::new("", clone.path(), addresses);
    let stdout = run_files(&mut session, &["docs/policies.md"]).await;
    assert_printed(
        &stdout,
        &[
            "14 tests: 14 passed, 0 failed, 0 errors",
            "  credit_borderline.rego       100.0% (10 of 10 lines)",
            "FAIL  callers_test.rego: data.govgate_test.test_responses_are_not_checked: undefined",
            "3 tests: 2 passed, 1 failed, 0 errors",
            "response  hold\n  hold: borderline credit score in output score: within [0.45, 0.55]\n",
            "request   deny\n  deny: credit-scoring is for the lending group; svc-marketing is in [\"marketing\"]\n",
            // change control: the folder's set approved and activated, a
            // change activated and rolled back, a reload only proposing
            "needs 2 more approval(s)",
            "recorded policy_set_activated",
            "recorded policy_set_rolled_back",
            "(already proposed); it judges nothing until approved and activated",
            "ledger ok: ",
        ],
    );
}

/// docs/kpis.md against the demo: a reference upload, a label for a
/// decision, the counts behind the KPIs.
#[tokio::test]
async fn kpi_doc_works_as_printed_against_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = run_files(&mut demo_session(dir.path()), &["docs/kpis.md"]).await;
    assert_printed(
        &stdout,
        &[
            // the upload's answer
            "\"rows\":4,\"sha256\":",
            "\"result\":\"applied\"",
            "\"fairness\":{",
            "credit-scoring: fairness over the last ",
        ],
    );
}

/// docs/metrics.md from a fresh clone's root (the shipped Prometheus
/// files) against the demo: the scrape and the promtool checks.
#[tokio::test]
#[ignore = "needs promtool (Debian package prometheus); run with: cargo test -- --include-ignored"]
async fn metrics_doc_works_as_printed_against_the_demo() {
    let clone = fresh_clone(&free_addresses());
    let mut session = demo_session(clone.path());
    let stdout = run_files(&mut session, &["docs/metrics.md"]).await;
    assert_printed(
        &stdout,
        &["# TYPE govgate_requests_total counter", "SUCCESS"],
    );
}

/// docs/evidence.md on a fresh clone: a gateway that records a call and
/// is stopped, the period report, and `verify --report`.
#[tokio::test]
async fn evidence_doc_works_as_printed_on_a_fresh_clone() {
    let addresses = free_addresses();
    let clone = fresh_clone(&addresses);
    let mut session = Session::new("", clone.path(), addresses);
    let stdout = run_files(&mut session, &["docs/evidence.md"]).await;
    assert_printed(
        &stdout,
        &[
            "report of ",
            "report ok: ",
            "made from a bundle, so no report_issued entry records it",
        ],
    );
}

/// A file whose examples no test runs cannot slip in: every ```sh block
/// outside the files of `RUN` (docs/fuzzing.md's and docs/development.md's
/// today) is marked `skip (why)`.
#[test]
fn every_documented_command_is_run_or_skipped_for_a_reason() {
    let mut files = vec!["README.md".to_owned(), "tools/README.md".to_owned()];
    for item in std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let name = item.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    for name in files {
        let blocks = sh_blocks(&name, &read(&name));
        let runnable = blocks.iter().filter(|b| !b.skip).count();
        let run = RUN.contains(&name.as_str());
        assert!(
            run || runnable == 0,
            "{name}: {runnable} ```sh blocks that no test runs: run the file in tests/it/readme.rs or mark them `<!-- readme-test: skip (why) -->`"
        );
    }
}

#[test]
fn sh_blocks_take_their_markers_from_the_lines_just_before() {
    let blocks = sh_blocks(
        "x.md",
        "text\n<!-- readme-test: skip (why) -->\n```sh\ncargo build\n```\n\n```sh\na\nb\n```\n\
         <!-- readme-test: background -->\n```sh\nserve\n```\n<!-- readme-test: stop -->\n\
         some text\n```sh\nverify\n```\n```text\nnot sh\n```\n\
         <!-- readme-test: restart -->\n<!-- readme-test: exit 1 -->\n```sh\nok\nrefused\n```\n",
    );
    let got: Vec<Block> = blocks.into_iter().map(|b| Block { line: 0, ..b }).collect();
    let block = |script: &str, mark: fn(&mut Block)| {
        let mut block = Block {
            script: script.to_owned(),
            ..Block::default()
        };
        mark(&mut block);
        block
    };
    assert_eq!(
        got,
        [
            block("cargo build\n", |b| b.skip = true),
            block("a\nb\n", |_| {}),
            block("serve\n", |b| b.background = true),
            // Text between a marker and a block cancels the marker.
            block("verify\n", |_| {}),
            block("ok\nrefused\n", |b| {
                b.restart = true;
                b.exit = Some(1);
            }),
        ]
    );
}

/// A block that changes PATH (as `. .venv/bin/activate` does) or sets a
/// variable changes it for the blocks after it, as in one terminal.
#[tokio::test]
async fn blocks_carry_set_and_changed_variables_to_the_next_ones() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = sh_blocks(
        "x.md",
        "```sh\nmkdir bin && printf '#!/bin/sh\\necho from bin\\n' > bin/hello && chmod +x bin/hello\n\
         export PATH=\"$PWD/bin:$PATH\"\nanswer=42\n```\n\n```sh\nhello\necho \"answer $answer\"\n```\n",
    );
    let mut session = Session::new("x.md", dir.path(), free_addresses());
    let stdout = session.run_all(&blocks).await;
    assert_eq!(stdout, "from bin\nanswer 42\n");
}
