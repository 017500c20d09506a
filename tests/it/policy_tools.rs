//! The offline policy tools through the real binary: `govgate policies
//! test` (the shipped tests pass, a failing test exits 1, a broken folder
//! 2), a policy with OPA's built-ins passing `check-config`, and `govgate
//! policies eval` reproducing recorded verdicts and counting the ones a
//! candidate set would change over a replayed range.

use crate::reviews::{infer_as, policy_dir};
use crate::support::{Gateway, TestUpstream};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_govgate");

fn govgate(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn policies_test_runs_the_shipped_tests_and_reports_coverage() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let out = govgate(&["policies", "test", shipped.to_str().unwrap()]);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS  caller_groups_test.rego: data.govgate_test.test_other_caller_is_denied_credit_scoring"), "{text}");
    assert!(text.contains(" 0 failed, 0 errors"), "{text}");
    for file in [
        "audit_sample",
        "caller_groups",
        "credit_borderline",
        "high_risk_review",
    ] {
        assert!(text.contains(&format!("  {file}.rego ")), "{file}: {text}");
    }
    assert!(
        !text.contains("_test.rego  "),
        "test files are not in the coverage: {text}"
    );
}

const CALLERS: &str = "package govgate\n\ndeny contains \"caller pattern\" if {\n\
    \tinput.stage == \"request\"\n\
    \tnot regex.match(`^svc-[a-z]+$`, input.caller)\n}\n\n\
    flag contains \"night\" if {\n\
    \tinput.stage == \"request\"\n\
    \tinput.caller == \"svc-night\"\n}\n";

#[test]
fn a_failing_test_exits_1_and_a_broken_folder_2() {
    let tests = "package govgate_test\n\nimport data.govgate\n\n\
        test_service_allowed if {\n\tcount(govgate.deny) == 0 with input as {\"stage\": \"request\", \"caller\": \"svc-a\"}\n}\n\n\
        test_wrong_expectation if {\n\tcount(govgate.deny) == 0 with input as {\"stage\": \"request\", \"caller\": \"alice\"}\n}\n";
    let unreached = "package govgate\n\nflag contains \"z\" if {\n\tinput.caller == \"nobody\"\n\tinput.sample < 2\n}\n";
    let dir = policy_dir(&[
        ("callers.rego", CALLERS),
        ("callers_test.rego", tests),
        ("unreached.rego", unreached),
    ]);
    let out = govgate(&["policies", "test", dir.path().to_str().unwrap()]);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("PASS  callers_test.rego: data.govgate_test.test_service_allowed"),
        "{text}"
    );
    assert!(
        text.contains(
            "FAIL  callers_test.rego: data.govgate_test.test_wrong_expectation: undefined"
        ),
        "{text}"
    );
    assert!(
        text.contains("2 tests: 1 passed, 1 failed, 0 errors"),
        "{text}"
    );
    // No test got past the unreached rule's first statement.
    assert!(text.contains("unreached.rego"), "{text}");
    assert!(
        text.contains("(1 of 3 lines), not covered: 3, 5\n"),
        "{text}"
    );

    let broken = policy_dir(&[("callers.rego", "package govgate\n\ndeny contains x if {\n")]);
    let out = govgate(&["policies", "test", broken.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(said(&out).contains("callers.rego:"), "{}", said(&out));
    let none = policy_dir(&[("callers.rego", CALLERS)]);
    let out = govgate(&["policies", "test", none.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(said(&out).contains("no test_* rule"), "{}", said(&out));
}

const HOLD: &str = "package govgate\n\nhold contains \"held for review\" if {\n\
    \tinput.stage == \"response\"\n\
    \tinput.response.hold == true\n}\n";

/// A gateway whose policies use `regex.match` (which `check-config` and
/// the start refused before the built-ins were enabled) records three
/// decisions; `eval` on each reproduces its recorded verdicts, and a
/// replay with the hold removed counts the one verdict that changes.
#[tokio::test]
async fn policies_eval_reproduces_recorded_verdicts_and_replay_counts_changes() {
    let upstream = TestUpstream::start().await;
    let policies = policy_dir(&[("callers.rego", CALLERS), ("hold.rego", HOLD)]);
    let config = format!(
        "{}\n[review]\npolicies_dir = \"{}\"\n",
        crate::models(&upstream.url()),
        policies.path().display()
    );
    let mut gateway = Gateway::start(&config).await;
    let checked = gateway.cli(&["check-config"]);
    assert!(checked.status.success(), "{}", said(&checked));
    // The upstream echoes the body: `{"hold": true}` is also the answer.
    let served = infer_as(&gateway, "svc-a", r#"{"hold": false}"#).await;
    let denied = infer_as(&gateway, "alice", r#"{"hold": false}"#).await;
    let held = infer_as(&gateway, "svc-night", r#"{"hold": true}"#).await;
    assert_eq!([served.status, denied.status, held.status], [200, 403, 202]);
    let ids = [
        served.decision_id(),
        denied.decision_id(),
        held.decision_id(),
    ];
    for id in &ids {
        gateway.wait_for_decision(id).await;
    }
    let size = gateway.entries().await.len() + 1;
    assert!(gateway.stop().await.success());
    let dir = policies.path().to_str().unwrap();

    let eval = |id: &str| {
        let out = gateway.cli(&["policies", "eval", dir, "--decision", id]);
        assert_eq!(out.status.code(), Some(0), "{}", said(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = eval(&ids[0]);
    assert!(
        text.contains("request   allow (recorded: allow)\n"),
        "{text}"
    );
    assert!(
        text.contains("response  allow (recorded: allow)\n"),
        "{text}"
    );
    let text = eval(&ids[1]);
    assert!(
        text.contains("request   deny (recorded: deny)\n  deny: caller pattern\n"),
        "{text}"
    );
    assert!(
        text.contains("response  not evaluated (recorded: not evaluated)\n"),
        "{text}"
    );
    let text = eval(&ids[2]);
    assert!(
        text.contains("request   flag (recorded: flag)\n  flag: night\n"),
        "{text}"
    );
    assert!(
        text.contains("response  hold (recorded: hold)\n  hold: held for review\n"),
        "{text}"
    );
    assert!(text.contains("200 assumed"), "{text}");

    // One more than the entries seen running: the stop entry.
    let range = format!("0..{size}");
    let out = gateway.cli(&["policies", "eval", dir, "--replay", &range]);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(": 3 decisions, 0 verdicts would change, 3 unchanged, 0 skipped"),
        "{text}"
    );

    std::fs::remove_file(policies.path().join("hold.rego")).unwrap();
    let out = gateway.cli(&["policies", "eval", dir, "--replay", &range]);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(": 3 decisions, 1 verdicts would change, 2 unchanged"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}: request flag -> flag, response hold -> allow",
            ids[2]
        )),
        "{text}"
    );

    // An input document from a file, both stages.
    let input = gateway.dir.path().join("input.json");
    std::fs::write(
        &input,
        r#"{"model": "scorer", "caller": "bob", "request": {}, "status": 200, "response": {}}"#,
    )
    .unwrap();
    let out = govgate(&["policies", "eval", dir, "--input", input.to_str().unwrap()]);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("request   deny\n  deny: caller pattern\nresponse  not evaluated\n"),
        "{text}"
    );
}
