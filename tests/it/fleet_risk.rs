//! The risk register of a fleet (replicas sharing a real PostgreSQL, a
//! throwaway cluster per test): the register of the replica started last
//! is the fleet's, recorded by every replica with the same control seq
//! and evaluated by each; a fairness indicator reads the fleet's windows,
//! so a breach on traffic spread across the replicas is recorded by every
//! replica with the same figure; `kpi_snapshot` entries carry the fleet's
//! figures beside the replica's own.

use crate::fleet_kpi::{replica_config, serving_fleet, until_active};
use crate::report_risks::config;
use crate::support::audit::{both_accept_bundle, said};
use crate::support::governance::{admin_call, approve_declared};
use crate::support::postgres::Postgres;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// The risk register and model of tests/it/report_risks.rs (`scorer`,
/// parity of `sex` above 0.3 over 8 rows, evaluated every second,
/// snapshots every second), as replica `id` of the fleet in `url_file`.
fn fleet_config(upstream: &str, url_file: &Path, id: &str) -> String {
    let single =
        config(upstream).replace("[models.kpi]\n", "[models.kpi]\nsnapshot_every_secs = 1\n");
    replica_config(&single, url_file, id)
}

/// Another register: the same indicator under another risk id.
fn register_b(config: &str) -> String {
    config.replace("id = \"credit-bias\"", "id = \"credit-parity\"")
}

fn of_kind(entries: &[Value], kind: &str) -> Vec<Value> {
    entries
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// The entries of `kind` once `done` holds for them (10 s at most).
async fn entries_until(
    replica: &Gateway,
    kind: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..100 {
        found = of_kind(&replica.entries().await, kind);
        if done(&found) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{kind} entries never as expected within 10 s: {found:?}");
}

/// Stops `replica`; its whole log, exported, is accepted by both
/// verifiers under the replica's key (named after its log).
async fn stop_and_verify(replica: &mut Gateway) {
    assert!(replica.stop().await.success());
    let vkey = replica.cli(&["vkey"]);
    assert!(vkey.status.success(), "{}", said(&vkey));
    let vkey = String::from_utf8(vkey.stdout).unwrap().trim().to_owned();
    let out = replica.dir.path().join("audit-whole");
    let exported = replica.cli(&["export", "--out", out.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", said(&exported));
    both_accept_bundle(&vkey, &out);
}

/// `GET /admin/risks` on `replica`.
async fn register_in_force(replica: &Gateway) -> Value {
    let reply = admin_call(&replica.admin, Some("ops"), Method::GET, "/admin/risks", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Two rows through `replica`: one `f` scored `f`, one `m` scored `m`.
async fn pair(replica: &Gateway, f: f64, m: f64) {
    let body = json!({ "scores": [f, m], "sex": ["f", "m"] });
    let reply = send(
        Method::POST,
        &replica.url("/v2/models/scorer/infer"),
        &[],
        body.to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn the_register_of_the_replica_started_last_is_the_fleets_on_every_replica() {
    let postgres = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let url = postgres.url_file(dir.path());
    let upstream = TestUpstream::start().await;
    let a = fleet_config(&upstream.url(), &url, "r1");
    let b = register_b(&fleet_config(&upstream.url(), &url, "r2"));
    let mut one = Gateway::start_pending("", &a).await;
    let first = entries_until(&one, "risk_register_set", |found| found.len() == 1).await;
    assert_eq!(first[0]["risks"][0]["id"], "credit-bias");
    let a_seq = first[0]["control_seq"].as_u64().expect("control_seq");
    approve_declared(&one.admin, &a).await;

    // Replica two, started later with register B: B is the fleet's.
    let mut two = Gateway::start_pending("", &b).await;
    let on_two = entries_until(&two, "risk_register_set", |found| found.len() == 2).await;
    assert_eq!(on_two[0]["control_seq"], a_seq);
    assert_eq!(on_two[0]["sha256"], first[0]["sha256"]);
    assert_eq!(on_two[1]["risks"][0]["id"], "credit-parity");
    let b_seq = on_two[1]["control_seq"].as_u64().unwrap();
    assert!(b_seq > a_seq, "{b_seq} after {a_seq}");
    let on_one = entries_until(&one, "risk_register_set", |found| found.len() == 2).await;
    assert_eq!(on_one[1]["control_seq"], b_seq);
    assert_eq!(on_one[1]["sha256"], on_two[1]["sha256"]);
    assert_eq!(on_one[1]["risks"], on_two[1]["risks"]);

    // Both evaluate B: its series, none of A's; the register in force is B.
    let labels =
        r#"{indicator="0:demographic_parity_difference:sex",model="scorer",risk="credit-parity"}"#;
    for replica in [&one, &two] {
        let text = replica
            .metrics_when(&format!("govgate_risk_indicator_breached{labels} 0"))
            .await;
        assert!(!text.contains("risk=\"credit-bias\""), "{text}");
        let in_force = register_in_force(replica).await;
        assert_eq!(in_force["sha256"], on_two[1]["sha256"]);
        assert_eq!(in_force["risks"][0]["id"], "credit-parity");
    }

    // Replica two restarted with B again: nothing more for the fleet.
    two.stop().await;
    two.restart().await;
    until_active(&two, &["scorer"]).await;
    let db = postgres.client().await;
    let shared: i64 = db
        .query_one(
            "SELECT count(*) FROM govgate_control_events WHERE kind = 'risk_register_set'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(shared, 2);
    assert_eq!(of_kind(&two.entries().await, "risk_register_set").len(), 2);
    // Entries with control_seq verify.
    stop_and_verify(&mut one).await;
    stop_and_verify(&mut two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_fairness_breach_on_traffic_across_the_fleet_is_recorded_by_every_replica_alike() {
    let postgres = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let url = postgres.url_file(dir.path());
    let upstream = TestUpstream::start().await;
    let configs: Vec<String> = ["r1", "r2", "r3"]
        .iter()
        .map(|id| fleet_config(&upstream.url(), &url, id))
        .collect();
    let (g1, g2, g3) = serving_fleet(&configs, &["scorer"]).await;
    let replicas = [&g1, &g2, &g3];

    // 8 rows, two a call, round robin: no replica has the 8 rows the
    // indicator needs in its own window; the fleet's window has them.
    // Every f approved, no m: a parity difference of 1.
    for call in 0..4 {
        pair(replicas[call % 3], 0.9, 0.1).await;
    }
    let mut breaches = Vec::new();
    for replica in replicas {
        let found = entries_until(replica, "risk_indicator_breached", |found| {
            !found.is_empty()
        })
        .await;
        assert_eq!(found.len(), 1, "{found:?}");
        breaches.push(found[0].clone());
    }
    for breach in &breaches {
        assert_eq!(breach["risk"], "credit-bias");
        assert_eq!(breach["value"], 1.0);
        assert_eq!(
            breach["counts"],
            json!({"rows_in_window": 8, "eligible_groups": [
                {"group": "f", "rows": 4, "selected": 4},
                {"group": "m", "rows": 4, "selected": 0},
            ]})
        );
        assert_eq!(breach["register_sha256"], breaches[0]["register_sha256"]);
    }
    // Each replica's own window holds only what it served.
    for (replica, rows) in [(&g1, 4), (&g2, 2), (&g3, 2)] {
        let reply = admin_call(
            &replica.admin,
            Some("ops"),
            Method::GET,
            "/admin/kpis/scorer",
            "",
        )
        .await;
        assert_eq!(
            reply.json()["fairness"]["rows_in_window"],
            rows,
            "{}",
            reply.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn kpi_snapshots_of_each_replica_carry_the_fleets_figures_beside_its_own() {
    let postgres = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let url = postgres.url_file(dir.path());
    let upstream = TestUpstream::start().await;
    let configs: Vec<String> = ["r1", "r2"]
        .iter()
        .map(|id| fleet_config(&upstream.url(), &url, id))
        .collect();
    let (g1, g2) = tokio::join!(
        Gateway::start_pending("", &configs[0]),
        Gateway::start_pending("", &configs[1])
    );
    approve_declared(&g1.admin, &configs[0]).await;
    for replica in [&g1, &g2] {
        until_active(replica, &["scorer"]).await;
    }
    // 3 calls to the first replica, 1 to the second.
    for call in 0..4 {
        let replica = if call < 3 { &g1 } else { &g2 };
        pair(replica, 0.9, 0.1).await;
    }
    // A snapshot a second while the figures change: each replica's last
    // one holds the fleet's 8 rows beside its own.
    let mut fleet = Vec::new();
    for (replica, own_rows) in [(&g1, 6), (&g2, 2)] {
        let snapshots = entries_until(replica, "kpi_snapshot", |found| {
            found
                .last()
                .is_some_and(|s| s["fleet"]["fairness"]["rows_in_window"] == 8)
        })
        .await;
        let last = snapshots.last().unwrap();
        assert_eq!(last["fairness"]["rows_in_window"], own_rows, "{last}");
        let part = last["fleet"].clone();
        assert_eq!(part["omitted"], json!([]));
        let groups: Vec<(Value, Value, Value)> = part["fairness"]["attributes"][0]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["group"].clone(), g["rows"].clone(), g["selected"].clone()))
            .collect();
        assert_eq!(
            groups,
            vec![
                (json!("f"), json!(4), json!(4)),
                (json!("m"), json!(4), json!(0))
            ],
            "{part}"
        );
        assert_eq!(
            part["fairness"]["attributes"][0]["demographic_parity_difference"],
            1.0
        );
        fleet.push(part);
    }
    assert_eq!(fleet[0], fleet[1]);
    // Snapshots with the fleet's figures verify (the Python verifier
    // recomputes them).
    let (mut g1, mut g2) = (g1, g2);
    stop_and_verify(&mut g1).await;
    stop_and_verify(&mut g2).await;
}
