//! Three replicas sharing their registry through a real PostgreSQL (a
//! throwaway cluster per test): a change made through any replica serves
//! on every replica within a second, each replica's ledger records it
//! citing the control seq, a late joiner catches up before it serves, and
//! a replica cut off from the database serves its approvals for the
//! bounded staleness, then refuses (fail closed), and recovers by itself.

use crate::support::client::Reply;
use crate::support::governance::admin_call;
use crate::support::load::Load;
use crate::support::postgres::Postgres;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Two officers must approve, one of each kind.
const OFFICERS_POLICY: &str = "[governance.approval]\napprovers = 2\nrequired_roles = [\"ai_officer\", \"security_officer\"]\n";

/// The config of replica `replica_id`: model `chat` with v1 declared on
/// `upstream`, `[cluster]` on the database in `url_file`.
fn replica_config(upstream: &str, url_file: &Path, replica_id: &str, staleness: u64) -> String {
    format!(
        "{OFFICERS_POLICY}[[models]]\nname = \"chat\"\nprotocol = \"openai\"\n\
         [[models.versions]]\nversion = \"v1\"\nupstream = \"{upstream}\"\nupstream_model = \"chat-v1\"\n\
         [cluster]\nurl = {{ file = \"{}\" }}\nreplica_id = \"{replica_id}\"\nlease_secs = 3\n\
         max_staleness_secs = {staleness}\n",
        url_file.display()
    )
}

/// `POST /admin/models/chat/versions/{version}/{action}` as `who`.
async fn act(replica: &Gateway, who: &str, version: &str, action: &str, body: &str) -> Reply {
    let path = format!("/admin/models/chat/versions/{version}/{action}");
    admin_call(&replica.admin, Some(who), Method::POST, &path, body).await
}

async fn propose(replica: &Gateway, version: &str, upstream: &str) -> Reply {
    let body = json!({
        "version": version,
        "upstream": upstream,
        "upstream_model": format!("chat-{version}"),
        "risk_class": "limited",
        "change_ref": "CHG-fleet",
        "description": "proposed on one replica",
    });
    admin_call(
        &replica.admin,
        Some("ops"),
        Method::POST,
        "/admin/models/chat/versions",
        &body.to_string(),
    )
    .await
}

/// A chat completion naming `version`.
async fn chat(replica: &Gateway, version: &str) -> Reply {
    send(
        Method::POST,
        &replica.url("/v1/chat/completions"),
        &[("govgate-model-version", version)],
        r#"{"model":"chat","messages":[]}"#,
    )
    .await
}

/// Calls `replica` until its answer has `status`; how long that took
/// (`None` after `limit`).
async fn until_status(
    replica: &Gateway,
    version: &str,
    status: u16,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if chat(replica, version).await.status == status {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// `replica`'s registry entries of `kind` for chat/`version`.
async fn registry_entries(replica: &Gateway, kind: &str, version: &str) -> Vec<Value> {
    replica
        .entries()
        .await
        .into_iter()
        .filter(|e| e["kind"] == kind && e["model"] == "chat" && e["version"] == version)
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_version_approved_across_the_fleet_serves_on_every_replica_within_a_second() {
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    let (one, two) = (TestUpstream::start().await, TestUpstream::start().await);
    let config = |id: &str| replica_config(&one.url(), &url, id, 300);
    let (r1, r2, r3) = (config("r1"), config("r2"), config("r3"));
    // Started together, each proposes the declared v1 unless another did.
    let (g1, g2, g3) = tokio::join!(
        Gateway::start_pending("", &r1),
        Gateway::start_pending("", &r2),
        Gateway::start_pending("", &r3)
    );
    let replicas = [&g1, &g2, &g3];
    let db = postgres.client().await;
    let proposals: i64 = db
        .query_one(
            "SELECT count(*) FROM govgate_control_events WHERE kind = 'version_proposed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(proposals, 1, "v1 proposed once for the fleet");

    // v2 proposed on replica 1, approved by one officer on replica 2 and
    // by the other on replica 3.
    let proposed = propose(&g1, "v2", &two.url()).await;
    assert_eq!(proposed.status, 201, "{}", proposed.text());
    let approved = act(&g2, "ai-officer", "v2", "approve", "{}").await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(
        approved.json()["version"]["state"],
        "proposed",
        "{}",
        approved.text()
    );
    let approved = act(&g3, "security-officer", "v2", "approve", "{}").await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(
        approved.json()["version"]["state"],
        "approved",
        "{}",
        approved.text()
    );
    for (at, replica) in replicas.iter().enumerate() {
        let took = until_status(replica, "v2", 200, Duration::from_secs(5)).await;
        assert!(
            took.is_some_and(|took| took < Duration::from_secs(1)),
            "replica {} served v2 after {took:?}",
            at + 1
        );
    }
    assert_eq!(two.seen().len(), 3, "each replica forwarded its call to v2");

    // Every replica recorded the four events in its own ledger, citing the
    // same control seqs, and its decision cites its own approval entry.
    let mut cited = Vec::new();
    for replica in replicas {
        let mut seqs = Vec::new();
        for kind in ["version_proposed", "version_approved"] {
            for entry in registry_entries(replica, kind, "v2").await {
                seqs.push(entry["control_seq"].as_u64().expect("control_seq"));
            }
        }
        cited.push(seqs);
        let met = registry_entries(replica, "version_approved", "v2")
            .await
            .into_iter()
            .find(|e| e["state"] == "approved")
            .expect("the approval that met the policy");
        let decision = replica
            .decisions()
            .await
            .into_iter()
            .find(|d| d["version"] == "v2" && d["status"] == 200)
            .expect("the decision serving v2");
        assert_eq!(decision["approval_seq"], met["seq"]);
    }
    assert_eq!(cited[0].len(), 3, "{cited:?}");
    assert!(cited.iter().all(|seqs| *seqs == cited[0]), "{cited:?}");

    // A revocation on replica 1 stops all three within a second.
    let revoked = act(&g1, "ops", "v2", "revoke", r#"{"reason":"withdrawn"}"#).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    for (at, replica) in replicas.iter().enumerate() {
        let took = until_status(replica, "v2", 403, Duration::from_secs(5)).await;
        assert!(
            took.is_some_and(|took| took < Duration::from_secs(1)),
            "replica {} still served v2 after {took:?}",
            at + 1
        );
        assert_eq!(
            chat(replica, "v2").await.error_code(),
            "model_version_revoked"
        );
    }

    // Each replica shows the last control event it applied.
    for replica in replicas {
        let metrics = replica.metrics_when("govgate_fleet_control_seq 5\n").await;
        assert!(metrics.contains("govgate_fleet_control_synced_timestamp_seconds "));
    }

    // A replica joining now has every event before it answers.
    let late = Gateway::start_pending("", &config("r4")).await;
    let answer = chat(&late, "v2").await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(answer.error_code(), "model_version_revoked");
    assert_eq!(
        registry_entries(&late, "version_revoked", "v2").await.len(),
        1
    );
    // Nothing proposed twice: one event per change in the control log.
    let events: i64 = db
        .query_one("SELECT count(*) FROM govgate_control_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        events, 5,
        "v1 proposed; v2 proposed, approved twice, revoked"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn an_append_rolled_back_after_its_insert_leaves_no_gap_in_the_fleets_order() {
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    let upstream = TestUpstream::start().await;
    let replica =
        Gateway::start_pending("", &replica_config(&upstream.url(), &url, "r1", 300)).await;
    // An insert that rolled back (a statement timeout, a lost connection)
    // used up the next value of the table's sequence.
    let db = postgres.client().await;
    db.query_one(
        "SELECT nextval(pg_get_serial_sequence('govgate_control_events', 'seq'))",
        &[],
    )
    .await
    .unwrap();
    let proposed = propose(&replica, "v2", &upstream.url()).await;
    assert_eq!(proposed.status, 201, "{}", proposed.text());
    let seqs: Vec<i64> = db
        .query("SELECT seq FROM govgate_control_events ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(seqs, [1, 2], "the fleet's order has no gap");
    let recorded = registry_entries(&replica, "version_proposed", "v2").await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["control_seq"], 2);
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_replica_without_its_database_serves_until_the_bound_then_fails_closed_and_recovers() {
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    let upstream = TestUpstream::start().await;
    let replica = Gateway::start_with("", &replica_config(&upstream.url(), &url, "r1", 3)).await;
    assert_eq!(chat(&replica, "v1").await.status, 200);

    postgres.stop();
    let stopped = Instant::now();
    // An admin change fails at once with the reason.
    let refused = act(&replica, "ops", "v1", "revoke", r#"{"reason":"x"}"#).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.error_code(), "control_plane_unavailable");
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "{:?}",
        stopped.elapsed()
    );
    // Served within the bound (3 s) ...
    assert_eq!(chat(&replica, "v1").await.status, 200);
    // ... refused after it, and not ready.
    let took = until_status(&replica, "v1", 503, Duration::from_secs(10))
        .await
        .expect("fails closed");
    // The bound runs from the last read, at most a poll (1 s) before the stop.
    assert!(stopped.elapsed() >= Duration::from_secs(2), "{took:?}");
    let refusal = chat(&replica, "v1").await;
    assert_eq!(
        refusal.error_code(),
        "control_plane_unavailable",
        "{}",
        refusal.text()
    );
    let ready = send(Method::GET, &format!("{}/readyz", replica.admin), &[], "").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    // The refusal is recorded like every decision.
    let decision = replica.wait_for_decision(&refusal.decision_id()).await;
    assert_eq!(decision["error_code"], "control_plane_unavailable");
    assert_eq!(decision["status"], 503);

    // The database back: serving again without a restart.
    postgres.restart();
    until_status(&replica, "v1", 200, Duration::from_secs(15))
        .await
        .expect("serves again once the control plane is read");
    let ready = send(Method::GET, &format!("{}/readyz", replica.admin), &[], "").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_replica_killed_under_load_loses_no_acknowledged_decision_while_the_others_serve() {
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    let upstream = TestUpstream::start().await;
    let config = |id: &str| {
        format!(
            "{}[cluster]\nurl = {{ file = \"{}\" }}\nreplica_id = \"{id}\"\nlease_secs = 3\n",
            crate::models(&upstream.url()),
            url.display()
        )
    };
    let mut replicas = Vec::new();
    for id in ["r1", "r2", "r3"] {
        replicas.push(Gateway::start_with("", &config(id)).await);
    }
    let targets: Vec<String> = replicas
        .iter()
        .map(|replica| replica.url("/v2/models/scorer/infer"))
        .collect();
    let load = Load::start(&targets, 6, 400);
    load.until(150).await;
    replicas[1].kill().await;
    // The others go on serving.
    load.until(450).await;
    let acknowledged = load.finish().await;
    let answered_by = |at: usize| acknowledged.iter().filter(|(to, _)| *to == at).count();
    assert!(answered_by(1) >= 20, "r2 served before it was killed");
    assert!(
        answered_by(0) >= 200 && answered_by(2) >= 200,
        "r1 and r3 kept serving"
    );

    // Back after its lease, r2's ledger has every decision it acknowledged.
    tokio::time::sleep(Duration::from_secs(4)).await;
    replicas[1].restart().await;
    for (at, replica) in replicas.iter().enumerate() {
        let logged: std::collections::HashSet<String> = replica
            .decisions()
            .await
            .into_iter()
            .filter_map(|d| d["decision_id"].as_str().map(str::to_owned))
            .collect();
        let lost = acknowledged
            .iter()
            .filter(|(to, id)| *to == at && !logged.contains(id))
            .count();
        assert_eq!(lost, 0, "replica {} lost acknowledged decisions", at + 1);
    }
    assert_eq!(
        replicas[1].infer("{}").await.status,
        200,
        "r2 serves again on the fleet's approvals"
    );
}
