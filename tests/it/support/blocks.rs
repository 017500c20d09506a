//! Runs the ```sh blocks of a Markdown file as printed, in order, with
//! bash, as a person pasting them into terminals would.
//!
//! A block runs in the foreground unless HTML comments on the lines just
//! before it say otherwise (several may stand one under the other):
//! - `<!-- readme-test: skip (why) -->`: not run (`cargo` commands: the test
//!   has built the binary already);
//! - `<!-- readme-test: background -->`: one long-running command (`serve`,
//!   `demo`), started in the background; the next blocks run once it
//!   printed `govgate ready` (and, for the demo, its tour);
//! - `<!-- readme-test: stop -->`: the background command gets SIGINT (a
//!   Ctrl-C) and must exit 0 before this block runs;
//! - `<!-- readme-test: restart -->`: the same, then the background command
//!   starts again (a fresh demo) before this block runs;
//! - `<!-- readme-test: exit N -->`: the block's last line is a command
//!   shown for its refusal: it must exit with N, every line before it with 0.
//!
//! Variables a block sets or changes (`PATH` after `. .venv/bin/activate`)
//! reach the later blocks, as in one terminal.
//!
//! The examples listen on fixed ports (8080, 9090), which another gateway
//! on the machine may hold. The blocks run on free ports instead: the
//! blocks' `127.0.0.1:8080` and `127.0.0.1:9090` are replaced by them,
//! `GOVGATE_ADMIN_URL` names the admin one for the command-line clients
//! (whose default is `http://127.0.0.1:9090`), and the caller puts them in
//! the configuration or the demo's command line. Nothing else in a command
//! changes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The example listen addresses, public then admin.
pub const EXAMPLE_ADDRESSES: [&str; 2] = ["127.0.0.1:8080", "127.0.0.1:9090"];
/// Where blocks leave their variables for the next ones.
const ENV_FILE: &str = ".blocks-test-env";
/// Bash's own variables that change by themselves or are read-only
/// (alternatives of a `grep` pattern).
const BASH_OWN: &str = "RANDOM\\|SRANDOM\\|SECONDS\\|LINENO\\|EPOCHREALTIME\\|EPOCHSECONDS\\|\
     PIPESTATUS\\|FUNCNAME\\|SHELLOPTS\\|PPID\\|UID\\|EUID\\|GROUPS\\|PWD\\|OLDPWD\\|SHLVL\\|HISTCMD\\|\
     COLUMNS\\|LINES\\|DIRSTACK\\|OPTIND";

/// One ```sh block and what its markers say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Block {
    /// Line of the opening fence (1-based), for messages.
    pub line: usize,
    pub skip: bool,
    pub background: bool,
    pub stop: bool,
    pub restart: bool,
    /// The exit status the block's last line must have.
    pub exit: Option<i32>,
    pub script: String,
}

/// The ```sh blocks of `markdown`, in order, with their markers.
pub fn sh_blocks(name: &str, markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut pending = Block::default();
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
            let mut block = std::mem::take(&mut pending);
            block.line = index + 1;
            open = Some(block);
        } else if let Some(rest) = line.trim().strip_prefix("<!-- readme-test:") {
            let mut words = rest.split_whitespace();
            match words.next().unwrap_or_default() {
                "skip" => {
                    assert!(
                        rest.contains("skip (") && rest.contains(") -->"),
                        "{name}:{}: skip (why)",
                        index + 1
                    );
                    pending.skip = true;
                }
                "background" => pending.background = true,
                "stop" => pending.stop = true,
                "restart" => pending.restart = true,
                "exit" => {
                    pending.exit = words.next().and_then(|code| code.parse().ok());
                    assert!(pending.exit.is_some(), "{name}:{}: exit N", index + 1);
                }
                other => panic!("{name}:{}: unknown readme-test marker {other}", index + 1),
            }
        } else if !line.trim().is_empty() {
            pending = Block::default();
        }
    }
    assert!(open.is_none(), "{name}: a ```sh block is not closed");
    blocks
}

/// Two loopback addresses nothing listens on (just now).
///
/// The ports are taken below Linux's ephemeral range (32768 and up): a
/// port the kernel hands out for `127.0.0.1:0` (the demo's own sample
/// models, other tests running at the same time) could otherwise be the
/// one picked here, freed, and taken again before the command binds it.
pub fn free_addresses() -> [String; 2] {
    use std::hash::{BuildHasher, Hasher};
    const LOW: u64 = 20_000;
    const SPAN: u64 = 12_000;
    let mut listeners = Vec::new();
    while listeners.len() < 2 {
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_usize(listeners.len());
        let port = LOW + random.finish() % SPAN;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            listeners.push(listener);
        }
    }
    [0, 1].map(|i| listeners[i].local_addr().unwrap().to_string())
}

/// Copies the directory `from` to `to`, recursively.
pub fn copy_tree(from: &Path, to: &Path) {
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

/// Where and how one file's blocks run.
pub struct Session {
    /// The file's name, for messages.
    pub name: String,
    /// The working directory of every block.
    pub dir: PathBuf,
    /// Free public and admin addresses standing for the example ones.
    pub addresses: [String; 2],
    /// Prepended to PATH (a directory holding `govgate`), if any.
    pub path_prefix: Option<PathBuf>,
    /// Appended to a background command (the demo's listen options).
    pub background_args: String,
    /// A line the background command prints after `govgate ready` before
    /// it is ready for the blocks (the demo's tour heading).
    pub ready_after: Option<&'static str>,
    background: Option<(tokio::process::Child, String)>,
    /// The command a `restart` starts again.
    last_background: Option<String>,
}

impl Session {
    pub fn new(name: &str, dir: &Path, addresses: [String; 2]) -> Session {
        Session {
            name: name.to_owned(),
            dir: dir.to_owned(),
            addresses,
            path_prefix: None,
            background_args: String::new(),
            ready_after: None,
            background: None,
            last_background: None,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.join(".blocks-test-background.log")
    }

    /// Runs every block in order; returns what the foreground blocks
    /// printed on stdout. Panics at the first block that fails, with
    /// everything it printed.
    pub async fn run_all(&mut self, blocks: &[Block]) -> String {
        let mut stdout = String::new();
        for block in blocks {
            if block.skip {
                continue;
            }
            if block.stop || block.restart {
                self.stop(block.line).await;
            }
            if block.restart {
                let command = self
                    .last_background
                    .clone()
                    .unwrap_or_else(|| panic!("{}:{}: restart of nothing", self.name, block.line));
                self.start(&command, block.line).await;
            }
            if block.background {
                let lines: Vec<&str> = block
                    .script
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                assert_eq!(
                    lines.len(),
                    1,
                    "{}:{}: a background block holds one command",
                    self.name,
                    block.line
                );
                self.start(lines[0], block.line).await;
                continue;
            }
            stdout.push_str(&self.run(block).await);
        }
        // A demo the file leaves running is stopped as its reader would.
        if self.background.is_some() {
            self.stop(0).await;
        }
        stdout
    }

    /// A bash command for `script` on the session's addresses, with none
    /// of the test's own govgate settings.
    fn bash(&self, script: &str) -> tokio::process::Command {
        let script = EXAMPLE_ADDRESSES
            .iter()
            .zip(&self.addresses)
            .fold(script.to_owned(), |text, (example, free)| {
                text.replace(example, free)
            });
        let mut command = tokio::process::Command::new("bash");
        command
            .arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .env_remove("GOVGATE_TOKEN")
            .env("GOVGATE_ADMIN_URL", format!("http://{}", self.addresses[1]))
            .env_remove("GOVGATE_CONFIG")
            .env_remove("GOVGATE_LOG")
            .kill_on_drop(true);
        if let Some(prefix) = &self.path_prefix {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![prefix.clone()];
            paths.extend(std::env::split_paths(&path));
            command.env("PATH", std::env::join_paths(paths).unwrap());
        }
        command
    }

    /// Runs a foreground block; returns its stdout.
    async fn run(&self, block: &Block) -> String {
        let (body, last) = match block.exit {
            None => (block.script.as_str(), None),
            Some(_) => {
                let trimmed = block.script.trim_end();
                let (body, last) = trimmed.rsplit_once('\n').unwrap_or(("", trimmed));
                (body, Some(last))
            }
        };
        // The variables this block and the ones before it set or changed
        // (not bash's own) go to ENV_FILE for the next block. The last line of an
        // `exit N` block runs after -e is off and gives the block's status.
        let last = last
            .map(|line| format!("set +e\n{line}\n__status=$?\n"))
            .unwrap_or_else(|| "__status=0\n".to_owned());
        let script = format!(
            "set -eo pipefail\n\
             declare -A __init=()\n\
             for __n in $(compgen -v); do __init[$__n]=${{!__n}}; done\n\
             if [ -f {ENV_FILE} ]; then source {ENV_FILE}; fi\n\
             set -x\n\
             {body}\n\
             {last}\
             {{ set +x; }} 2>/dev/null\n\
             __set=()\n\
             for __n in $(compgen -v | grep -v -e '^_' -e '^BASH' -e '^\\({BASH_OWN}\\)$'); do\n\
               if [[ ! -v __init[$__n] || \"${{__init[$__n]}}\" != \"${{!__n}}\" ]]; then __set+=(\"$__n\"); fi\n\
             done\n\
             if (( ${{#__set[@]}} )); then declare -p \"${{__set[@]}}\" > {ENV_FILE}; fi\n\
             exit $__status\n"
        );
        let output = tokio::time::timeout(Duration::from_secs(120), self.bash(&script).output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{}:{}: the block did not finish in 120 s",
                    self.name, block.line
                )
            })
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.code() != Some(block.exit.unwrap_or(0)) {
            panic!(
                "{}:{}: a printed command failed ({}; expected exit {}):\n{}\n--- stdout\n{stdout}\n--- stderr (each command after +)\n{}\n--- the background command's log\n{}",
                self.name,
                block.line,
                output.status,
                block.exit.unwrap_or(0),
                block.script,
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(self.log()).unwrap_or_default(),
            );
        }
        stdout
    }

    /// Starts `command` in the background and waits until it is ready.
    async fn start(&mut self, command: &str, line: usize) {
        assert!(
            self.background.is_none(),
            "{}:{line}: a second background command",
            self.name
        );
        // exec: the Ctrl-C reaches the command itself.
        let mut child = self
            .bash(&format!("exec {command}{}", self.background_args))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.log()).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut wanted = vec!["govgate ready "];
        wanted.extend(self.ready_after);
        for prefix in wanted {
            let found = tokio::time::timeout(Duration::from_secs(30), async {
                while let Ok(Some(text)) = stdout.next_line().await {
                    if text.starts_with(prefix) {
                        return true;
                    }
                }
                false
            })
            .await;
            assert!(
                found == Ok(true),
                "{}:{line}: `{command}` did not print `{prefix}`:\n{}",
                self.name,
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
        }
        // Keep reading stdout so the command never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        self.background = Some((child, command.to_owned()));
        self.last_background = Some(command.to_owned());
    }

    /// SIGINT, as Ctrl-C in the command's terminal; it must exit 0.
    async fn stop(&mut self, line: usize) {
        let (mut child, command) = self
            .background
            .take()
            .unwrap_or_else(|| panic!("{}:{line}: nothing runs in the background", self.name));
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
                panic!(
                    "{}:{line}: `{command}` did not stop within 30 s of Ctrl-C",
                    self.name
                )
            })
            .unwrap();
        assert!(
            status.success(),
            "{}:{line}: `{command}` exited with {status} on Ctrl-C:\n{}",
            self.name,
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }
}
