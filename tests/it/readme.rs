//! The README's commands, run as printed: every ```sh block of README.md in
//! order, with bash, in a directory laid out like a fresh clone (the
//! repository's `config/`, `policies/` and `tools/`, and the test's binary
//! as `./target/release/govgate`).
//!
//! A block runs in the foreground unless an HTML comment on the line
//! before it says otherwise:
//! - `<!-- readme-test: skip ... -->`: not run (`cargo` commands: the test
//!   has built the binary already);
//! - `<!-- readme-test: background -->`: one long-running command (`serve`),
//!   started in the background; the next blocks run once it printed
//!   `govgate ready`;
//! - `<!-- readme-test: stop -->`: the background command gets SIGINT (the
//!   README's Ctrl-C) and must exit 0 before this block runs.
//!
//! Variables a block sets reach the later blocks, as in one terminal.
//!
//! The example configuration listens on fixed ports (8080, 9090), which
//! another gateway on the machine may hold. The test runs on free ports
//! instead and says so: its copy of config/govgate.toml listens on them,
//! the blocks' `127.0.0.1:8080` and `127.0.0.1:9090` are replaced by them,
//! and `GOVGATE_ADMIN_URL` names the admin one for the command-line
//! clients (whose default is `http://127.0.0.1:9090`). Nothing else in a
//! command changes.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_govgate");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The listeners of config/govgate.toml, which the README's commands use.
const PORTS: [(&str, &str); 2] = [
    ("public_listen", "127.0.0.1:8080"),
    ("admin_listen", "127.0.0.1:9090"),
];
/// Where blocks leave their exported variables for the next ones.
const ENV_FILE: &str = ".readme-test-env";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    Skip,
    Background,
    AfterStop,
}

#[derive(Debug)]
struct Block {
    /// Line of the opening fence in README.md (1-based), for messages.
    line: usize,
    mode: Mode,
    script: String,
}

/// The ```sh blocks of `markdown`, each with the mode its marker gives.
fn sh_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut marker: Option<Mode> = None;
    let mut open: Option<Block> = None;
    for (index, line) in markdown.lines().enumerate() {
        if let Some(block) = open.as_mut() {
            if line.trim_end() == "```" {
                blocks.extend(open.take());
            } else {
                block.script.push_str(line);
                block.script.push('\n');
            }
            continue;
        }
        if line.trim_end() == "```sh" {
            open = Some(Block {
                line: index + 1,
                mode: marker.take().unwrap_or(Mode::Run),
                script: String::new(),
            });
        } else if let Some(rest) = line.trim().strip_prefix("<!-- readme-test:") {
            let word = rest.split_whitespace().next().unwrap_or_default();
            marker = Some(match word {
                "skip" => Mode::Skip,
                "background" => Mode::Background,
                "stop" => Mode::AfterStop,
                other => panic!(
                    "README.md:{}: unknown readme-test marker {other}",
                    index + 1
                ),
            });
        } else if !line.trim().is_empty() {
            marker = None;
        }
    }
    assert!(open.is_none(), "README.md: a ```sh block is not closed");
    blocks
}

/// Copies the directory `from` to `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let name = item.file_name();
        if name == "__pycache__" {
            continue;
        }
        if item.file_type().unwrap().is_dir() {
            copy_tree(&item.path(), &to.join(&name));
        } else {
            std::fs::copy(item.path(), to.join(&name)).unwrap();
        }
    }
}

/// A directory laid out like a fresh clone after `cargo build --release`,
/// its config listening on `ports` instead of the example's.
fn fresh_clone(ports: &[String; 2]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for part in ["config", "policies", "tools"] {
        copy_tree(&Path::new(ROOT).join(part), &dir.path().join(part));
    }
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::os::unix::fs::symlink(BIN, dir.path().join("target/release/govgate")).unwrap();
    let path = dir.path().join("config/govgate.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    for ((key, example), port) in PORTS.iter().zip(ports) {
        let line = format!("{key} = \"{example}\"");
        assert!(
            config.contains(&line),
            "config/govgate.toml no longer has `{line}`: update PORTS"
        );
        config = config.replace(&line, &format!("{key} = \"{port}\""));
    }
    std::fs::write(&path, config).unwrap();
    dir
}

/// Two loopback addresses nothing listens on (just now).
fn free_addresses() -> [String; 2] {
    let listeners = [(); 2].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|listener| listener.local_addr().unwrap().to_string())
}

/// `script` with the example's listen addresses replaced by `ports`.
fn on_ports(script: &str, ports: &[String; 2]) -> String {
    PORTS
        .iter()
        .zip(ports)
        .fold(script.to_owned(), |text, ((_, example), port)| {
            text.replace(example, port)
        })
}

/// A bash command for `script` run in `dir` as a user's shell would, on
/// the test's `ports`, with none of the test's own govgate settings.
fn bash(dir: &Path, script: &str, ports: &[String; 2]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("bash");
    command
        .arg("-c")
        .arg(on_ports(script, ports))
        .current_dir(dir)
        .env_remove("GOVGATE_TOKEN")
        .env("GOVGATE_ADMIN_URL", format!("http://{}", ports[1]))
        .env_remove("GOVGATE_CONFIG")
        .env_remove("GOVGATE_LOG")
        .kill_on_drop(true);
    command
}

/// Runs a foreground block; returns its stdout, panics with everything
/// printed when it fails.
async fn run_block(dir: &Path, block: &Block, ports: &[String; 2], serve_log: &Path) -> String {
    // The variables this block and the ones before it set (not bash's
    // own) go to ENV_FILE for the next block.
    let script = format!(
        "set -eo pipefail\n\
         __names=$(compgen -v | sort)\n\
         if [ -f {ENV_FILE} ]; then source {ENV_FILE}; fi\n\
         set -x\n\
         {}\
         {{ set +x; }} 2>/dev/null\n\
         __set=$(comm -13 <(echo \"$__names\") <(compgen -v | sort) | grep -v -e '^_' -e '^BASH' || true)\n\
         if [ -n \"$__set\" ]; then declare -p $__set > {ENV_FILE}; fi\n",
        block.script
    );
    let output = tokio::time::timeout(Duration::from_secs(120), bash(dir, &script, ports).output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "README.md:{}: the block did not finish in 120 s",
                block.line
            )
        })
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        panic!(
            "README.md:{}: a printed command failed ({}):\n{}\n--- stdout\n{stdout}\n--- stderr (each command after +)\n{}\n--- the gateway's log\n{}",
            block.line,
            output.status,
            block.script,
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(serve_log).unwrap_or_default(),
        );
    }
    stdout
}

/// Starts the one command of a background block and waits for its
/// `govgate ready` line.
async fn start_background(
    dir: &Path,
    block: &Block,
    ports: &[String; 2],
    log: &Path,
) -> tokio::process::Child {
    let lines: Vec<&str> = block
        .script
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "README.md:{}: a background block holds one command",
        block.line
    );
    // exec: the README's Ctrl-C reaches the command itself.
    let mut child = bash(dir, &format!("exec {}", lines[0]), ports)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await;
    match ready {
        Ok(Ok(Some(line))) if line.starts_with("govgate ready ") => {}
        other => panic!(
            "README.md:{}: `{}` did not print `govgate ready` ({other:?}):\n{}",
            block.line,
            lines[0],
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    }
    // Keep reading stdout so the gateway never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    child
}

/// SIGINT, as Ctrl-C in the gateway's terminal; it must drain and exit 0.
async fn stop(mut child: tokio::process::Child, line: usize, log: &Path) {
    let pid = child.id().expect("the background command is running");
    let signal = tokio::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(signal.success(), "kill -INT {pid}");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!("README.md:{line}: the gateway did not stop within 30 s of Ctrl-C")
        })
        .unwrap();
    assert!(
        status.success(),
        "README.md:{line}: the gateway exited with {status} on Ctrl-C:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Every ```sh block of README.md works as printed on a fresh clone, in
/// order: keygen, check-config, serve, the models walkthrough with its
/// tokens (three approvals, activation, a second version, a rollback), a
/// call through the proxy, then on the stopped gateway verify, export of
/// ranges that exist, verify of the bundles and the Python verifier.
#[tokio::test]
async fn readme_commands_work_as_printed_on_a_fresh_clone() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    let modes: Vec<Mode> = blocks.iter().map(|b| b.mode).collect();
    assert_eq!(
        modes.iter().filter(|m| **m == Mode::Background).count(),
        1,
        "one background gateway: {modes:?}"
    );
    assert_eq!(
        modes.iter().filter(|m| **m == Mode::AfterStop).count(),
        1,
        "one stop: {modes:?}"
    );
    let ports = free_addresses();
    let clone = fresh_clone(&ports);
    let dir = clone.path();
    let serve_log = dir.join("serve.log");
    let mut gateway: Option<tokio::process::Child> = None;
    let mut stdout = String::new();
    for block in &blocks {
        match block.mode {
            Mode::Skip => continue,
            Mode::Background => {
                assert!(
                    gateway.is_none(),
                    "README.md:{}: a second gateway",
                    block.line
                );
                gateway = Some(start_background(dir, block, &ports, &serve_log).await);
                continue;
            }
            Mode::AfterStop => {
                let child = gateway.take().unwrap_or_else(|| {
                    panic!("README.md:{}: stop before any background block", block.line)
                });
                stop(child, block.line, &serve_log).await;
            }
            Mode::Run => {}
        }
        stdout.push_str(&run_block(dir, block, &ports, &serve_log).await);
    }
    assert!(gateway.is_none(), "the README never stops its gateway");

    // What the walkthrough must have done, beyond every command exiting 0.
    for wanted in [
        // check-config
        ": ok",
        // the third approval completes the high-risk policy; activation
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
    let vkey = std::fs::read_to_string(dir.join("data/govgate.vkey")).unwrap();
    assert!(
        vkey.starts_with("govgate.example/local+"),
        "data/govgate.vkey: {vkey:?}"
    );
}

#[test]
fn sh_blocks_take_their_mode_from_the_marker_just_before() {
    let blocks = sh_blocks(
        "text\n<!-- readme-test: skip (why) -->\n```sh\ncargo build\n```\n\n```sh\na\nb\n```\n\
         <!-- readme-test: background -->\n```sh\nserve\n```\n<!-- readme-test: stop -->\n\
         some text\n```sh\nverify\n```\n```text\nnot sh\n```\n",
    );
    let got: Vec<(Mode, &str)> = blocks.iter().map(|b| (b.mode, b.script.as_str())).collect();
    assert_eq!(
        got,
        [
            (Mode::Skip, "cargo build\n"),
            (Mode::Run, "a\nb\n"),
            (Mode::Background, "serve\n"),
            // Text between a marker and a block cancels the marker.
            (Mode::Run, "verify\n"),
        ]
    );
}
