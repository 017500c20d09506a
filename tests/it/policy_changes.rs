//! Policy sets under change control (`review.policy_approval`): a proposed
//! set judges nothing until two distinct approvers approved it and it was
//! activated; rollback restores the previous set's verdicts; a restart
//! keeps the active set; SIGHUP only proposes; every step is a ledger
//! entry both verifiers accept. Without the key, sets load as before and
//! the opt-out is recorded.

use crate::reviews::{infer_as, policy_dir};
use crate::support::governance::{admin_call, token};
use crate::support::{Gateway, TestUpstream};
use http::Method;
use serde_json::Value;
use std::path::Path;

/// Denies one caller at the request stage; lets everyone else through.
const GENTLE: &str = r#"package govgate

deny contains "caller mallory is blocked" if {
	input.stage == "request"
	input.caller == "mallory"
}
"#;

/// Denies every request.
const DENY_ALL: &str = r#"package govgate

deny contains "change freeze: everything is denied" if {
	input.stage == "request"
}
"#;

fn config(upstream: &str, policies: &Path, approval: &str) -> String {
    format!(
        "{}\n[review]\npolicies_dir = \"{}\"\n{approval}\n",
        crate::models(upstream),
        policies.display()
    )
}

/// Runs `govgate policies ARGS --admin-url ADMIN` as `principal`.
async fn policies(gateway: &Gateway, principal: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .arg("policies")
        .args(args)
        .args(["--admin-url", &gateway.admin])
        .env_remove("GOVGATE_ADMIN_URL")
        .env("GOVGATE_LOG", "warn")
        .env("GOVGATE_TOKEN", token(principal))
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

pub(crate) async fn sets(gateway: &Gateway) -> Value {
    let reply = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/policies/sets",
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// The proposal seq of the set whose files are `name` alone.
fn set_of(sets: &Value, name: &str) -> u64 {
    sets["sets"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|set| set["files"][0]["file"] == name && set["files"].as_array().unwrap().len() == 1)
        .unwrap_or_else(|| panic!("no set of {name}: {sets}"))["seq"]
        .as_u64()
        .unwrap()
}

async fn act(gateway: &Gateway, principal: &str, path: &str) -> crate::support::client::Reply {
    admin_call(&gateway.admin, Some(principal), Method::POST, path, "").await
}

/// Approves `set` as both officers and activates it as ops.
async fn approve_and_activate(gateway: &Gateway, set: u64) -> u64 {
    for officer in ["ai-officer", "security-officer"] {
        let reply = act(
            gateway,
            officer,
            &format!("/admin/policies/sets/{set}/approve"),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let reply = act(
        gateway,
        "ops",
        &format!("/admin/policies/sets/{set}/activate"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["entry_seq"].as_u64().unwrap()
}

/// The status of a request by `caller`, and the set_seq its decision cites.
async fn verdict(gateway: &Gateway, caller: &str) -> (u16, u64) {
    let reply = infer_as(gateway, caller, r#"{"inputs": []}"#).await;
    let decision = gateway.wait_for_decision(&reply.decision_id()).await;
    (
        reply.status.as_u16(),
        decision["policy"]["set_seq"].as_u64().unwrap(),
    )
}

fn kinds(entries: &[Value], kind: &str) -> Vec<Value> {
    entries
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unapproved_set_never_judges_and_rollback_restart_and_sighup_keep_control() {
    let upstream = TestUpstream::start().await;
    let folder = policy_dir(&[("gentle.rego", GENTLE)]);
    let approval = "policy_approval = { approvers = 2, required_roles = [\"ai_officer\"] }";
    let mut gateway = Gateway::start(&config(&upstream.url(), folder.path(), approval)).await;

    // Nothing approved yet: the built-in set denies every request.
    let configured = kinds(&gateway.entries().await, "policy_approval_configured");
    assert_eq!(configured.len(), 1);
    assert_eq!(configured[0]["active_seq"], Value::Null);
    let (status, cited) = verdict(&gateway, "ann").await;
    assert_eq!(status, 403);
    assert_eq!(cited, configured[0]["seq"].as_u64().unwrap());

    // The folder was proposed at start; two officers approve it.
    let gentle = set_of(&sets(&gateway).await, "gentle.rego");
    let first = approve_and_activate(&gateway, gentle).await;
    assert_eq!(verdict(&gateway, "ann").await, (200, first));
    assert_eq!(verdict(&gateway, "mallory").await.0, 403);

    // A deny-everything set, uploaded with the CLI, changes no verdict
    // until approved by two distinct approvers and activated.
    let freeze = policy_dir(&[("freeze.rego", DENY_ALL)]);
    let (ok, said) = policies(
        &gateway,
        "ops",
        &[
            "propose",
            freeze.path().to_str().unwrap(),
            "--reason",
            "CHG-1",
        ],
    )
    .await;
    assert!(ok, "{said}");
    assert!(said.contains("recorded policy_set_proposed"), "{said}");
    let deny_all = set_of(&sets(&gateway).await, "freeze.rego");
    assert_eq!(verdict(&gateway, "ann").await, (200, first));
    let path = format!("/admin/policies/sets/{deny_all}/approve");
    let own = act(&gateway, "ops", &path).await;
    assert_eq!(own.status, 403, "{}", own.text());
    let (ok, said) = policies(
        &gateway,
        "plain-approver",
        &["approve", &deny_all.to_string()],
    )
    .await;
    assert!(ok, "{said}");
    assert_eq!(verdict(&gateway, "ann").await, (200, first));
    // The same approver again is no second approval.
    let (ok, said) = policies(
        &gateway,
        "plain-approver",
        &["approve", &deny_all.to_string()],
    )
    .await;
    assert!(ok && said.contains("nothing changed"), "{said}");
    let early = act(
        &gateway,
        "ops",
        &format!("/admin/policies/sets/{deny_all}/activate"),
    )
    .await;
    assert_eq!(early.status, 409, "{}", early.text());
    assert_eq!(early.error_code(), "invalid_transition");
    let (ok, said) = policies(&gateway, "ai-officer", &["approve", &deny_all.to_string()]).await;
    assert!(ok, "{said}");
    assert_eq!(
        verdict(&gateway, "ann").await,
        (200, first),
        "approved is not active"
    );
    let (ok, said) = policies(&gateway, "ops", &["activate", &deny_all.to_string()]).await;
    assert!(ok, "{said}");
    let (status, frozen) = verdict(&gateway, "ann").await;
    assert_eq!(status, 403);
    assert!(frozen > first);

    // A restart keeps the active set, and the folder (unchanged) is not
    // proposed again.
    let proposals_before = kinds(&gateway.entries().await, "policy_set_proposed").len();
    gateway.stop().await;
    gateway.restart().await;
    assert_eq!(verdict(&gateway, "ann").await, (403, frozen));
    let entries = gateway.entries().await;
    let configured = kinds(&entries, "policy_approval_configured");
    assert_eq!(configured[1]["active_seq"], frozen);
    assert_eq!(
        kinds(&entries, "policy_set_proposed").len(),
        proposals_before
    );

    // Rollback in one call restores the previous set's verdicts.
    let (ok, said) = policies(&gateway, "ops", &["rollback", "--reason", "freeze lifted"]).await;
    assert!(ok, "{said}");
    let (status, rolled) = verdict(&gateway, "ann").await;
    assert_eq!(status, 200);
    assert!(rolled > frozen);
    assert_eq!(verdict(&gateway, "mallory").await, (403, rolled));

    // SIGHUP after an edit of the folder only proposes.
    std::fs::write(folder.path().join("gentle.rego"), DENY_ALL).unwrap();
    gateway.signal("HUP");
    let mut proposed = Vec::new();
    for _ in 0..100 {
        proposed = kinds(&gateway.entries().await, "policy_set_proposed");
        if proposed.len() > proposals_before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let last = proposed.last().unwrap();
    assert_eq!(last["source"], "folder");
    assert_eq!(last["files"][0]["text"], DENY_ALL);
    assert_eq!(verdict(&gateway, "ann").await, (200, rolled));

    // Every step is in the ledger, and the independent verifier checks them.
    let entries = gateway.entries().await;
    let activated = kinds(&entries, "policy_set_activated");
    assert_eq!(activated.len(), 2);
    assert_eq!(activated[1]["proposal_seq"], deny_all);
    assert_eq!(activated[1]["deactivated"], gentle);
    let approvals = kinds(&entries, "policy_set_approved");
    assert_eq!(approvals.len(), 4);
    let rolled_back = kinds(&entries, "policy_set_rolled_back");
    assert_eq!(rolled_back[0]["proposal_seq"], gentle);
    assert_eq!(rolled_back[0]["seq"], rolled);
    gateway.stop().await;
    let out = gateway.dir.path().join("bundle");
    let export = gateway.cli(&["export", "--out", out.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        crate::support::audit::said(&export)
    );
    let (_, python) = crate::support::audit::both_accept_bundle(&gateway.vkey, &out);
    assert!(python.starts_with("OK bundle"), "{python}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_change_control_sets_load_at_once_and_the_opt_out_is_recorded() {
    let upstream = TestUpstream::start().await;
    let folder = policy_dir(&[("gentle.rego", GENTLE)]);
    for approval in ["", "policy_approval = \"none\""] {
        let gateway = Gateway::start(&config(&upstream.url(), folder.path(), approval)).await;
        let loaded = kinds(&gateway.entries().await, "policy_set_loaded");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0]["approval"], "none", "{approval:?}");
        assert_eq!(verdict(&gateway, "mallory").await.0, 403);
        let refused = admin_call(
            &gateway.admin,
            Some("ops"),
            Method::POST,
            "/admin/policies/sets",
            "",
        )
        .await;
        assert_eq!(refused.status, 409, "{}", refused.text());
        assert_eq!(refused.error_code(), "policy_approval_off");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(item.file_name());
        if item.path().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_from_before_change_control_opens_under_it_and_verifies() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upgrade/policies-7e1b56f");
    let folder = tempfile::tempdir().unwrap();
    copy_dir(&fixture.join("policies"), folder.path());
    let rest = format!(
        "[[models]]\nname = \"scorer\"\nprotocol = \"kserve_v2\"\n[[models.versions]]\nversion = \"1\"\nupstream = \"http://127.0.0.1:9\"\n\
         [review]\npolicies_dir = \"{}\"\npolicy_approval = {{ approvers = 2 }}\n",
        folder.path().display()
    );
    let mut gateway = Gateway::start_pending("", &rest).await;
    gateway.stop().await;
    // The old gateway's data directory and key in place of the new one's.
    let dir = gateway.dir.path().to_path_buf();
    std::fs::remove_dir_all(dir.join("data")).unwrap();
    copy_dir(&fixture.join("data"), &dir.join("data"));
    std::fs::copy(fixture.join("test.key"), dir.join("test.key")).unwrap();
    std::fs::remove_file(dir.join("test.key.state")).ok();
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(dir.join("test.key"), private).unwrap();
    }
    let vkey = std::fs::read_to_string(fixture.join("log.vkey")).unwrap();
    let vkey = vkey.trim().to_owned();
    gateway.restart().await;

    let entries = gateway.entries().await;
    let old_set = kinds(&entries, "policy_set_loaded");
    assert_eq!(old_set.len(), 1, "the old set's entry is read");
    assert!(old_set[0].get("approval").is_none());
    // The old loaded set was never approved: nothing is in force.
    assert_eq!(
        kinds(&entries, "policy_approval_configured")[0]["active_seq"],
        Value::Null
    );
    assert_eq!(verdict(&gateway, "ann").await.0, 403);
    let set = set_of(&sets(&gateway).await, "gentle.rego");
    let activation = approve_and_activate(&gateway, set).await;
    assert_eq!(verdict(&gateway, "mallory").await, (403, activation));
    assert_eq!(verdict(&gateway, "ann").await, (502, activation));
    gateway.stop().await;

    let verified = gateway.cli(&["verify"]);
    assert!(
        verified.status.success(),
        "{}",
        crate::support::audit::said(&verified)
    );
    let out = dir.join("bundle");
    let export = gateway.cli(&["export", "--out", out.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        crate::support::audit::said(&export)
    );
    let (_, python) = crate::support::audit::both_accept_bundle(&vkey, &out);
    assert!(python.starts_with("OK bundle"), "{python}");
}

/// A request takes the set in force when it begins and is recorded when it
/// ends: one held at a slow upstream while a new set is activated cites the
/// set it was judged by, after the activation's entry, and both verifiers
/// accept the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_across_an_activation_cites_its_set_and_verifies() {
    let upstream = TestUpstream::start().await;
    let folder = policy_dir(&[("gentle.rego", GENTLE)]);
    let approval = "policy_approval = { approvers = 2, required_roles = [\"ai_officer\"] }";
    let mut gateway = Gateway::start(&config(&upstream.url(), folder.path(), approval)).await;
    let gentle = set_of(&sets(&gateway).await, "gentle.rego");
    let first = approve_and_activate(&gateway, gentle).await;
    let freeze = policy_dir(&[("freeze.rego", DENY_ALL)]);
    let (ok, said) = policies(
        &gateway,
        "ops",
        &["propose", freeze.path().to_str().unwrap()],
    )
    .await;
    assert!(ok, "{said}");
    let deny_all = set_of(&sets(&gateway).await, "freeze.rego");

    // The upstream answers /slow after 3 s: activate while it holds the request.
    let url = gateway.url("/m/slow");
    let slow = tokio::spawn(async move {
        crate::support::send(Method::GET, &url, &[("x-govgate-caller", "ann")], "").await
    });
    while !upstream
        .seen()
        .iter()
        .any(|s| s.path_and_query.ends_with("/slow"))
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let second = approve_and_activate(&gateway, deny_all).await;
    let reply = slow.await.unwrap();
    assert_eq!(
        reply.status, 200,
        "judged by the set in force when it began"
    );
    let decision = gateway.wait_for_decision(&reply.decision_id()).await;
    assert_eq!(decision["policy"]["set_seq"], first);
    assert!(
        decision["seq"].as_u64().unwrap() > second,
        "the upstream answered before the activation: {decision}"
    );
    assert_eq!(verdict(&gateway, "ann").await, (403, second));

    gateway.stop().await;
    let out = gateway.dir.path().join("bundle");
    let export = gateway.cli(&["export", "--out", out.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        crate::support::audit::said(&export)
    );
    let (_, python) = crate::support::audit::both_accept_bundle(&gateway.vkey, &out);
    assert!(python.starts_with("OK bundle"), "{python}");
}
