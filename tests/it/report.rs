//! `govgate report` and `govgate verify --report` on a scripted period:
//! two versions approved by two officers, an activation, a rollback,
//! decisions of several outcomes and callers, holds decided by two
//! reviewers, a drift breach of the risk register, a ledger outage and an
//! erasure. The report's figures must be exactly what the test did, and
//! `verify --report` must recompute them from the bundle and refuse a
//! report with one number changed.

use crate::reviews::infer_as;
use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream};
use http::Method;
use serde_json::{Value, json};
use std::path::Path;

pub(crate) const POLICY: &str = r#"package govgate

deny contains "caller mallory is blocked" if {
	input.stage == "request"
	input.caller == "mallory"
}

hold contains "held for review" if {
	input.stage == "response"
	input.response.hold == true
}
"#;

/// Two approved versions of a model whose drift in `amount` is a risk:
/// a PSI above 1 over at least two rows of a version's window.
pub(crate) fn config(upstream: &str, policies: &Path) -> String {
    format!(
        r#"
[governance.approval]
approvers = 2
required_roles = ["ai_officer", "security_officer"]

[risk_register]
eval_every_secs = 1
window_secs = 2

[[risks]]
id = "amount-drift"
title = "Applications unlike those the model was validated on"
owner = "model-risk"
models = ["scorer"]
controls = ["revalidate the model on drift"]
[[risks.indicators]]
kpi = "psi"
feature = "amount"
threshold = 1.0
direction = "above"
min_count = 2

[[models]]
name = "scorer"
protocol = "kserve_v2"
default_version = "v1"
[models.kpi]
window = 4
min_group_size = 1
reference_rows = 2
[models.kpi.outcome]
pointer = "/scores/*"
threshold = 0.5
[[models.kpi.features]]
name = "amount"
kind = "numeric"
pointer = "/amount/*"
[[models.versions]]
version = "v1"
upstream = "{upstream}"
risk_class = "high"
[[models.versions]]
version = "v2"
upstream = "{upstream}"
risk_class = "high"

[review]
policies_dir = "{}"
"#,
        policies.display()
    )
}

/// A request body: one row of `amount` (the echoing upstream answers
/// it, so the answer holds the score and the feature).
fn row(n: u32, amount: u32) -> String {
    format!(r#"{{"n":{n},"amount":[{amount}],"scores":[0.9]}}"#)
}

pub(crate) async fn admin(gateway: &Gateway, who: &str, path: &str, body: &str) -> Value {
    let reply = admin_call(&gateway.admin, Some(who), Method::POST, path, body).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()
}

pub(crate) async fn served(gateway: &Gateway, caller: &str, body: &str, status: u16) -> String {
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

    // Three decisions on v1, by two callers; the first two are v1's
    // drift reference.
    let mut ids = Vec::new();
    ids.push(served(&gateway, "svc-a", &row(1, 10), 200).await);
    ids.push(served(&gateway, "svc-a", &row(2, 12), 200).await);
    ids.push(served(&gateway, "svc-b", &row(3, 11), 200).await);
    // v2 goes live, serves once, and is rolled back to v1.
    admin(
        &gateway,
        "ops",
        "/admin/models/scorer/versions/v2/activate",
        "",
    )
    .await;
    ids.push(served(&gateway, "svc-a", &row(4, 11), 200).await);
    admin(
        &gateway,
        "ops",
        "/admin/models/scorer/rollback",
        r#"{"reason":"v2 scores drift"}"#,
    )
    .await;
    let restored = served(&gateway, "svc-b", &row(5, 11), 200).await;
    // Two holds: rita approves one, rob rejects the other.
    for (caller, reviewer, verdict) in [("svc-a", "rita", "approve"), ("svc-b", "rob", "reject")] {
        let held = infer_as(
            &gateway,
            caller,
            r#"{"hold":true,"amount":[11],"scores":[0.9]}"#,
        )
        .await;
        assert_eq!(held.status, 202, "{}", held.text());
        let review_id = held.json()["review_id"].as_str().unwrap().to_owned();
        admin(
            &gateway,
            reviewer,
            &format!("/admin/reviews/{review_id}/decide"),
            &json!({"verdict": verdict, "reason": "checked"}).to_string(),
        )
        .await;
    }
    // A denied caller; an unknown model.
    served(&gateway, "mallory", &row(6, 11), 403).await;
    let unknown = crate::support::send(
        Method::POST,
        &gateway.url("/v2/models/nope/infer"),
        &[("x-govgate-caller", "svc-b")],
        "{}",
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    // v1 drifts: four applications a hundred times larger than its
    // reference fill its window, and the register records the breach.
    for n in 7..11 {
        served(&gateway, "svc-b", &row(n, 1500), 200).await;
    }
    let breach = crate::report_risks::one_of(&gateway, "risk_indicator_breached").await;
    assert_eq!(breach["risk"], "amount-drift");
    assert_eq!(breach["version"], "v1");

    // The ledger stops committing: the request in flight reaches the
    // model, is refused, and is recorded once the ledger is back.
    gateway.fill_disk();
    let refused = infer_as(&gateway, "svc-a", &row(11, 11)).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.error_code(), "ledger_unavailable");
    gateway.free_disk();
    let freed = std::time::Instant::now();
    while gateway.get("/v2/health/ready").await.status != 200 {
        assert!(freed.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let refused_seq = gateway.wait_for_decision(&refused.decision_id()).await["seq"]
        .as_u64()
        .unwrap();
    let outage = crate::report_risks::one_of(&gateway, "ledger_outage").await;
    assert!(
        outage["reason"].as_str().unwrap().contains("too large"),
        "{outage}"
    );
    assert!(outage["duration_ms"].as_u64().unwrap() > 0, "{outage}");

    // The first decision's payload is erased on its subject's request.
    let erased = admin(
        &gateway,
        "ops",
        "/admin/payloads/erase",
        &json!({"decision_ids": [ids[0]], "reason": "DSR-7"}).to_string(),
    )
    .await;
    assert_eq!(
        erased["decisions"].as_array().map(Vec::len),
        Some(1),
        "{erased}"
    );

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
    assert_eq!(decisions, 14, "the test made fourteen decisions");
    let erasure_seqs = seq_of("payload_erased");
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
    assert_eq!(traffic["decisions"], 14);
    assert_eq!(
        traffic["by_outcome"]["counts"],
        json!({"served": 9, "held": 2, "denied": 1, "blocked": 1, "error": 1})
    );
    assert_eq!(
        traffic["by_caller"]["counts"],
        json!({"svc-a": 5, "svc-b": 8, "mallory": 1})
    );
    assert_eq!(traffic["by_model_version"]["counts"]["scorer v2"], 1);
    assert_eq!(traffic["by_error_code"]["counts"]["policy_denied"], 1);
    assert_eq!(traffic["by_error_code"]["counts"]["unknown_model"], 1);
    assert_eq!(traffic["by_error_code"]["counts"]["ledger_unavailable"], 1);

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
    assert_eq!(
        incidents["by_kind"],
        json!({"rollback": 1, "risk_indicator_breach": 1, "ledger_outage": 1})
    );
    assert_eq!(incidents["listed"][0]["reason"], "v2 scores drift");
    let listed_breach = &incidents["listed"][1];
    assert_eq!(listed_breach["seq"], breach["seq"]);
    assert_eq!(listed_breach["risk"], "amount-drift");
    assert_eq!(listed_breach["kpi"], "psi");
    assert_eq!(listed_breach["value"], breach["value"]);
    // The outage, as its entry says, and the answer refused meanwhile.
    let listed_outage = &incidents["listed"][2];
    assert_eq!(listed_outage["seq"], outage["seq"]);
    for member in ["since", "until", "duration_ms", "reason"] {
        assert_eq!(listed_outage[member], outage[member], "{member}");
    }
    assert_eq!(
        incidents["refused_answers"]["by_error_code"],
        json!({"ledger_unavailable": {"decisions": 1, "first_seq": refused_seq, "last_seq": refused_seq}})
    );
    assert_eq!(incidents["refused_answers"]["total"], 1);
    // The drift breach, open at the period's end.
    let risks = &report["risks"];
    assert_eq!(
        (risks["breaches"].clone(), risks["open_at_end"].clone()),
        (json!(1), json!(1)),
        "{risks:#}"
    );
    // The erasure: one payload, on request, through the admin API.
    let retention = &report["retention"];
    assert_eq!(
        retention["payloads_erased"]["on_request"], 1,
        "{retention:#}"
    );
    assert_eq!(
        retention["payloads_erased"]["on_request_by_admin_api"], 1,
        "{retention:#}"
    );
    assert_eq!(retention["seqs"], json!(erasure_seqs));

    // Oversight: two holds, one approved by rita, one rejected by rob.
    let oversight = &report["human_oversight"];
    assert_eq!(oversight["holds"], 2);
    assert_eq!(
        oversight["holds_by_model_and_reason"],
        json!([{"model": "scorer", "reason": "held for review", "holds": 2}])
    );
    assert_eq!(
        oversight["verdicts_by_reviewer"],
        json!({
            "rita": {"approve": 1, "reject": 0, "override": 0},
            "rob": {"approve": 0, "reject": 1, "override": 0},
        })
    );
    assert_eq!(oversight["time_to_decision_ms"]["reviews"], 2);

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
    let changed = text.replacen("\"svc-a\": 5", "\"svc-a\": 6", 1);
    assert_ne!(text, changed);
    std::fs::write(edited_json.join("report.json"), changed).unwrap();
    let refused = verify(&edited_json);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused).contains("traffic.by_caller.counts.svc-a: the report says 6"),
        "{}",
        said(&refused)
    );

    let edited_html = copy("edited-html");
    let changed = html.replacen(
        ">svc-a</th><td class=\"n\">5<",
        ">svc-a</th><td class=\"n\">6<",
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
