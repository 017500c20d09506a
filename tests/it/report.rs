//! `govgate report` and `govgate verify --report` on a scripted period:
//! two versions approved by two officers, an activation, a rollback,
//! decisions of several outcomes and callers, a hold decided by a
//! reviewer. The report's figures must be exactly what the test did, and
//! `verify --report` must recompute them from the bundle and refuse a
//! report with one number changed.

use crate::reviews::infer_as;
use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream};
use http::Method;
use serde_json::{Value, json};
use std::path::Path;

const POLICY: &str = r#"package govgate

deny contains "caller mallory is blocked" if {
	input.stage == "request"
	input.caller == "mallory"
}

hold contains "held for review" if {
	input.stage == "response"
	input.response.hold == true
}
"#;

fn config(upstream: &str, policies: &Path) -> String {
    format!(
        "[governance.approval]\napprovers = 2\nrequired_roles = [\"ai_officer\", \"security_officer\"]\n\
         [[models]]\nname = \"scorer\"\nprotocol = \"kserve_v2\"\ndefault_version = \"v1\"\n\
         [[models.versions]]\nversion = \"v1\"\nupstream = \"{upstream}\"\nrisk_class = \"high\"\n\
         [[models.versions]]\nversion = \"v2\"\nupstream = \"{upstream}\"\nrisk_class = \"high\"\n\
         [review]\npolicies_dir = \"{}\"\n",
        policies.display()
    )
}

async fn admin(gateway: &Gateway, who: &str, path: &str, body: &str) -> Value {
    let reply = admin_call(&gateway.admin, Some(who), Method::POST, path, body).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()
}

async fn served(gateway: &Gateway, caller: &str, body: &str, status: u16) -> String {
    let reply = infer_as(gateway, caller, body).await;
    assert_eq!(reply.status, status, "{}", reply.text());
    reply.decision_id()
}

/// Runs `govgate ARGS`.
pub(crate) fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .args(args)
        .output()
        .unwrap()
}

pub(crate) use crate::support::audit::said;

/// Runs `govgate report` over the whole log of the stopped `gateway` into
/// its directory's `name`; that directory.
pub(crate) fn report_everything(gateway: &Gateway, name: &str) -> std::path::PathBuf {
    let out = gateway.dir.path().join(name);
    let config = gateway.dir.path().join("govgate.toml");
    let made = run(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(made.status.success(), "{}", said(&made));
    out
}

#[tokio::test]
async fn a_period_report_states_what_happened_and_verify_report_recomputes_it() {
    let upstream = TestUpstream::start().await;
    let policies = crate::reviews::policy_dir(&[("test.rego", POLICY)]);
    let mut gateway = Gateway::start(&config(&upstream.url(), policies.path())).await;

    // Three decisions on v1, by two callers.
    let mut ids = Vec::new();
    ids.push(served(&gateway, "svc-a", r#"{"n":1}"#, 200).await);
    ids.push(served(&gateway, "svc-a", r#"{"n":2}"#, 200).await);
    ids.push(served(&gateway, "svc-b", r#"{"n":3}"#, 200).await);
    // v2 goes live, serves once, and is rolled back to v1.
    admin(
        &gateway,
        "ops",
        "/admin/models/scorer/versions/v2/activate",
        "",
    )
    .await;
    ids.push(served(&gateway, "svc-a", r#"{"n":4}"#, 200).await);
    admin(
        &gateway,
        "ops",
        "/admin/models/scorer/rollback",
        r#"{"reason":"v2 scores drift"}"#,
    )
    .await;
    let restored = served(&gateway, "svc-b", r#"{"n":5}"#, 200).await;
    // A hold that rita approves; a denied caller; an unknown model.
    let held = infer_as(&gateway, "svc-a", r#"{"hold":true}"#).await;
    assert_eq!(held.status, 202, "{}", held.text());
    let review_id = held.json()["review_id"].as_str().unwrap().to_owned();
    admin(
        &gateway,
        "rita",
        &format!("/admin/reviews/{review_id}/decide"),
        r#"{"verdict":"approve"}"#,
    )
    .await;
    served(&gateway, "mallory", r#"{"n":6}"#, 403).await;
    let unknown = crate::support::send(
        Method::POST,
        &gateway.url("/v2/models/nope/infer"),
        &[("x-govgate-caller", "svc-b")],
        "{}",
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());

    let entries = gateway.entries().await;
    let seq_of = |kind: &str| -> Vec<u64> {
        entries
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    let rollback_seqs = seq_of("version_rolled_back");
    assert_eq!(rollback_seqs.len(), 1);
    let restored_seq = gateway.decision(&restored).await["seq"].as_u64().unwrap();
    let decisions = seq_of("decision").len();
    assert_eq!(decisions, 8, "the test made eight decisions");
    gateway.stop().await;

    let out = gateway.dir.path().join("report-2026");
    let config = gateway.dir.path().join("govgate.toml");
    let own_map = gateway.dir.path().join("controls.toml");
    std::fs::write(
        &own_map,
        "[[controls]]\nframework = \"Internal AI policy\"\nid = \"AIP-4\"\n\
         title = \"Two officers approve every model change\"\nsections = [\"changes\"]\n",
    )
    .unwrap();
    let made = run(&[
        "report",
        "--control-map",
        own_map.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(made.status.success(), "{}", said(&made));
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    // A period without entries, or not a time: usage errors, nothing written.
    let config_path = config.to_str().unwrap();
    for (from, to, said_) in [
        (
            "2001-01-01T00:00:00Z",
            "2001-02-01T00:00:00Z",
            "no entry of the ledger lies in the period",
        ),
        ("yesterday", "2001-02-01T00:00:00Z", "--from"),
    ] {
        let empty = gateway.dir.path().join("empty");
        let refused = run(&[
            "report",
            "--config",
            config_path,
            "--from",
            from,
            "--to",
            to,
            "--out",
            empty.to_str().unwrap(),
            "--quiet",
        ]);
        assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
        assert!(said(&refused).contains(said_), "{}", said(&refused));
        assert!(!empty.exists());
    }

    // Traffic: exactly the decisions made above.
    let traffic = &report["traffic"];
    assert_eq!(traffic["decisions"], 8);
    assert_eq!(
        traffic["by_outcome"]["counts"],
        json!({"served": 5, "held": 1, "denied": 1, "blocked": 1})
    );
    assert_eq!(
        traffic["by_caller"]["counts"],
        json!({"svc-a": 4, "svc-b": 3, "mallory": 1})
    );
    assert_eq!(traffic["by_model_version"]["counts"]["scorer v2"], 1);
    assert_eq!(traffic["by_error_code"]["counts"]["policy_denied"], 1);
    assert_eq!(traffic["by_error_code"]["counts"]["unknown_model"], 1);

    // Changes: both versions approved by the two officers, never by their proposer.
    let changes = &report["changes"];
    assert_eq!(changes["by_kind"]["version_proposed"], 2);
    assert_eq!(changes["by_kind"]["version_approved"], 4);
    assert_eq!(changes["by_kind"]["version_activated"], 2);
    assert_eq!(changes["by_kind"]["version_rolled_back"], 1);
    let four_eyes = &changes["four_eyes"];
    assert_eq!(four_eyes["approved_changes"], 2);
    assert_eq!(four_eyes["compliant"], 2);
    for change in four_eyes["changes"].as_array().unwrap() {
        assert_eq!(
            change["approvers"],
            json!(["ai-officer", "security-officer"])
        );
        assert_eq!(change["proposer"], "govgate-config");
        assert_eq!(change["required_roles_covered"], true);
    }
    let inventory = report["inventory"]["versions"].as_array().unwrap();
    let versions: Vec<(&str, u64, &str)> = inventory
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap(),
                v["decisions"].as_u64().unwrap(),
                v["risk_class"].as_str().unwrap(),
            )
        })
        .collect();
    // v1 served three, the restored one, the held one (the denied call never got an answer).
    assert_eq!(versions[1], ("v2", 1, "high"));
    assert_eq!(versions[0].0, "v1");

    // The rollback, and the first decision the restored version served.
    let rollback = &report["rollback_performance"]["rollbacks"][0];
    assert_eq!(rollback["seq"], rollback_seqs[0]);
    assert_eq!(rollback["restored_version"], "v1");
    assert_eq!(rollback["first_decision_seq"], restored_seq);
    assert!(rollback["restore_ms"].as_i64().unwrap() >= 0);
    let incidents = &report["incidents"];
    assert_eq!(incidents["by_kind"], json!({"rollback": 1}));
    assert_eq!(incidents["listed"][0]["reason"], "v2 scores drift");

    // Oversight: one hold, approved by rita.
    let oversight = &report["human_oversight"];
    assert_eq!(oversight["holds"], 1);
    assert_eq!(
        oversight["holds_by_model_and_reason"],
        json!([{"model": "scorer", "reason": "held for review", "holds": 1}])
    );
    assert_eq!(
        oversight["verdicts_by_reviewer"],
        json!({"rita": {"approve": 1, "reject": 0, "override": 0}})
    );
    assert_eq!(oversight["time_to_decision_ms"]["reviews"], 1);

    // Scope and control map.
    assert_eq!(report["scope"]["first_seq"], 0);
    assert_eq!(report["scope"]["verification"]["result"], "ok");
    let controls = report["control_map"]["controls"].as_array().unwrap();
    let own = controls.iter().find(|c| c["id"] == "AIP-4").unwrap();
    assert_eq!(own["sections"][0]["section"], "changes");
    assert_eq!(own["evidence_in_period"], true);
    let art14 = controls.iter().find(|c| c["id"] == "Art. 14").unwrap();
    assert_eq!(art14["sections"][0]["section"], "human_oversight");
    assert!(!art14["sections"][0]["seqs"].as_array().unwrap().is_empty());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("<script"));

    // The report verifies against the log's key; the bundle holds its entry.
    let vkey = gateway.vkey.clone();
    let verify = |dir: &Path| run(&["verify", "--report", dir.to_str().unwrap(), "--vkey", &vkey]);
    let checked = verify(&out);
    assert!(checked.status.success(), "{}", said(&checked));
    assert!(said(&checked).contains("report ok"), "{}", said(&checked));

    // One number changed in report.json, or in report.html: refused, named.
    let copy = |name: &str| {
        let dir = gateway.dir.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(out.join("report.json"), dir.join("report.json")).unwrap();
        std::fs::copy(out.join("report.html"), dir.join("report.html")).unwrap();
        std::os::unix::fs::symlink(out.join("bundle"), dir.join("bundle")).unwrap();
        dir
    };
    let edited_json = copy("edited-json");
    let text = std::fs::read_to_string(edited_json.join("report.json")).unwrap();
    let changed = text.replacen("\"svc-a\": 4", "\"svc-a\": 5", 1);
    assert_ne!(text, changed);
    std::fs::write(edited_json.join("report.json"), changed).unwrap();
    let refused = verify(&edited_json);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused).contains("traffic.by_caller.counts.svc-a: the report says 5"),
        "{}",
        said(&refused)
    );

    let edited_html = copy("edited-html");
    let changed = html.replacen(
        ">svc-a</th><td class=\"n\">4<",
        ">svc-a</th><td class=\"n\">5<",
        1,
    );
    assert_ne!(html, changed);
    std::fs::write(edited_html.join("report.html"), changed).unwrap();
    let refused = verify(&edited_html);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused).contains("report.html: line"),
        "{}",
        said(&refused)
    );

    // A report from the bundle alone (recorded nowhere): the same traffic.
    let again = gateway.dir.path().join("from-bundle");
    let bundle = out.join("bundle");
    let made = run(&[
        "report",
        "--bundle",
        bundle.to_str().unwrap(),
        "--vkey",
        &vkey,
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", said(&made));
    let from_bundle: Value =
        serde_json::from_slice(&std::fs::read(again.join("report.json")).unwrap()).unwrap();
    assert_eq!(from_bundle["scope"]["made_from"], "bundle");
    assert_eq!(report["scope"]["made_from"], "ledger");
    assert_eq!(from_bundle["traffic"], report["traffic"]);
    assert_eq!(
        from_bundle["changes"]["four_eyes"],
        report["changes"]["four_eyes"]
    );
    let checked = verify(&again);
    assert!(checked.status.success(), "{}", said(&checked));
    assert!(
        said(&checked).contains("made from a bundle, so no report_issued entry records it"),
        "{}",
        said(&checked)
    );
}
