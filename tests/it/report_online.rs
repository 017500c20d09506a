//! `govgate report --admin-url`: the period report made by a running
//! gateway (`POST /admin/reports`, a job followed to its end, then its
//! files and bundle downloaded). On the scripted period of report.rs it
//! verifies with `verify --report`, its `report_issued` entry names who
//! asked and their roles, a role that does not read reports is refused,
//! and it is byte for byte the report the offline command makes of the
//! same period once the gateway has stopped. One report is made at a time
//! (another is 409 `report_running`), and a period that runs into the
//! future ends where the job read the log, as its entry records.

use crate::report::{POLICY, admin, config, run, said, served};
use crate::reviews::infer_as;
use crate::support::governance::{admin_call, token};
use crate::support::{Gateway, TestUpstream};
use http::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// `govgate report --admin-url ADMIN --from FROM --to TO --out OUT --quiet`
/// as `principal`, off the async workers.
async fn report_online(
    gateway: &Gateway,
    principal: &'static str,
    from: &str,
    to: &str,
    out: &Path,
) -> std::process::Output {
    let args: Vec<String> = [
        "report",
        "--admin-url",
        &gateway.admin,
        "--from",
        from,
        "--to",
        to,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
            .args(&args)
            .env("GOVGATE_TOKEN", token(principal))
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The `report_issued` entry at `seq`.
async fn issued_entry(gateway: &Gateway, seq: u64) -> Value {
    let entries = gateway.entries().await;
    let entry = entries
        .iter()
        .find(|e| e["seq"] == seq)
        .unwrap_or_else(|| panic!("no entry {seq}"))
        .clone();
    assert_eq!(entry["kind"], "report_issued", "{entry}");
    entry
}

/// Reads `GET /admin/reports/{id}` until the job has ended.
async fn ended(gateway: &Gateway, who: &str, id: u64) -> Value {
    let path = format!("/admin/reports/{id}");
    for _ in 0..600 {
        let reply = admin_call(&gateway.admin, Some(who), Method::GET, &path, "").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let status = reply.json();
        if status["state"] != "running" {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("report {id} did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_the_running_gateway_verifies_names_who_asked_and_is_the_offline_one() {
    let upstream = TestUpstream::start().await;
    let policies = crate::reviews::policy_dir(&[("test.rego", POLICY)]);
    let mut gateway = Gateway::start(&config(&upstream.url(), policies.path())).await;

    // The scripted period: decisions, an activation and a rollback, a
    // hold that rita approves, a denied caller.
    served(&gateway, "svc-a", r#"{"n":1}"#, 200).await;
    served(&gateway, "svc-a", r#"{"n":2}"#, 200).await;
    served(&gateway, "svc-b", r#"{"n":3}"#, 200).await;
    let activate = "/admin/models/scorer/versions/v2/activate";
    admin(&gateway, "ops", activate, "").await;
    served(&gateway, "svc-a", r#"{"n":4}"#, 200).await;
    let rollback = r#"{"reason":"v2 scores drift"}"#;
    admin(&gateway, "ops", "/admin/models/scorer/rollback", rollback).await;
    served(&gateway, "svc-b", r#"{"n":5}"#, 200).await;
    let held = infer_as(&gateway, "svc-a", r#"{"hold":true}"#).await;
    assert_eq!(held.status, 202, "{}", held.text());
    let review_id = held.json()["review_id"].as_str().unwrap().to_owned();
    let decide = format!("/admin/reviews/{review_id}/decide");
    admin(&gateway, "rita", &decide, r#"{"verdict":"approve"}"#).await;
    served(&gateway, "mallory", r#"{"n":6}"#, 403).await;
    // The period ends now, in the past when the report is asked for: the
    // offline report of it made later reads the same entries.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let from = "2000-01-01T00:00:00Z";
    let to = govgate::ledger::entry::rfc3339_millis(std::time::SystemTime::now());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Roles that do not read reports are refused, before any work.
    let body = json!({"from": from, "to": to}).to_string();
    for who in ["rita", "plain-approver"] {
        let refused = admin_call(
            &gateway.admin,
            Some(who),
            Method::POST,
            "/admin/reports",
            &body,
        )
        .await;
        assert_eq!(refused.status, 403, "{who}: {}", refused.text());
        assert_eq!(refused.error_code(), "forbidden");
    }
    let anonymous = admin_call(&gateway.admin, None, Method::POST, "/admin/reports", &body).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let refused_dir = gateway.dir.path().join("refused");
    let refused = report_online(&gateway, "rita", from, &to, &refused_dir).await;
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(said(&refused).contains("forbidden"), "{}", said(&refused));
    assert!(!refused_dir.exists());
    assert!(!gateway.dir.path().join("refused.partial").exists());
    // A period in which nothing happened: a usage error, nothing written.
    let empty = gateway.dir.path().join("empty");
    let nothing = report_online(
        &gateway,
        "auditor",
        "2001-01-01T00:00:00Z",
        "2001-02-01T00:00:00Z",
        &empty,
    )
    .await;
    assert_eq!(nothing.status.code(), Some(2), "{}", said(&nothing));
    assert!(
        said(&nothing).contains("empty_period"),
        "{}",
        said(&nothing)
    );
    assert!(!empty.exists() && !gateway.dir.path().join("empty.partial").exists());

    // The auditor's report, downloaded.
    let online = gateway.dir.path().join("online");
    let made = report_online(&gateway, "auditor", from, &to, &online).await;
    assert!(made.status.success(), "{}", said(&made));
    assert!(
        said(&made).contains("report_issued at seq"),
        "{}",
        said(&made)
    );
    assert!(!gateway.dir.path().join("online.partial").exists());
    let report: Value =
        serde_json::from_slice(&std::fs::read(online.join("report.json")).unwrap()).unwrap();
    let traffic = &report["traffic"];
    assert_eq!(traffic["decisions"], 7);
    assert_eq!(
        traffic["by_outcome"]["counts"],
        json!({"served": 5, "held": 1, "denied": 1})
    );
    assert_eq!(
        traffic["by_caller"]["counts"],
        json!({"svc-a": 4, "svc-b": 2, "mallory": 1})
    );
    assert_eq!(report["incidents"]["by_kind"], json!({"rollback": 1}));
    assert_eq!(report["human_oversight"]["holds"], 1);
    assert_eq!(report["scope"]["made_from"], "ledger");
    assert_eq!(report["scope"]["verification"]["result"], "ok");

    // It verifies as an offline one does.
    let vkey = gateway.vkey.clone();
    let verify = |dir: &Path| run(&["verify", "--report", dir.to_str().unwrap(), "--vkey", &vkey]);
    let checked = verify(&online);
    assert!(checked.status.success(), "{}", said(&checked));
    assert!(
        said(&checked).contains("report ok") && said(&checked).contains("report.oscal.json is"),
        "{}",
        said(&checked)
    );

    // The job as the API shows it, and its entry, which names who asked.
    let listed = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/reports",
        "",
    )
    .await
    .json();
    let jobs = listed["reports"].as_array().unwrap();
    let job = jobs.iter().find(|j| j["state"] == "done").unwrap();
    assert_eq!(job["principal"], "auditor");
    assert_eq!(job["phase"], "ended");
    assert_eq!(job["period"], json!({"from": from, "to": to}));
    assert_eq!(job["last_seq"], report["scope"]["last_seq"]);
    let failed = jobs.iter().find(|j| j["state"] == "failed").unwrap();
    assert_eq!(failed["error"]["code"], "empty_period");
    let issued_seq = job["report_issued_seq"].as_u64().unwrap();
    let entry = issued_entry(&gateway, issued_seq).await;
    assert_eq!(entry["principal"], "auditor");
    assert_eq!(entry["principal_roles"], json!(["auditor"]));
    assert!(entry.get("principal_issuer").is_none());
    assert_eq!(entry["last_seq"], report["scope"]["last_seq"]);
    assert_eq!(entry["period_to"], to.as_str());

    // An AI officer may ask too, on the API itself; a file before the
    // report is made, or of a job that does not exist, is refused.
    let started = admin_call(
        &gateway.admin,
        Some("ai-officer"),
        Method::POST,
        "/admin/reports",
        &body,
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.text());
    let id = started.json()["id"].as_u64().unwrap();
    assert_eq!(started.headers["location"], format!("/admin/reports/{id}"));
    let status = ended(&gateway, "ai-officer", id).await;
    assert_eq!(status["state"], "done", "{status}");
    let officer = issued_entry(&gateway, status["report_issued_seq"].as_u64().unwrap()).await;
    assert_eq!(officer["principal"], "ai-officer");
    assert_eq!(officer["principal_roles"], json!(["approver:ai_officer"]));
    let path = format!("/admin/reports/{id}/files/report.json");
    let json_file = admin_call(&gateway.admin, Some("ops"), Method::GET, &path, "").await;
    assert_eq!(json_file.status, 200);
    assert_eq!(
        json_file.body.as_ref(),
        std::fs::read(online.join("report.json"))
            .unwrap()
            .as_slice(),
        "the same period, the same entries: the same report"
    );
    for (path, status, code) in [
        ("/admin/reports/99", 404, "report_not_found"),
        (
            &format!("/admin/reports/{id}/files/secrets.txt") as &str,
            404,
            "report_file_not_found",
        ),
    ] {
        let reply = admin_call(&gateway.admin, Some("auditor"), Method::GET, path, "").await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        assert_eq!(reply.error_code(), code);
    }
    gateway.stop().await;

    // The offline report of the same period on the stopped gateway: the
    // same bytes (the report_issued entries lie after the period).
    let offline = gateway.dir.path().join("offline");
    let config_file = gateway.dir.path().join("govgate.toml");
    let made = run(&[
        "report",
        "--config",
        config_file.to_str().unwrap(),
        "--from",
        from,
        "--to",
        &to,
        "--out",
        offline.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(made.status.success(), "{}", said(&made));
    for name in ["report.json", "report.html"] {
        assert!(
            std::fs::read(online.join(name)).unwrap() == std::fs::read(offline.join(name)).unwrap(),
            "{name} differs between the online and the offline report"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_report_is_made_at_a_time() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&format!(
        "verify_every_secs = 0\n{}",
        crate::models(&upstream.url())
    ))
    .await;
    // Enough entries that the job verifies and reads for a while.
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let url = gateway.url("/v2/models/scorer/infer");
        tasks.spawn(async move {
            for n in 0..250 {
                let body = format!(r#"{{"inputs":[{worker},{n}]}}"#);
                let reply = crate::support::send(Method::POST, &url, &[], body).await;
                assert_eq!(reply.status, 200, "{}", reply.text());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let body = json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}).to_string();
    let post = |who: &'static str| {
        let (admin, body) = (gateway.admin.clone(), body.clone());
        async move { admin_call(&admin, Some(who), Method::POST, "/admin/reports", &body).await }
    };
    let first = post("auditor").await;
    assert_eq!(first.status, 202, "{}", first.text());
    let id = first.json()["id"].as_u64().unwrap();
    let second = post("ops").await;
    assert_eq!(second.status, 409, "{}", second.text());
    assert_eq!(second.error_code(), "report_running");
    assert_eq!(second.json()["error"]["running"], id);
    let early = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        &format!("/admin/reports/{id}/bundle"),
        "",
    )
    .await;
    assert_eq!(early.status, 409, "{}", early.text());
    assert_eq!(early.error_code(), "report_not_ready");
    let status = ended(&gateway, "auditor", id).await;
    assert_eq!(status["state"], "done", "{status}");
    assert!(status["last_seq"].as_u64().unwrap() >= 2000, "{status}");
    assert_eq!(status["principal"], "auditor");
    // Once it has ended, the next one starts.
    let third = post("ops").await;
    assert_eq!(third.status, 202, "{}", third.text());
    assert_eq!(ended(&gateway, "ops", id + 1).await["state"], "done");

    // A period that runs into the future ends at the checkpoint the job
    // read up to: the entry says where, and verify --report follows it.
    let out = gateway.dir.path().join("to-the-future");
    let (from, to) = ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z");
    let made = report_online(&gateway, "ai-officer", from, to, &out).await;
    assert!(made.status.success(), "{}", said(&made));
    let checked = run(&[
        "verify",
        "--report",
        out.to_str().unwrap(),
        "--vkey",
        &gateway.vkey,
    ]);
    assert!(checked.status.success(), "{}", said(&checked));
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["traffic"]["decisions"], 2000);

    // A job running at shutdown is stopped, records nothing, and the
    // gateway stops cleanly with a log that verifies.
    let running = post("auditor").await;
    assert_eq!(running.status, 202, "{}", running.text());
    let stopping = std::time::Instant::now();
    assert!(gateway.stop().await.success());
    assert!(stopping.elapsed() < Duration::from_secs(20));
    let checked = gateway.cli(&["verify"]);
    assert!(checked.status.success(), "{}", said(&checked));
}
