//! `govgate models ...` against a real gateway: the four-eyes flow driven
//! entirely from the command line, its tables and JSON, and its exit codes
//! (0 done, 1 refused by the API, 2 usage, token or connection problems).

use crate::support::governance::token;
use crate::support::{Gateway, TestUpstream};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_govgate");

/// One model whose declared version 1 the gateway proposes at start,
/// under a policy needing both officers.
fn config(upstream: &str) -> String {
    format!(
        r#"
[governance.approval]
approvers = 2
required_roles = ["ai_officer", "security_officer"]

[[models]]
name = "scorer"
protocol = "kserve_v2"
[[models.versions]]
version = "1"
upstream = "{upstream}"
upstream_model = "scorer-one"
"#
    )
}

/// What one run of the command printed and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{}{}", self.stdout, self.stderr);
        &self.stdout
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|err| panic!("{err}: {}", self.stdout))
    }

    fn refused(&self, code: &str) -> &str {
        assert_eq!(self.code, Some(1), "{}{}", self.stdout, self.stderr);
        assert!(self.stderr.contains(code), "wanted {code}: {}", self.stderr);
        &self.stderr
    }
}

/// Runs `govgate models ARGS` with `token` in GOVGATE_TOKEN (none for
/// `None`) and `env` set; nothing inherited from the test's environment.
async fn run_with(token: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("models")
        .args(args)
        .env_remove("GOVGATE_TOKEN")
        .env_remove("GOVGATE_ADMIN_URL")
        .env("GOVGATE_LOG", "warn")
        .envs(env.iter().copied());
    if let Some(token) = token {
        command.env("GOVGATE_TOKEN", token);
    }
    let output = command.output().await.expect("run govgate");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `govgate models ARGS --admin-url ADMIN` as `principal`.
async fn models(gateway: &Gateway, principal: &str, args: &[&str]) -> Run {
    let mut args = args.to_vec();
    args.extend(["--admin-url", &gateway.admin]);
    run_with(Some(token(principal)), &[], &args).await
}

/// The words of the table row whose first cells are `prefix`.
fn row(table: &str, prefix: &[&str]) -> Vec<String> {
    table
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .find(|words| words.len() >= prefix.len() && words[..prefix.len()] == *prefix)
        .unwrap_or_else(|| panic!("no row {prefix:?} in\n{table}"))
}

#[tokio::test]
async fn the_four_eyes_flow_runs_from_the_command_line() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start_pending("", &config(&upstream.url())).await;

    let listed = models(&gateway, "auditor", &["list"]).await;
    assert_eq!(
        row(listed.ok(), &["scorer", "1"]),
        [
            "scorer",
            "1",
            "proposed",
            "high",
            "(default)",
            "config",
            "0",
            "of",
            "2"
        ],
        "declared versions start proposed, unapproved, inactive"
    );

    // Version 1, declared in the config: both officers, then activation.
    let first = models(&gateway, "ai-officer", &["approve", "scorer", "1"]).await;
    assert!(
        first
            .ok()
            .contains("now proposed: approved by ai-officer; 1 more approval needed: role approver:security_officer"),
        "{}",
        first.stdout
    );
    let plain = models(&gateway, "plain-approver", &["approve", "scorer", "1"]).await;
    assert!(
        plain
            .refused("approver_role_required")
            .contains("approver:security_officer")
    );
    let second = models(&gateway, "security-officer", &["approve", "scorer", "1"]).await;
    assert!(
        second
            .ok()
            .contains("now approved: approved by ai-officer, security-officer"),
        "{}",
        second.stdout
    );
    models(&gateway, "ops", &["activate", "scorer", "1"])
        .await
        .ok();

    // Version 2, proposed at run time.
    let proposed = models(
        &gateway,
        "ops",
        &[
            "propose",
            "scorer",
            "--version",
            "2",
            "--upstream",
            &upstream.url(),
            "--upstream-model",
            "scorer-two",
            "--risk-class",
            "limited",
            "--change-ref",
            "CHG-42",
            "--description",
            "retrained on Q3 data",
            "--reason",
            "quarterly refresh",
        ],
    )
    .await;
    assert!(
        proposed
            .ok()
            .contains("scorer 2: version_proposed recorded as ledger entry"),
        "{}",
        proposed.stdout
    );
    models(&gateway, "ops", &["approve", "scorer", "2"])
        .await
        .refused("forbidden");
    for approver in ["security-officer", "ai-officer"] {
        let reason = format!("reviewed by {approver}");
        models(
            &gateway,
            approver,
            &["approve", "scorer", "2", "--reason", &reason],
        )
        .await
        .ok();
    }
    models(&gateway, "ops", &["activate", "scorer", "2"])
        .await
        .ok();

    let listed = models(&gateway, "auditor", &["list"]).await;
    let table = listed.ok();
    assert!(table.starts_with("MODEL"), "{table}");
    assert_eq!(
        row(table, &["scorer", "1"]),
        [
            "scorer",
            "1",
            "approved",
            "high",
            "(default)",
            "config",
            "2"
        ]
    );
    assert_eq!(
        row(table, &["scorer", "2"]),
        ["scorer", "2", "active", "limited", "CHG-42", "2", "*"]
    );

    let shown = models(&gateway, "auditor", &["show", "scorer", "2"]).await;
    let text = shown.ok();
    for expected in [
        "state            active (the active version)",
        "change ref       CHG-42",
        "upstream model   scorer-two",
        "description      retrained on Q3 data",
        "approvals        security-officer [approver:security_officer]",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    let history: Vec<Vec<String>> = text
        .lines()
        .skip_while(|line| !line.starts_with("SEQ"))
        .skip(1)
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect();
    let kinds: Vec<(&str, &str)> = history
        .iter()
        .map(|words| (words[2].as_str(), words[3].as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("version_proposed", "ops"),
            ("version_approved", "security-officer"),
            ("version_approved", "ai-officer"),
            ("version_activated", "ops"),
        ],
        "{text}"
    );
    assert_eq!(history[0][5..].join(" "), "quarterly refresh");

    // --json is the API's answer; its approval_seq names the approval
    // entry that completed the policy, and served calls cite it.
    let record = models(&gateway, "auditor", &["show", "scorer", "2", "--json"])
        .await
        .json();
    assert_eq!(record["state"], "active");
    assert_eq!(record["active"], true);
    let approval_seq = record["approval_seq"].as_u64().expect("approved");
    assert_eq!(record["approvals"][1]["seq"], approval_seq);
    let entries = gateway.entries().await;
    let approval = &entries[approval_seq as usize];
    assert_eq!(approval["kind"], "version_approved");
    assert_eq!(
        (&approval["model"], &approval["version"]),
        (&"scorer".into(), &"2".into())
    );
    assert_eq!(approval["state"], "approved");
    let reply = gateway
        .infer(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let decision = gateway.wait_for_decision(&reply.decision_id()).await;
    assert_eq!(decision["version"], "2");
    assert_eq!(decision["approval_seq"], approval_seq);

    // Back to 1, then 2 retired and revoked.
    let rolled = models(
        &gateway,
        "ops",
        &["rollback", "scorer", "--reason", "canary errors"],
    )
    .await;
    assert!(
        rolled
            .ok()
            .contains("scorer 1: version_rolled_back recorded"),
        "{}",
        rolled.stdout
    );
    models(&gateway, "ops", &["retire", "scorer", "2"])
        .await
        .ok();
    let revoked = models(
        &gateway,
        "security-officer",
        &["revoke", "scorer", "2", "--reason", "training data leak"],
    )
    .await;
    assert!(revoked.ok().contains("now revoked"), "{}", revoked.stdout);
    let again = models(&gateway, "ops", &["activate", "scorer", "2"]).await;
    assert!(
        again
            .refused("invalid_transition")
            .contains("current state: revoked")
    );
    models(&gateway, "ops", &["rollback", "scorer"])
        .await
        .refused("nothing_to_roll_back");

    let listing = models(&gateway, "auditor", &["list", "--json"])
        .await
        .json();
    let scorer = &listing["models"][0];
    assert_eq!(scorer["name"], "scorer");
    assert_eq!(scorer["active"], "1");
    assert_eq!(scorer["versions"]["2"]["state"], "revoked");
    let history = models(&gateway, "auditor", &["show", "scorer", "1"]).await;
    assert!(
        history.ok().contains("version_rolled_back  ops"),
        "{}",
        history.stdout
    );
}

#[tokio::test]
async fn refusals_exit_1_and_usage_or_connection_problems_exit_2() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start_pending("", &config(&upstream.url())).await;
    let url = ("GOVGATE_ADMIN_URL", gateway.admin.as_str());

    let missing = run_with(None, &[url], &["list"]).await;
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("GOVGATE_TOKEN is not set"),
        "{}",
        missing.stderr
    );
    assert!(missing.stdout.is_empty());

    // A wrong token is the API's refusal; the token is never echoed.
    let wrong = run_with(Some("not-a-real-token"), &[url], &["list"]).await;
    wrong.refused("invalid_token");
    assert!(!wrong.stderr.contains("not-a-real-token") && !wrong.stdout.contains("not-a"));

    // The admin URL from the environment, and the flag overriding it.
    let ops = Some(token("ops"));
    run_with(ops, &[url], &["show", "scorer"]).await.ok();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let unreachable = run_with(ops, &[url], &["list", "--admin-url", &closed]).await;
    assert_eq!(unreachable.code, Some(2), "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("cannot reach the admin API"),
        "{}",
        unreachable.stderr
    );
    let tls = run_with(ops, &[], &["list", "--admin-url", "https://127.0.0.1:9090"]).await;
    assert_eq!(tls.code, Some(2), "{}", tls.stderr);
    // Not the admin API: the public port answers 404 without its JSON.
    let public = run_with(ops, &[], &["list", "--admin-url", &gateway.public]).await;
    assert_eq!(public.code, Some(2), "{}", public.stderr);

    // Usage: a rejection needs a reason, a risk class must be known.
    let ai = Some(token("ai-officer"));
    let no_reason = run_with(ai, &[url], &["reject", "scorer", "1"]).await;
    assert_eq!(no_reason.code, Some(2), "{}", no_reason.stderr);
    assert!(
        no_reason.stderr.contains("--reason"),
        "{}",
        no_reason.stderr
    );
    let args = [
        "propose",
        "scorer",
        "--version",
        "9",
        "--upstream",
        "http://127.0.0.1:1",
        "--risk-class",
        "severe",
        "--change-ref",
        "CHG-1",
    ];
    assert_eq!(run_with(ops, &[url], &args).await.code, Some(2));

    // The API's refusals, with --json printing its error body to stdout.
    run_with(ops, &[url], &["show", "nope"])
        .await
        .refused("unknown_model");
    let blank = run_with(ai, &[url], &["reject", "scorer", "1", "--reason", " "]).await;
    blank.refused("reason_required");
    let rejected = run_with(
        ai,
        &[url],
        &["reject", "scorer", "1", "--reason", "no model card"],
    )
    .await;
    assert!(
        rejected.ok().contains("now rejected"),
        "{}",
        rejected.stdout
    );
    let late = run_with(ai, &[url], &["approve", "scorer", "1", "--json"]).await;
    late.refused("invalid_transition");
    let body: Value = serde_json::from_str(&late.stdout).expect("error body on stdout");
    assert_eq!(body["error"]["code"], "invalid_transition");
    assert_eq!(body["error"]["current_state"], "rejected");
    let retire = run_with(ops, &[url], &["retire", "scorer", "1"]).await;
    assert!(
        retire
            .refused("invalid_transition")
            .contains("current state: rejected")
    );
}
