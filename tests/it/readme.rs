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
    for part in ["config", "policies", "tools"] {
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

/// The admin API's and the review docs' examples, each file in order
/// against the demo it starts (`govgate` on PATH, as the docs print it).
#[tokio::test]
async fn docs_commands_work_as_printed_against_the_demo() {
    for name in ["docs/admin-api.md", "docs/reviews.md"] {
        let blocks = sh_blocks(name, &read(name));
        assert!(
            blocks.first().is_some_and(|b| b.background),
            "{name} starts with the demo: {blocks:#?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(BIN, bin.join("govgate")).unwrap();
        let addresses = free_addresses();
        let mut session = Session::new(name, dir.path(), addresses.clone());
        session.path_prefix = Some(bin);
        // The demo's own options for its listeners, which the docs leave
        // at their defaults (the example addresses).
        session.background_args = format!(
            " --public-listen {} --admin-listen {}",
            addresses[0], addresses[1]
        );
        session.ready_after = Some("Try these");
        let stdout = session.run_all(&blocks).await;
        assert!(!stdout.is_empty(), "{name} printed nothing");
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
