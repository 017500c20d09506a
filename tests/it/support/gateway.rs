//! Runs the real `govgate` binary with a generated config.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The origin of every test gateway's ledger.
pub const TEST_ORIGIN: &str = "test.govgate.example/it";

/// A running gateway process; killed when dropped.
pub struct Gateway {
    pub public: String,
    pub admin: String,
    /// Where the tlog-tiles are served (the ready line's `tiles=`): a URL
    /// prefix, or `off`.
    pub tiles: String,
    pub dir: tempfile::TempDir,
    /// The signed-note verifier key of the gateway's signing key.
    pub vkey: String,
    child: Child,
}

impl Gateway {
    /// Starts `govgate serve` with `[server]` on ephemeral ports plus
    /// `server_extra` lines, a fresh signing key, followed by `rest`
    /// (limits, timeouts, models).
    pub async fn start_with(server_extra: &str, rest: &str) -> Gateway {
        let gateway = Self::start_pending(server_extra, rest).await;
        let config = std::fs::read_to_string(gateway.dir.path().join("govgate.toml")).unwrap();
        super::governance::approve_declared(&gateway.admin, &config).await;
        gateway
    }

    /// Like [`Gateway::start_with`], but the declared versions are left as
    /// the gateway proposed them: nothing is approved or active.
    pub async fn start_pending(server_extra: &str, rest: &str) -> Gateway {
        Self::start_pending_under(&[], server_extra, rest).await
    }

    /// Like [`Gateway::start_with`], with the binary run by the command
    /// `wrapper` (e.g. `prlimit --nofile=256:256`), which must exec it.
    pub async fn start_under(wrapper: &[&str], server_extra: &str, rest: &str) -> Gateway {
        let gateway = Self::start_pending_under(wrapper, server_extra, rest).await;
        let config = std::fs::read_to_string(gateway.dir.path().join("govgate.toml")).unwrap();
        super::governance::approve_declared(&gateway.admin, &config).await;
        gateway
    }

    async fn start_pending_under(wrapper: &[&str], server_extra: &str, rest: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let keygen = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
            .args(["keygen", "--origin", TEST_ORIGIN, "--out"])
            .arg(dir.path().join("test.key"))
            .output()
            .unwrap();
        assert!(
            keygen.status.success(),
            "{}",
            String::from_utf8_lossy(&keygen.stderr)
        );
        let printed = String::from_utf8(keygen.stdout).unwrap();
        let vkey = printed
            .lines()
            .find(|line| line.starts_with(TEST_ORIGIN))
            .expect("keygen prints the verifier key")
            .to_owned();
        let config = format!(
            "[server]\npublic_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n{server_extra}\n\
             [ledger]\norigin = \"{TEST_ORIGIN}\"\nkey_file = \"test.key\"\n{rest}\n{}",
            super::governance::token_tables()
        );
        std::fs::write(dir.path().join("govgate.toml"), config).unwrap();
        let mut child = spawn(wrapper, dir.path(), &[]);
        let (public, admin, tiles) = read_ready(&mut child).await;
        Gateway {
            public,
            admin,
            tiles,
            dir,
            vkey,
            child,
        }
    }

    /// Starts the same gateway again (same config and data) after `stop`.
    pub async fn restart(&mut self) {
        self.restart_with(&[]).await;
    }

    /// Starts the same gateway again after `stop`, with `args` after
    /// `serve --config FILE`.
    pub async fn restart_with(&mut self, args: &[&str]) {
        let mut child = spawn(&[], self.dir.path(), args);
        let (public, admin, tiles) = read_ready(&mut child).await;
        self.child = child;
        self.public = public;
        self.admin = admin;
        self.tiles = tiles;
    }

    /// Starts with default `[server]` settings.
    pub async fn start(rest: &str) -> Gateway {
        Self::start_with("", rest).await
    }

    /// A URL on the public listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public)
    }

    /// Every ledger entry so far as served: canonical bytes, in seq order.
    pub async fn entry_lines(&self) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        loop {
            let url = format!(
                "{}/ledger/entries?from={}&count=1000",
                self.admin,
                lines.len()
            );
            let reply = crate::support::send(http::Method::GET, &url, &[], "").await;
            assert_eq!(reply.status, 200);
            let before = lines.len();
            lines.extend(
                reply
                    .body
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
            if lines.len() == before {
                return lines;
            }
        }
    }

    /// Every ledger entry so far, parsed, in seq order.
    pub async fn entries(&self) -> Vec<serde_json::Value> {
        let lines = self.entry_lines().await;
        lines
            .iter()
            .map(|line| serde_json::from_slice(line).expect("entry is JSON"))
            .collect()
    }

    /// Every decision entry so far.
    pub async fn decisions(&self) -> Vec<serde_json::Value> {
        self.entries()
            .await
            .into_iter()
            .filter(|e| e["kind"] == "decision")
            .collect()
    }

    /// The ledger entry of a decision, fetched like a client would (panics if absent).
    pub async fn decision(&self, id: &str) -> serde_json::Value {
        self.try_decision(id)
            .await
            .unwrap_or_else(|| panic!("decision {id} is not in the ledger"))
    }

    async fn try_decision(&self, id: &str) -> Option<serde_json::Value> {
        let reply = crate::support::send(
            http::Method::GET,
            &self.url(&format!("/govgate/receipts/{id}/entry")),
            &[],
            "",
        )
        .await;
        (reply.status == 200).then(|| reply.json())
    }

    /// Waits until a decision appears (for records written in the background).
    pub async fn wait_for_decision(&self, id: &str) -> serde_json::Value {
        for _ in 0..100 {
            if let Some(entry) = self.try_decision(id).await {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("decision {id} never recorded");
    }

    /// Waits until the `stream_ended` entry of a streamed decision appears.
    pub async fn wait_for_stream_end(&self, id: &str) -> serde_json::Value {
        for _ in 0..100 {
            let found = self
                .entries()
                .await
                .into_iter()
                .find(|entry| entry["kind"] == "stream_ended" && entry["decision_id"] == id);
            if let Some(entry) = found {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("stream of decision {id} never ended in the ledger");
    }

    /// The process id of the running gateway.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits.
    pub async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// Sends the signal `name` (`TERM`, `HUP`) to the process.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Fills the gateway's disk: lowers the process's soft file-size limit
    /// (RLIMIT_FSIZE) to 0, so every write to a file fails with EFBIG, as
    /// on a full disk: the write-ahead file's next append, a new segment
    /// opened to retry in, and the store's own writes alike. (A limit at
    /// the size of the file the next commit appends to is not enough: a
    /// retry in a new, empty segment would succeed.) The gateway survives
    /// the SIGXFSZ that comes with EFBIG. Undo with [`Gateway::free_disk`].
    #[cfg(target_os = "linux")]
    pub fn fill_disk(&self) {
        self.set_file_size_limit(0);
    }

    /// Lifts the limit [`Gateway::fill_disk`] set: the soft limit goes
    /// back up to the hard one.
    #[cfg(target_os = "linux")]
    pub fn free_disk(&self) {
        self.set_file_size_limit(u64::MAX);
    }

    /// Sets the child's soft RLIMIT_FSIZE to `bytes` (at most its hard limit).
    #[cfg(target_os = "linux")]
    fn set_file_size_limit(&self, bytes: u64) {
        use rlimit::{Resource, prlimit};
        let pid = self.child.id().expect("running") as i32;
        let (mut soft, mut hard) = (0, 0);
        prlimit(pid, Resource::FSIZE, None, Some((&mut soft, &mut hard))).unwrap();
        prlimit(pid, Resource::FSIZE, Some((bytes.min(hard), hard)), None).unwrap();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("gateway stops within 20 s of SIGTERM")
            .unwrap()
    }
}

/// Runs `govgate serve` with `[server]` on ephemeral ports, a fresh key
/// and `rest`, expecting it to stop at start: its stderr, and whether it
/// had opened its ledger by then.
pub async fn refused_start(rest: &str) -> (String, bool) {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("test.key"), TEST_ORIGIN);
    std::fs::write(
        dir.path().join("govgate.toml"),
        format!(
            "[server]\npublic_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\
             [ledger]\norigin = \"{TEST_ORIGIN}\"\nkey_file = \"test.key\"\n{rest}"
        ),
    )
    .unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_govgate"))
            .arg("serve")
            .arg("--config")
            .arg(dir.path().join("govgate.toml"))
            .env("GOVGATE_LOG", "warn")
            .env("TEST_UPSTREAM_KEY", "test-secret")
            .output(),
    )
    .await
    .expect("a refused start ends")
    .unwrap();
    assert!(!output.status.success(), "it started");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (stderr, dir.path().join("data/ledger").exists())
}

/// Runs `govgate keygen`; returns the verifier key it prints.
pub fn keygen(out: &Path, origin: &str) -> String {
    let keygen = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .args(["keygen", "--origin", origin, "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    String::from_utf8(keygen.stdout)
        .unwrap()
        .lines()
        .find(|line| line.starts_with(origin))
        .expect("keygen prints the verifier key")
        .to_owned()
}

impl Gateway {
    /// Runs `govgate ARGS --config FILE`, FILE being `config` in the
    /// gateway's directory (its own is `govgate.toml`).
    pub fn cli_with(&self, config: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
            .env("TEST_UPSTREAM_KEY", "test-secret")
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join(config))
            .output()
            .unwrap()
    }

    /// Runs `govgate ARGS` with the gateway's own config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_with("govgate.toml", args)
    }

    /// Writes `NAME.toml`: the gateway's config with a new signing key
    /// `NAME.key` for the same origin. Returns the config's file name and
    /// the new key's verifier key.
    pub fn config_with_new_key(&self, name: &str) -> (String, String) {
        let vkey = keygen(&self.dir.path().join(format!("{name}.key")), TEST_ORIGIN);
        let text = std::fs::read_to_string(self.dir.path().join("govgate.toml"))
            .unwrap()
            .replace("\"test.key\"", &format!("\"{name}.key\""));
        let file = format!("{name}.toml");
        std::fs::write(self.dir.path().join(&file), text).unwrap();
        (file, vkey)
    }

    /// `POST /v2/models/scorer/infer` (the test models' KServe model) with `body`.
    pub async fn infer(&self, body: impl Into<bytes::Bytes>) -> crate::support::client::Reply {
        crate::support::send(
            http::Method::POST,
            &self.url("/v2/models/scorer/infer"),
            &[],
            body,
        )
        .await
    }

    /// One scrape of `/metrics` on the admin port.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.admin);
        let reply = crate::support::send(http::Method::GET, &url, &[], "").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.text()
    }

    /// Scrapes `/metrics` until it contains `ready` (work done in the
    /// background shows up a little later), for up to 15 s (a debug build
    /// on a busy machine; a run that passes returns as soon as it shows).
    pub async fn metrics_when(&self, ready: &str) -> String {
        let mut text = String::new();
        for _ in 0..300 {
            text = self.metrics().await;
            if text.contains(ready) {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("metrics never showed {ready}:\n{text}");
    }

    /// `GET path` on the public listener.
    pub async fn get(&self, path: &str) -> crate::support::client::Reply {
        crate::support::send(http::Method::GET, &self.url(path), &[], "").await
    }

    /// The latest checkpoint from the admin port, opened with the gateway's key.
    pub async fn checkpoint(&self) -> govgate::ledger::checkpoint::Checkpoint {
        use govgate::ledger::checkpoint::{Checkpoint, NoteVerifier};
        let note = crate::support::send(
            http::Method::GET,
            &format!("{}/ledger/checkpoint", self.admin),
            &[],
            "",
        )
        .await;
        let verifier = NoteVerifier::parse(&self.vkey).unwrap();
        Checkpoint::parse(
            verifier
                .open(std::str::from_utf8(&note.body).unwrap())
                .unwrap(),
        )
        .unwrap()
    }
}

fn spawn(wrapper: &[&str], dir: &Path, args: &[&str]) -> Child {
    let binary = env!("CARGO_BIN_EXE_govgate");
    let mut command = match wrapper.split_first() {
        Some((program, wrapper_args)) => {
            let mut command = Command::new(program);
            command.args(wrapper_args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .arg("serve")
        .arg("--config")
        .arg(dir.join("govgate.toml"))
        .args(args)
        .env("GOVGATE_LOG", "warn")
        .env("TEST_UPSTREAM_KEY", "test-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn govgate")
}

/// Reads `govgate ready public=... admin=...` from the child's stdout.
pub async fn read_ready_line(child: &mut Child) -> (String, String) {
    let (public, admin, _) = read_ready(child).await;
    (public, admin)
}

/// Reads the ready line: public and admin URLs, and where tiles are served.
async fn read_ready(child: &mut Child) -> (String, String, String) {
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("gateway ready within 30 s")
        .unwrap()
        .expect("gateway printed a ready line");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (public, admin) = parse_ready_line(&line);
    let tiles = line
        .split_whitespace()
        .find_map(|part| part.strip_prefix("tiles="))
        .unwrap_or_else(|| panic!("no tiles= in ready line: {line}"))
        .to_owned();
    (public, admin, tiles)
}

pub fn parse_ready_line(line: &str) -> (String, String) {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in ready line: {line}"))
            .to_owned()
    };
    (field("public="), field("admin="))
}
