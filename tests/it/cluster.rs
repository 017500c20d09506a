//! Replicas of a fleet on a real PostgreSQL (a throwaway cluster per
//! test): the control plane's schema is migrated once by replicas that
//! start together, and a replica id is held by one running gateway at a
//! time (given up at a clean stop, free after its lease when the holder
//! was killed).

use crate::support::Gateway;
use crate::support::gateway::TEST_ORIGIN;
use crate::support::postgres::Postgres;
use std::path::Path;
use std::time::Duration;

/// A model (never called here) and `[cluster]` for `replica_id`, the
/// database's URL read from a file.
fn cluster_section(url_file: &Path, replica_id: &str) -> String {
    format!(
        "[[models]]\nname = \"m\"\nprotocol = \"http\"\npath_prefix = \"/m\"\n\
         [[models.versions]]\nversion = \"v1\"\nupstream = \"http://127.0.0.1:9\"\n\
         [cluster]\nurl = {{ file = \"{}\" }}\nreplica_id = \"{replica_id}\"\nlease_secs = 3\n",
        url_file.display()
    )
}

/// Runs `govgate serve` on a config with `cluster`, expecting it to stop
/// at start before it opens the ledger; its stderr.
async fn refused_start(cluster: &str) -> String {
    let (stderr, ledger_opened) = crate::support::gateway::refused_start(cluster).await;
    assert!(
        !ledger_opened,
        "the ledger was opened before the replica id was claimed"
    );
    stderr
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn replicas_migrate_once_and_a_replica_id_is_held_by_one_running_gateway() {
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    // Two replicas start at once on an empty database.
    let (r1, r2) = (cluster_section(&url, "r1"), cluster_section(&url, "r2"));
    let (mut one, two) = tokio::join!(Gateway::start_with("", &r1), Gateway::start_with("", &r2));
    let db = postgres.client().await;
    let versions: Vec<i32> = db
        .query("SELECT version FROM govgate_schema ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5], "each migration applied once");
    let held: Vec<(String, bool)> = db
        .query(
            "SELECT replica_id, released FROM govgate_replicas ORDER BY replica_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(held, vec![("r1".into(), false), ("r2".into(), false)]);

    // Each replica publishes its latest signed checkpoint, of its own log:
    // named `<ledger.origin>/<replica_id>`.
    let (mut published, mut served) = (String::new(), String::new());
    for _ in 0..50 {
        served = crate::support::send(
            http::Method::GET,
            &format!("{}/ledger/checkpoint", one.admin),
            &[],
            "",
        )
        .await
        .text();
        published = db
            .query_opt(
                "SELECT note FROM govgate_checkpoints WHERE replica_id = 'r1'",
                &[],
            )
            .await
            .unwrap()
            .map(|row| row.get(0))
            .unwrap_or_default();
        if published == served {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        published, served,
        "r1's checkpoint as its admin listener serves it"
    );
    assert!(
        published.starts_with(&format!("{TEST_ORIGIN}/r1\n"))
            && published.contains(&format!("\n\u{2014} {TEST_ORIGIN}/r1 ")),
        "{published:?}"
    );

    // A third gateway naming r1 refuses to run, before touching its ledger.
    let stderr = refused_start(&cluster_section(&url, "r1")).await;
    assert!(
        stderr.contains("replica id `r1` is in use by another gateway"),
        "{stderr}"
    );

    // A clean stop gives the id up at once: r1 starts again elsewhere.
    assert!(one.stop().await.success());
    let released: bool = db
        .query_one(
            "SELECT released FROM govgate_replicas WHERE replica_id = 'r1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(released);
    let mut again = Gateway::start_with("", &cluster_section(&url, "r1")).await;
    assert_eq!(again.get("/v2/health/ready").await.status, 200);

    // Killed, the holder cannot give it up: the id is refused until the
    // lease (3 s) runs out, then claimed.
    again.kill().await;
    let stderr = refused_start(&cluster_section(&url, "r1")).await;
    assert!(stderr.contains("is in use by another gateway"), "{stderr}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after_lease = Gateway::start_with("", &cluster_section(&url, "r1")).await;
    assert_eq!(after_lease.get("/v2/health/ready").await.status, 200);
    drop(two);
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_database_that_cannot_be_reached_stops_the_start_with_the_reason() {
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    postgres.stop();
    let stderr = refused_start(&cluster_section(&url, "r1")).await;
    assert!(stderr.contains("cluster: PostgreSQL"), "{stderr}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_replica_whose_id_another_gateway_claimed_stops_serving() {
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    let replica = Gateway::start_with("", &cluster_section(&url, "r1")).await;
    let target = replica.url("/m/predict");
    let call = || crate::support::send(http::Method::POST, &target, &[], "{}");
    // Served (its upstream does not listen: 502, but not refused by the gateway).
    assert_eq!(call().await.status, 502);

    // Its lease ran out unseen (a database outage, a paused VM) and another
    // gateway took the id: this one learns it at its next renewal.
    let db = postgres.client().await;
    db.execute(
        "UPDATE govgate_replicas SET instance = 'another', renewed_at = now() WHERE replica_id = 'r1'",
        &[],
    )
    .await
    .unwrap();
    let mut refused = call().await;
    for _ in 0..50 {
        if refused.status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        refused = call().await;
    }
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.error_code(), "control_plane_unavailable");
    assert!(
        refused
            .text()
            .contains("another gateway claimed this replica's id `r1`"),
        "{}",
        refused.text()
    );
    let ready = crate::support::send(
        http::Method::GET,
        &format!("{}/readyz", replica.admin),
        &[],
        "",
    )
    .await;
    assert_eq!(ready.status, 503, "{}", ready.text());
}
