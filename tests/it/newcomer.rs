//! What a new user meets first, against the real binary: keys and their
//! verifier keys, approvals that say what is still missing, risk classes
//! that say when they are a default, exit codes (2 for usage and
//! configuration), a port in use, an unknown model, a `--vkey` missing its
//! `@`, a store held by a running gateway, the published example tokens,
//! and logs without colour codes off a terminal.

use crate::support::gateway::{TEST_ORIGIN, keygen, read_ready_line};
use crate::support::governance::token;
use crate::support::{Gateway, TestUpstream};
use http::Method;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_govgate");

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `govgate ARGS` in `dir` with nothing inherited that changes it.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env_remove("GOVGATE_CONFIG")
        .env_remove("GOVGATE_TOKEN")
        .env("GOVGATE_LOG", "warn")
        .output()
        .unwrap()
}

/// `govgate models ARGS` against `gateway` as `principal`.
fn models(gateway: &Gateway, principal: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("models")
        .args(args)
        .args(["--admin-url", &gateway.admin])
        .env("GOVGATE_TOKEN", token(principal))
        .env("GOVGATE_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// The example config's policy: two officers, and for high-risk versions
/// a third approver. Version 1 is classified; version 2 and `other` 1 are
/// left to the default.
fn three_eyes(upstream: &str) -> String {
    format!(
        r#"
[governance.approval]
approvers = 2
required_roles = ["ai_officer", "security_officer"]
[governance.approval.high_risk]
approvers = 3
required_roles = ["ai_officer", "security_officer"]

[[models]]
name = "scorer"
protocol = "kserve_v2"
default_version = "1"
[[models.versions]]
version = "1"
upstream = "{upstream}"
risk_class = "high"
change_ref = "CHG-1"
[[models.versions]]
version = "2"
upstream = "{upstream}"

[[models]]
name = "other"
protocol = "openai"
[[models.versions]]
version = "1"
upstream = "{upstream}"
risk_class = "limited"
"#
    )
}

#[tokio::test]
async fn approvals_say_what_is_still_needed_and_risk_defaults_are_marked() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start_pending("", &three_eyes(&upstream.url())).await;

    let listed = ok(&models(&gateway, "auditor", &["list"]));
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert!(
        rows.contains(&vec![
            "scorer", "1", "proposed", "high", "CHG-1", "0", "of", "3"
        ]),
        "{listed}"
    );
    assert!(
        rows.contains(&vec![
            "scorer",
            "2",
            "proposed",
            "high",
            "(default)",
            "config",
            "0",
            "of",
            "3"
        ]),
        "a version the config leaves unclassified says so:\n{listed}"
    );
    assert!(
        rows.contains(&vec![
            "other", "1", "proposed", "limited", "config", "0", "of", "2"
        ]),
        "{listed}"
    );

    let first = ok(&models(&gateway, "ai-officer", &["approve", "scorer", "2"]));
    assert!(
        first.contains(
            "now proposed: approved by ai-officer; 2 more approvals needed: \
             role approver:security_officer and 1 from any approver"
        ),
        "{first}"
    );
    let second = ok(&models(
        &gateway,
        "security-officer",
        &["approve", "scorer", "2"],
    ));
    assert!(
        second.contains(
            "now proposed: approved by ai-officer, security-officer; 1 more approval needed"
        ),
        "{second}"
    );
    // The API says the same to scripts.
    let shown = ok(&models(
        &gateway,
        "auditor",
        &["show", "scorer", "2", "--json"],
    ));
    let record: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(record["approvals_needed"], 1, "{record}");
    assert_eq!(record["missing_roles"], serde_json::json!([]), "{record}");
    assert_eq!(record["approval_policy"]["approvers"], 3, "{record}");
    assert_eq!(record["risk_class_default"], true, "{record}");
    let text = ok(&models(&gateway, "auditor", &["show", "scorer", "2"]));
    assert!(
        text.contains("still needed     1 more approval needed"),
        "{text}"
    );

    let third = ok(&models(
        &gateway,
        "plain-approver",
        &["approve", "scorer", "2"],
    ));
    assert!(
        third.contains("now approved: approved by ai-officer, security-officer, plain-approver")
            && third.contains("govgate models activate scorer 2"),
        "{third}"
    );
    let classified = crate::support::governance::admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/models/scorer/versions/1",
        "",
    )
    .await
    .json();
    assert_eq!(classified["risk_class_default"], false);
    assert_eq!(classified["approvals_needed"], 3);
    assert_eq!(
        classified["missing_roles"],
        serde_json::json!(["approver:ai_officer", "approver:security_officer"])
    );
}

#[test]
fn keygen_writes_the_verifier_key_never_overwrites_and_vkey_rederives_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let made = run(
        path,
        &[
            "keygen",
            "--out",
            "g.key",
            "--vkey-out",
            "g.vkey",
            "--origin",
            TEST_ORIGIN,
        ],
    );
    let printed = ok(&made);
    let vkey = printed
        .lines()
        .find(|line| line.starts_with(TEST_ORIGIN))
        .expect("keygen prints the verifier key")
        .to_owned();
    assert_eq!(
        std::fs::read_to_string(path.join("g.vkey")).unwrap(),
        format!("{vkey}\n")
    );
    let key = std::fs::read(path.join("g.key")).unwrap();

    // Twice: refused, exit 2, both files as they were.
    let again = run(
        path,
        &[
            "keygen",
            "--out",
            "g.key",
            "--vkey-out",
            "g.vkey",
            "--origin",
            TEST_ORIGIN,
        ],
    );
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("g.key exists") && stderr(&again).contains("govgate vkey"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(path.join("g.key")).unwrap(), key);
    // Only the verifier key file exists: nothing is written at all.
    let half = run(
        path,
        &[
            "keygen",
            "--out",
            "new.key",
            "--vkey-out",
            "g.vkey",
            "--origin",
            TEST_ORIGIN,
        ],
    );
    assert_eq!(half.status.code(), Some(2), "{}", stderr(&half));
    assert!(!path.join("new.key").exists());
    assert_eq!(
        std::fs::read_to_string(path.join("g.vkey")).unwrap(),
        format!("{vkey}\n")
    );

    let derived = run(path, &["vkey", "--key", "g.key", "--origin", TEST_ORIGIN]);
    assert_eq!(ok(&derived), format!("{vkey}\n"));
    let written = run(
        path,
        &[
            "vkey",
            "--key",
            "g.key",
            "--origin",
            TEST_ORIGIN,
            "--out",
            "again.vkey",
        ],
    );
    ok(&written);
    assert_eq!(
        std::fs::read_to_string(path.join("again.vkey")).unwrap(),
        format!("{vkey}\n")
    );
    let not_a_key = run(path, &["vkey", "--key", "g.vkey", "--origin", TEST_ORIGIN]);
    assert_eq!(not_a_key.status.code(), Some(2), "{}", stderr(&not_a_key));
}

#[tokio::test]
async fn vkey_takes_key_and_origin_from_the_config() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start_pending("", &crate::models(&upstream.url())).await;
    let derived = gateway.cli(&["vkey"]);
    assert_eq!(ok(&derived), format!("{}\n", gateway.vkey));
}

/// A minimal valid config in `dir` with `tokens` and `server` lines.
fn write_config(dir: &Path, server: &str, tokens: &str) -> std::path::PathBuf {
    keygen(&dir.join("k.key"), TEST_ORIGIN);
    let path = dir.join("g.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\n{server}\ndata_dir = \"data\"\n\
             [ledger]\norigin = \"{TEST_ORIGIN}\"\nkey_file = \"k.key\"\n\
             [[models]]\nname = \"m\"\nprotocol = \"openai\"\n\
             [[models.versions]]\nversion = \"1\"\nupstream = \"http://127.0.0.1:9\"\n{tokens}"
        ),
    )
    .unwrap();
    path
}

const EPHEMERAL: &str = "public_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"";

#[test]
fn usage_and_configuration_errors_exit_2_from_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\npublic_listn = 1\n").unwrap();
    let bad = bad.to_str().unwrap();
    for args in [
        vec!["serve", "--config", bad],
        vec!["export", "--config", bad, "--out", "x"],
        vec!["proof", "--config", bad, "--old", "1", "--new", "2"],
        vec!["erase", "--config", bad, "--decision", "x", "--reason", "r"],
        vec!["rotate-key", "--config", bad, "--new-key", "k"],
        vec!["verify", "--config", bad],
        vec!["check-config", "--config", bad],
        vec!["vkey", "--config", bad],
    ] {
        let output = run(dir.path(), &args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("invalid configuration"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let config = write_config(dir.path(), EPHEMERAL, "");
    let config = config.to_str().unwrap();
    for args in [
        vec!["token", "--principal", "p", "--roles", "approver:Bad Name"],
        vec!["proof", "--config", config],
        vec!["proof", "--config", config, "--decision", "not-an-id"],
    ] {
        let output = run(dir.path(), &args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[tokio::test]
async fn a_port_in_use_names_the_key_or_flag_to_change_and_the_cause_once() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("public_listen = \"{addr}\"\nadmin_listen = \"127.0.0.1:0\""),
        "",
    );
    let refused = run(dir.path(), &["serve", "--config", config.to_str().unwrap()]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&addr) && said.contains("set server.public_listen to a free address"),
        "{said}"
    );
    assert_eq!(
        said.matches("os error").count(),
        1,
        "the cause once: {said}"
    );

    let demo = run(
        dir.path(),
        &[
            "demo",
            "--public-listen",
            "127.0.0.1:0",
            "--admin-listen",
            &addr,
            "--data-dir",
            dir.path().join("demo").to_str().unwrap(),
        ],
    );
    let said = stderr(&demo);
    assert_eq!(demo.status.code(), Some(1), "{said}");
    assert!(said.contains("--admin-listen"), "{said}");
    assert_eq!(said.matches("os error").count(), 1, "{said}");
}

#[tokio::test]
async fn an_unknown_model_is_answered_with_the_models_served() {
    let upstream = TestUpstream::start().await;
    let mut many = String::new();
    for n in 0..23 {
        many.push_str(&format!(
            "\n[[models]]\nname = \"chat-{n:02}\"\nprotocol = \"openai\"\n\
             [[models.versions]]\nversion = \"1\"\nupstream = \"{}\"\n",
            upstream.url()
        ));
    }
    many.push_str(&format!(
        "\n[[models]]\nname = \"scorer\"\nprotocol = \"kserve_v2\"\n\
         [[models.versions]]\nversion = \"1\"\nupstream = \"{}\"\n",
        upstream.url()
    ));
    let gateway = Gateway::start_pending("", &many).await;
    let openai = crate::support::send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"chat-typo","messages":[]}"#.to_owned(),
    )
    .await;
    assert_eq!(openai.status, 404);
    let error = &openai.json()["error"];
    assert_eq!(error["code"], "unknown_model");
    let served = error["served_models"].as_array().unwrap();
    assert_eq!(served.len(), 20, "a bounded list: {error}");
    assert_eq!(served[0], "chat-00");
    assert_eq!(error["more_served_models"], 3);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("chat-00, chat-01") && message.contains("and 3 more"),
        "{message}"
    );
    assert!(message.contains("GET /v1/models"), "{message}");

    let kserve = crate::support::send(
        Method::POST,
        &gateway.url("/v2/models/scorr/infer"),
        &[("content-type", "application/json")],
        "{}".to_owned(),
    )
    .await;
    assert_eq!(kserve.status, 404);
    let error = &kserve.json()["error"];
    assert_eq!(error["served_models"], serde_json::json!(["scorer"]));
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("served here: scorer"),
        "{error}"
    );
}

#[test]
fn a_vkey_file_named_without_its_at_sign_is_pointed_out() {
    let dir = tempfile::tempdir().unwrap();
    let vkey = keygen(&dir.path().join("k.key"), TEST_ORIGIN);
    std::fs::write(dir.path().join("log.vkey"), &vkey).unwrap();
    std::fs::create_dir(dir.path().join("bundle")).unwrap();
    let output = run(
        dir.path(),
        &["verify", "--bundle", "bundle", "--vkey", "log.vkey"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("did you mean @log.vkey"),
        "{}",
        stderr(&output)
    );
    // The Python verifier says the same.
    let file = dir.path().join("log.vkey");
    let file = file.to_str().unwrap();
    let bundle = dir.path().join("bundle");
    let python =
        crate::support::python_verifier(&["bundle", "--vkey", file, bundle.to_str().unwrap()]);
    assert_eq!(python.status.code(), Some(2), "{}", stderr(&python));
    assert!(
        stderr(&python).contains(&format!("did you mean @{file}")),
        "{}",
        stderr(&python)
    );
}

#[tokio::test]
async fn a_store_held_by_a_running_gateway_is_named_in_one_sentence() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start_pending("", &crate::models(&upstream.url())).await;
    for (args, code) in [
        (vec!["verify"], 2),
        (vec!["export", "--out", "bundle"], 1),
        (vec!["proof", "--old", "1", "--new", "2"], 1),
    ] {
        let output = gateway.cli(&args);
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {said}");
        assert_eq!(said.lines().count(), 1, "{args:?}: {said}");
        assert!(
            said.contains("is in use by a running gateway (locked); stop it first"),
            "{args:?}: {said}"
        );
        assert!(
            !said.contains("could not acquire lock") && !said.contains("Os {"),
            "no raw engine error: {said}"
        );
    }
}

/// `[[admin.tokens]]` admitting two of the tokens published with the
/// shipped example configuration.
fn example_tokens() -> String {
    ["example-ops", "example-dana"]
        .iter()
        .zip(["ops", "dana"])
        .map(|(token, principal)| {
            format!(
                "\n[[admin.tokens]]\nprincipal = \"{principal}\"\nroles = [\"admin\"]\ntoken_sha256 = \"{}\"\n",
                govgate::admin::auth::token_hash_hex(token)
            )
        })
        .collect()
}

#[tokio::test]
async fn serve_refuses_the_published_example_tokens_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), EPHEMERAL, &example_tokens());
    let config = config.to_str().unwrap();

    let checked = run(dir.path(), &["check-config", "--config", config]);
    assert_eq!(checked.status.code(), Some(0), "{}", stderr(&checked));
    assert!(
        stderr(&checked).contains("warning") && stderr(&checked).contains("ops, dana"),
        "{}",
        stderr(&checked)
    );

    let refused = run(dir.path(), &["serve", "--config", config]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--allow-example-tokens"),
        "{}",
        stderr(&refused)
    );
    assert!(!dir.path().join("data/ledger").exists(), "nothing started");

    // Allowed, it starts.
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--config", config, "--allow-example-tokens"])
        .env("GOVGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    read_ready_line(&mut child).await;
    child.kill().await.unwrap();
}

#[tokio::test]
async fn logs_carry_no_colour_codes_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), EPHEMERAL, "");
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("GOVGATE_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    read_ready_line(&mut child).await;
    child.kill().await.unwrap();
    let logged = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(logged.contains("INFO"), "{logged}");
    assert!(!logged.contains('\u{1b}'), "no ANSI escapes: {logged:?}");
}
