//! A stage the policies have no rule for is not evaluated: its decision
//! records what evaluating it records (allow, empty sets), both verifiers
//! accept the ledger, and a reload that adds a rule for that stage brings
//! its evaluation back.

use crate::reviews::{infer_as, policy_dir};
use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream};
use http::Method;
use serde_json::json;

const REQUEST_ONLY: &str = r#"package govgate

deny contains "caller mallory is blocked" if {
	input.stage == "request"
	input.caller == "mallory"
}
"#;

/// A response-stage rule that never fires: the stage is evaluated again.
const NEVER: &str = r#"package govgate

flag contains "never" if {
	input.stage == "response"
	input.status == 999
}
"#;

const HOLD: &str = r#"package govgate

hold contains "held for review" if {
	input.stage == "response"
	input.response.hold == true
}
"#;

async fn reload(gateway: &Gateway) {
    let reply = admin_call(
        &gateway.admin,
        Some("ops"),
        Method::POST,
        "/admin/policies/reload",
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn a_stage_without_rules_records_what_evaluating_records_and_a_reload_brings_it_back() {
    let upstream = TestUpstream::start().await;
    let policies = policy_dir(&[("request.rego", REQUEST_ONLY)]);
    let config = format!(
        "{}\n[review]\npolicies_dir = \"{}\"\n",
        crate::models(&upstream.url()),
        policies.path().display()
    );
    let mut gateway = Gateway::start(&config).await;
    // The upstream echoes the body, so `{"hold": true}` is also the answer.
    let body = r#"{"hold": true}"#;

    let skipped = infer_as(&gateway, "alice", body).await;
    assert_eq!(skipped.status, 200, "{}", skipped.text());
    let denied = infer_as(&gateway, "mallory", body).await;
    assert_eq!(denied.error_code(), "policy_denied");
    let skipped = gateway.wait_for_decision(&skipped.decision_id()).await;
    let allowed = json!({"action": "allow", "deny": [], "hold": [], "flag": []});
    for stage in ["request", "response"] {
        let verdict = skipped["policy"][stage].as_object().unwrap();
        for (key, want) in allowed.as_object().unwrap() {
            assert_eq!(&verdict[key], want, "{stage}: {verdict:?}");
        }
    }

    // A rule that never fires: the response stage is evaluated, and its
    // decision records the same policy verdicts.
    std::fs::write(policies.path().join("never.rego"), NEVER).unwrap();
    reload(&gateway).await;
    let evaluated = infer_as(&gateway, "alice", body).await;
    assert_eq!(evaluated.status, 200, "{}", evaluated.text());
    let evaluated = gateway.wait_for_decision(&evaluated.decision_id()).await;
    assert_eq!(evaluated["policy"]["request"], skipped["policy"]["request"]);
    assert_eq!(
        evaluated["policy"]["response"],
        skipped["policy"]["response"]
    );
    assert_ne!(evaluated["policy"]["set_seq"], skipped["policy"]["set_seq"]);

    // Back to request rules only, then a response rule that fires: each
    // reload recomputes which stages are evaluated.
    std::fs::remove_file(policies.path().join("never.rego")).unwrap();
    reload(&gateway).await;
    assert_eq!(infer_as(&gateway, "alice", body).await.status, 200);
    std::fs::write(policies.path().join("hold.rego"), HOLD).unwrap();
    reload(&gateway).await;
    assert_eq!(infer_as(&gateway, "alice", body).await.status, 202);

    // Both verifiers accept the ledger.
    assert!(gateway.stop().await.success());
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let said = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let export = gateway.cli(&["export", "--out", bundle.to_str().unwrap()]);
    assert!(export.status.success(), "{}", said(&export));
    let rust = gateway.cli(&[
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--vkey",
        &gateway.vkey,
    ]);
    assert!(rust.status.success(), "{}", said(&rust));
    let python = crate::support::python_verifier(&[
        "bundle".as_ref(),
        "--vkey".as_ref(),
        gateway.vkey.as_ref(),
        bundle.as_os_str(),
    ]);
    assert!(python.status.success(), "{}", said(&python));
}
