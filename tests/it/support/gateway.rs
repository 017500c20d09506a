//! Runs the real `govgate` binary with a generated config.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running gateway process; killed when dropped.
pub struct Gateway {
    pub public: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Gateway {
    /// Starts `govgate serve` with `[server]` on ephemeral ports plus
    /// `server_extra` lines, followed by `rest` (limits, timeouts, models).
    pub async fn start_with(server_extra: &str, rest: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[server]\npublic_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n{server_extra}\n{rest}"
        );
        let path = dir.path().join("govgate.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_govgate"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("GOVGATE_LOG", "warn")
            .env("TEST_UPSTREAM_KEY", "test-secret")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn govgate");
        let (public, admin) = read_ready_line(&mut child).await;
        Gateway {
            public,
            admin,
            dir,
            child,
        }
    }

    /// Starts with default `[server]` settings.
    pub async fn start(rest: &str) -> Gateway {
        Self::start_with("", rest).await
    }

    /// A URL on the public listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Every decision recorded so far, parsed.
    pub fn decisions(&self) -> Vec<serde_json::Value> {
        read_decisions(&self.data_dir())
    }

    /// The recorded decision with this id (panics if absent or repeated).
    pub fn decision(&self, id: &str) -> serde_json::Value {
        let found: Vec<_> = self
            .decisions()
            .into_iter()
            .filter(|d| d["id"] == id)
            .collect();
        assert_eq!(found.len(), 1, "exactly one decision with id {id}");
        found.into_iter().next().unwrap()
    }

    /// Waits until a decision with this id appears (for background records).
    pub async fn wait_for_decision(&self, id: &str) -> serde_json::Value {
        for _ in 0..100 {
            if self.decisions().iter().any(|d| d["id"] == id) {
                return self.decision(id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("decision {id} never recorded");
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("gateway stops within 20 s of SIGTERM")
            .unwrap()
    }
}

/// Reads `govgate ready public=... admin=...` from the child's stdout.
pub async fn read_ready_line(child: &mut Child) -> (String, String) {
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("gateway ready within 30 s")
        .unwrap()
        .expect("gateway printed a ready line");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    parse_ready_line(&line)
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

pub fn read_decisions(data_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(data_dir.join("decisions.jsonl")).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).expect("journal line is JSON"))
        .collect()
}
