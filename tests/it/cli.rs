//! The command line as the README shows it: `check-config` and `demo`.

use crate::support::gateway::parse_ready_line;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_govgate");

#[test]
fn check_config_accepts_the_shipped_example() {
    let output = Command::new(BIN)
        .args([
            "check-config",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/govgate.toml"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(
        stdout.contains("model credit-scoring (kserve_v2): versions 1, 2 (default 2)"),
        "{stdout}"
    );
}

#[test]
fn check_config_refuses_a_typo_with_file_key_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\npublic_listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\ndata_dir = \"d\"\nrequire_callr = true\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("server.require_callr"), "{stderr}");
    assert!(stderr.contains("unknown field"), "{stderr}");
}

/// Starts `govgate demo` on ephemeral ports and runs every command it
/// prints, exactly as printed, with bash.
#[tokio::test]
async fn demo_prints_commands_that_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "demo",
            "--public-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("GOVGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (public, _admin) = parse_ready_line(&ready);
    let mut tour = String::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(2), lines.next_line()).await
    {
        tour.push_str(&line);
        tour.push('\n');
    }
    let commands = commands_in(&tour);
    assert!(commands.len() >= 8, "tour:\n{tour}");
    assert!(
        commands
            .iter()
            .all(|c| c.contains(&public) || c.starts_with("tail") || c.contains("/metrics"))
    );

    let mut outputs = Vec::new();
    for command in &commands {
        let output = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(command)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "`{command}` failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!stdout.trim().is_empty(), "`{command}` printed nothing");
        outputs.push(stdout);
    }
    let all = outputs.join("\n");
    assert!(
        outputs[0].contains("govgate-decision-id") && outputs[0].contains("\"score\""),
        "{}",
        outputs[0]
    );
    assert!(
        all.contains("You wrote: Is my application complete?"),
        "{all}"
    );
    assert!(all.contains("data: [DONE]"), "{all}");
    assert!(all.contains("\"code\":\"unknown_model\""), "{all}");
    assert!(all.contains("govgate_requests_total{"), "{all}");
}

/// The shell commands in the printed tour: lines starting with `curl` or
/// `tail`, joined with their `\` continuation lines.
fn commands_in(tour: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current: Option<String> = None;
    for line in tour.lines() {
        if let Some(command) = current.as_mut() {
            command.push('\n');
            command.push_str(line);
        } else if line.starts_with("curl ") || line.starts_with("tail ") {
            current = Some(line.to_owned());
        }
        if current.as_ref().is_some_and(|c| !c.ends_with('\\')) {
            commands.extend(current.take());
        }
    }
    commands
}
