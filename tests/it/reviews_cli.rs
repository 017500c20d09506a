//! `govgate reviews ...` and `govgate policies ...`: what the commands
//! settle before calling the admin API (usage, token, connection), each
//! exiting 2 with a message and nothing on stdout; then the reviewer's
//! workflow and policy reloads driven from the command line against a real
//! gateway, checked on the client's poll and in the ledger.

use crate::reviews::{held, infer_as, poll, sha256_hex, start};
use crate::support::Gateway;
use crate::support::governance::token;
use serde_json::Value;
use std::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_govgate");

/// How one run ended: exit code and stderr (stdout must stay empty).
fn govgate(token: Option<&str>, admin: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(BIN);
    command
        .args(args)
        .env_remove("GOVGATE_TOKEN")
        .env("GOVGATE_ADMIN_URL", admin)
        .env("GOVGATE_LOG", "warn");
    if let Some(token) = token {
        command.env("GOVGATE_TOKEN", token);
    }
    let output = command.output().expect("run govgate");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    (output.status.code(), stderr)
}

#[test]
fn usage_problems_exit_2_without_calling_the_api() {
    // A listener nobody accepts on: any call would leave a connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    let id = "3f9c0d1e2a3b4c5d6e7f8091a2b3c4d5";
    let cases: [(&[&str], &str); 7] = [
        (
            &["decide", id, "reject"],
            "to reject you must give --reason",
        ),
        (
            &["decide", id, "override", "--answer-json", "{}"],
            "to override you must give --reason",
        ),
        (
            &["decide", id, "override", "--reason", "capped"],
            "--answer-file PATH or --answer-json JSON",
        ),
        (
            &["decide", id, "approve", "--status", "403"],
            "only for override",
        ),
        (
            &[
                "decide",
                id,
                "override",
                "--reason",
                "x",
                "--answer-file",
                "/nonexistent/a.json",
            ],
            "cannot read the answer file /nonexistent/a.json",
        ),
        (&["decide", id, "release"], "invalid value 'release'"),
        (&["list", "--older-than", "1h30m"], "90s, 10m, 2h, 1d"),
    ];
    for (args, message) in cases {
        let args: Vec<&str> = std::iter::once("reviews")
            .chain(args.iter().copied())
            .collect();
        let (code, stderr) = govgate(Some("a-token"), &admin, &args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: wanted {message:?} in {stderr}"
        );
    }
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(err) if err.kind() == std::io::ErrorKind::WouldBlock),
        "a command called the API: {accepted:?}"
    );
}

#[test]
fn no_token_or_no_admin_api_exits_2() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for args in [
        &["reviews", "list"][..],
        &["reviews", "show", "3f9c"],
        &["policies", "show"],
        &["policies", "reload"],
    ] {
        let (code, stderr) = govgate(None, &closed, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("GOVGATE_TOKEN is not set"), "{stderr}");
        let (code, stderr) = govgate(Some("a-token"), &closed, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("cannot reach the admin API"), "{stderr}");
        assert!(!stderr.contains("a-token"), "the token is never echoed");
    }
    let (code, stderr) = govgate(Some("t"), "https://127.0.0.1:9090", &["policies", "show"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("plain http://"), "{stderr}");
}

/// What one run against a gateway printed and how it ended.
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Exit 0: its stdout.
    fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "{:?}\nstdout: {}\nstderr: {}",
            self.args,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Exit 0 with `--json`: stdout parsed.
    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|err| panic!("{err}: {}", self.stdout))
    }

    /// Exit 1, the API's `code` on stderr, nothing on stdout: stderr.
    fn refused(&self, code: &str) -> &str {
        assert_eq!(
            self.code,
            Some(1),
            "{:?}\nstdout: {}\nstderr: {}",
            self.args,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains("refused by the admin API") && self.stderr.contains(code),
            "{:?}: wanted {code} in {}",
            self.args,
            self.stderr
        );
        assert!(self.stdout.is_empty(), "{:?}: {}", self.args, self.stdout);
        &self.stderr
    }
}

/// Runs `govgate ARGS --admin-url ADMIN` as `principal` (its token in
/// GOVGATE_TOKEN); nothing inherited from the test's environment.
async fn govgate_as(gateway: &Gateway, principal: &str, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(BIN)
        .args(args)
        .args(["--admin-url", &gateway.admin])
        .env_remove("GOVGATE_ADMIN_URL")
        .env("GOVGATE_TOKEN", token(principal))
        .env("GOVGATE_LOG", "warn")
        .output()
        .await
        .expect("run govgate");
    Run {
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The words of the table row whose first cell is `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .find(|words| words.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in\n{table}"))
}

/// The value printed after `name` on a `name   value` line of `show`.
fn field<'a>(shown: &'a str, name: &str) -> &'a str {
    shown
        .lines()
        .find_map(|line| {
            let value = line.strip_prefix(name)?;
            value.starts_with("  ").then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("no {name} line in\n{shown}"))
}

/// The seqs of the ledger's `kind` entries, in order.
async fn seqs_of(gateway: &Gateway, kind: &str) -> Vec<u64> {
    gateway
        .entries()
        .await
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

/// The single `review_decided` entry of `review_id`.
async fn decided_entry(gateway: &Gateway, review_id: &str) -> Value {
    let entries: Vec<Value> = gateway
        .entries()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "review_decided" && e["review_id"] == review_id)
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

#[tokio::test]
async fn reviews_list_shows_a_held_review_and_its_filters_exclude_it() {
    let (gateway, _upstream, _policies) = start("").await;
    let (_decision_id, review_id) = held(&gateway, r#"{"hold": true}"#).await;

    let listed = govgate_as(&gateway, "rita", &["reviews", "list"]).await;
    let words = row(listed.ok(), &review_id);
    assert_eq!(
        words[..6],
        [
            review_id.as_str(),
            "hold",
            "pending",
            "scorer",
            "2",
            "svc-app"
        ],
        "{}",
        listed.stdout
    );
    assert!(
        words[6].ends_with('s') && words[6][..words[6].len() - 1].parse::<u64>().is_ok(),
        "age in seconds: {}",
        listed.stdout
    );
    assert_eq!(words[7..].join(" "), "held for review");
    assert!(listed.stdout.starts_with("REVIEW "), "{}", listed.stdout);
    assert_eq!(listed.stdout.lines().count(), 2, "{}", listed.stdout);

    let json = govgate_as(&gateway, "rita", &["reviews", "list", "--json"]).await;
    let reviews = json.json()["reviews"].as_array().unwrap().clone();
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["review_id"], review_id.as_str());
    assert_eq!(reviews[0]["review_kind"], "hold");

    // Each filter, first matching then not: the option reaches the API.
    let filters: [(&[&str], &[&str]); 3] = [
        (&["--kind", "hold"], &["--kind", "flag"]),
        (&["--model", "scorer"], &["--model", "other"]),
        (&["--older-than", "0s"], &["--older-than", "1h"]),
    ];
    for (matching, excluding) in filters {
        let args: Vec<&str> = ["reviews", "list"]
            .iter()
            .chain(matching)
            .copied()
            .collect();
        let shown = govgate_as(&gateway, "rita", &args).await;
        assert_eq!(row(shown.ok(), &review_id)[2], "pending", "{args:?}");
        let args: Vec<&str> = ["reviews", "list"]
            .iter()
            .chain(excluding)
            .copied()
            .collect();
        let none = govgate_as(&gateway, "rita", &args).await;
        assert_eq!(none.ok(), "no reviews\n", "{args:?}");
    }

    let decided = ["reviews", "list", "--status", "decided"];
    assert_eq!(
        govgate_as(&gateway, "rita", &decided).await.ok(),
        "no reviews\n",
        "not decided yet"
    );
    let all = govgate_as(&gateway, "auditor", &["reviews", "list", "--status", "all"]).await;
    assert_eq!(row(all.ok(), &review_id)[2], "pending");

    govgate_as(
        &gateway,
        "rita",
        &["reviews", "decide", &review_id, "approve"],
    )
    .await
    .ok();
    let now_decided = govgate_as(&gateway, "rita", &decided).await;
    assert_eq!(row(now_decided.ok(), &review_id)[2], "approved");
    assert_eq!(
        govgate_as(&gateway, "rita", &["reviews", "list"])
            .await
            .ok(),
        "no reviews\n",
        "pending by default"
    );
}

#[tokio::test]
async fn reviews_show_prints_the_call_the_answer_the_reasons_and_the_policy_set() {
    let (gateway, _upstream, _policies) = start("").await;
    let body = r#"{"hold": true, "note": "shown in full"}"#;
    let (decision_id, review_id) = held(&gateway, body).await;
    let set_seq = seqs_of(&gateway, "policy_set_loaded").await[0];
    let decision_seq = gateway.decision(&decision_id).await["seq"].clone();

    let run = govgate_as(&gateway, "auditor", &["reviews", "show", &review_id]).await;
    let shown = run.ok();
    assert_eq!(field(shown, "review"), review_id);
    assert_eq!(
        field(shown, "decision"),
        format!("{decision_id} (ledger entry {decision_seq})")
    );
    assert_eq!(field(shown, "kind"), "hold");
    assert_eq!(field(shown, "status"), "pending");
    assert_eq!(field(shown, "model"), "scorer 2");
    assert_eq!(field(shown, "caller"), "svc-app");
    assert_eq!(field(shown, "stage"), "response");
    assert_eq!(field(shown, "reasons"), "held for review");
    assert_eq!(field(shown, "policy set"), set_seq.to_string());
    let policy_file = row(shown, "test.rego");
    assert_eq!(policy_file.len(), 2, "{shown}");
    assert_eq!(policy_file[1].len(), 64, "a SHA-256: {shown}");

    // The request, then the answer (the upstream echoes the body), each
    // pretty-printed and indented under its heading.
    let (request, response) = shown
        .split_once("\nresponse ")
        .unwrap_or_else(|| panic!("no response heading in\n{shown}"));
    let (_, request) = request
        .split_once("\nrequest ")
        .unwrap_or_else(|| panic!("no request heading in\n{shown}"));
    let pretty = "  {\n    \"hold\": true,\n    \"note\": \"shown in full\"\n  }\n";
    assert_eq!(
        request.trim_start(),
        format!("{} bytes, application/json\n{pretty}", body.len()),
        "{shown}"
    );
    assert!(
        response
            .trim_start()
            .starts_with(&format!("200, {} bytes, ", body.len())),
        "{shown}"
    );
    assert!(response.contains(pretty), "{shown}");
    let last: Vec<&str> = shown.lines().last().unwrap().split_whitespace().collect();
    assert_eq!(last, ["decision", "none", "yet"], "{shown}");

    let missing = govgate_as(
        &gateway,
        "rita",
        &["reviews", "show", "0123456789abcdef0123456789abcdef"],
    )
    .await;
    missing.refused("review_not_found");
}

#[tokio::test]
async fn reviews_decide_approve_releases_the_upstream_answer_byte_exact() {
    let (gateway, _upstream, _policies) = start("").await;
    // Odd spacing and non-ASCII: a re-serialized answer would differ.
    let body = "{ \"hold\" : true,\n  \"text\": \"r\u{e9}sum\u{e9}\", \"n\": 1.50 }";
    let (decision_id, review_id) = held(&gateway, body).await;
    assert_eq!(poll(&gateway, &decision_id, None).await.status, 202);

    let run = govgate_as(
        &gateway,
        "rita",
        &["reviews", "decide", &review_id, "approve"],
    )
    .await;
    let closed = decided_entry(&gateway, &review_id).await;
    assert_eq!(
        run.ok(),
        format!(
            "review {review_id} approved (ledger entry {})\n",
            closed["seq"]
        ),
    );
    assert_eq!(closed["reviewer"], "rita");
    assert_eq!(closed["verdict"], "approve");
    assert_eq!(closed["outcome"], "released");

    let released = poll(&gateway, &decision_id, None).await;
    assert_eq!(released.status, 200, "{}", released.text());
    assert_eq!(&released.body[..], body.as_bytes(), "byte-exact release");
    assert_eq!(released.headers["govgate-review-state"], "approved");

    let shown = govgate_as(&gateway, "rita", &["reviews", "show", &review_id]).await;
    let shown = shown.ok();
    assert_eq!(field(shown, "status"), "approved");
    assert_eq!(field(shown, "verdict"), "approve by rita");
    assert_eq!(field(shown, "ledger entry"), closed["seq"].to_string());
}

#[tokio::test]
async fn reviews_decide_override_releases_exactly_the_given_answer() {
    let (gateway, _upstream, _policies) = start("").await;
    let body = r#"{"hold": true, "score": 0.5}"#;
    let (decision_id, review_id) = held(&gateway, body).await;

    let run = govgate_as(
        &gateway,
        "rita",
        &[
            "reviews",
            "decide",
            &review_id,
            "override",
            "--reason",
            "score recomputed by hand",
            "--answer-json",
            r#"{"score":0.1}"#,
        ],
    )
    .await;
    let closed = decided_entry(&gateway, &review_id).await;
    assert_eq!(
        run.ok(),
        format!(
            "review {review_id} overridden (ledger entry {})\n",
            closed["seq"]
        ),
    );

    let released = poll(&gateway, &decision_id, None).await;
    assert_eq!(released.status, 200, "{}", released.text());
    let override_bytes = br#"{"score":0.1}"#;
    assert_eq!(&released.body[..], override_bytes);
    assert_eq!(released.headers["content-type"], "application/json");
    assert_eq!(released.headers["govgate-review-state"], "overridden");

    assert_eq!(closed["verdict"], "override");
    assert_eq!(closed["reviewer"], "rita");
    assert_eq!(closed["reason"], "score recomputed by hand");
    assert_eq!(closed["override_sha256"], sha256_hex(override_bytes));
    assert_eq!(closed["answer_sha256"], sha256_hex(body.as_bytes()));
    assert_eq!(closed["outcome"], "released");

    let shown = govgate_as(&gateway, "auditor", &["reviews", "show", &review_id]).await;
    assert_eq!(
        field(shown.ok(), "override sha256"),
        sha256_hex(override_bytes)
    );
}

#[tokio::test]
async fn reviews_decide_reject_and_the_refusals_exit_1() {
    let (gateway, _upstream, _policies) = start("").await;
    let (decision_id, review_id) = held(&gateway, r#"{"hold": true}"#).await;

    // Not a reviewer: refused, nothing changes.
    let ops = govgate_as(
        &gateway,
        "ops",
        &["reviews", "decide", &review_id, "approve"],
    )
    .await;
    ops.refused("forbidden");
    assert_eq!(poll(&gateway, &decision_id, None).await.status, 202);

    let run = govgate_as(
        &gateway,
        "rita",
        &[
            "reviews",
            "decide",
            &review_id,
            "reject",
            "--reason",
            "not plausible",
        ],
    )
    .await;
    let closed = decided_entry(&gateway, &review_id).await;
    assert_eq!(
        run.ok(),
        format!(
            "review {review_id} rejected (ledger entry {})\n",
            closed["seq"]
        ),
    );
    assert_eq!(closed["verdict"], "reject");
    assert_eq!(closed["outcome"], "rejected");
    assert_eq!(closed["reason"], "not plausible");
    let answer = poll(&gateway, &decision_id, None).await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(answer.error_code(), "review_rejected");

    let again = govgate_as(
        &gateway,
        "rita",
        &["reviews", "decide", &review_id, "approve"],
    )
    .await;
    let stderr = again.refused("already_decided");
    assert!(stderr.contains("current state: rejected"), "{stderr}");
    assert_eq!(
        poll(&gateway, &decision_id, None).await.status,
        403,
        "still rejected"
    );

    // rita asks; rita may not decide.
    let reply = infer_as(&gateway, "rita", r#"{"hold": true}"#).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let own_decision = reply.decision_id();
    let own = reply.json()["review_id"].as_str().unwrap().to_owned();
    let refused = govgate_as(&gateway, "rita", &["reviews", "decide", &own, "approve"]).await;
    refused.refused("own_request");
    assert_eq!(poll(&gateway, &own_decision, None).await.status, 202);
    let entries = gateway.entries().await;
    assert!(
        !entries
            .iter()
            .any(|e| e["kind"] == "review_decided" && e["review_id"] == own.as_str()),
        "a refused decision is not recorded"
    );
}

#[tokio::test]
async fn policies_show_and_reload_from_the_command_line() {
    let (gateway, _upstream, policies) = start("").await;
    let first_set = seqs_of(&gateway, "policy_set_loaded").await;
    assert_eq!(first_set.len(), 1);
    let first_set = first_set[0];

    let shown = govgate_as(&gateway, "auditor", &["policies", "show"]).await;
    let text = shown.ok();
    assert_eq!(field(text, "dir"), policies.path().display().to_string());
    assert_eq!(field(text, "policy set"), first_set.to_string());
    let test_rego = row(text, "test.rego");
    assert_eq!(test_rego.len(), 2, "{text}");
    assert_eq!(test_rego[1].len(), 64, "{text}");
    assert_eq!(
        text.lines().count(),
        4,
        "dir, set, heading, one file: {text}"
    );

    std::fs::write(
        policies.path().join("broken.rego"),
        "package govgate\n\ndeny contains \"x\" if {\n  input.stage ==\n}\n",
    )
    .unwrap();
    let not_admin = govgate_as(&gateway, "rita", &["policies", "reload"]).await;
    not_admin.refused("forbidden");
    let broken = govgate_as(&gateway, "ops", &["policies", "reload"]).await;
    let stderr = broken.refused("policy_invalid");
    // The `}` where the comparison's right-hand side should be.
    assert!(
        stderr.contains("(422 policy_invalid): broken.rego:5: expecting expression\n"),
        "the file and line: {stderr}"
    );
    assert!(
        stderr.contains(&format!("keeps policy set {first_set}\n")),
        "{stderr}"
    );
    assert_eq!(
        seqs_of(&gateway, "policy_set_loaded").await,
        [first_set],
        "nothing recorded for a set that did not load"
    );
    assert_eq!(
        infer_as(&gateway, "mallory", "{}").await.error_code(),
        "policy_denied",
        "the old set still decides"
    );

    std::fs::write(
        policies.path().join("broken.rego"),
        "package govgate\n\ndeny contains \"eve is blocked too\" if {\n  input.stage == \"request\"\n  input.caller == \"eve\"\n}\n",
    )
    .unwrap();
    let fixed = govgate_as(&gateway, "ops", &["policies", "reload"]).await;
    let text = fixed.ok();
    let sets = seqs_of(&gateway, "policy_set_loaded").await;
    assert_eq!(sets.len(), 2, "the reload is recorded: {sets:?}");
    assert!(sets[1] > first_set);
    assert_eq!(
        text.lines().next(),
        Some(format!("loaded policy set {}", sets[1]).as_str()),
        "{text}"
    );
    assert_eq!(row(text, "broken.rego").len(), 2, "{text}");
    assert_eq!(
        row(text, "test.rego"),
        test_rego,
        "unchanged file, same digest"
    );
    assert_eq!(
        infer_as(&gateway, "eve", "{}").await.error_code(),
        "policy_denied",
        "the new set decides"
    );
    let shown = govgate_as(&gateway, "auditor", &["policies", "show"]).await;
    assert_eq!(field(shown.ok(), "policy set"), sets[1].to_string());
}
