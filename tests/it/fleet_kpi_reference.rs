//! Drift references in a fleet: a reference uploaded to one replica is
//! recorded by every replica (citing its control event) and used in every
//! replica's own windows, and the fleet's windows take it at its place in
//! the feed's order, so they equal what one gateway computes when the same
//! upload comes between the same calls. A replica that joins late records
//! every upload and folds only the latest one of a version.

use crate::fleet_kpi::{TinyFleet, fleet_windows, replica_config, tiny_call, until_active};
use crate::kpi_golden::wait_for_counter;
use crate::support::Gateway;
use crate::support::governance::{admin_call, approve_declared};
use http::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

const FIRST: &str = "amount\n50\n150\n250\n350\n450\n";
const SECOND: &str = "amount\n1000\n1100\n1200\n";

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sends `csv` as version 1's reference to `replica`.
async fn put_reference(replica: &Gateway, csv: &str) -> crate::support::client::Reply {
    crate::support::send(
        Method::PUT,
        &format!(
            "{}/admin/models/tiny/versions/1/kpi-reference",
            replica.admin
        ),
        &[
            (
                "authorization",
                &format!("Bearer {}", crate::support::governance::token("ops")),
            ),
            ("content-type", "text/csv"),
        ],
        csv.to_owned(),
    )
    .await
}

/// Uploads `csv` as version 1's reference through `replica`: the answer.
async fn upload(replica: &Gateway, csv: &str) -> Value {
    let reply = put_reference(replica, csv).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// The `kpi_reference_set` entries of `replica`'s ledger, waiting until
/// it has `n`: each one's (control_seq, sha256).
async fn references(replica: &Gateway, n: usize) -> Vec<(Option<u64>, String)> {
    let mut found = Vec::new();
    for _ in 0..100 {
        found = replica
            .entries()
            .await
            .iter()
            .filter(|e| e["kind"] == "kpi_reference_set")
            .map(|e| {
                (
                    e["control_seq"].as_u64(),
                    e["sha256"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if found.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    found
}

/// Version 1's drift in `report` (a KPI report).
fn drift(report: &Value) -> &Value {
    report["drift"]
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["version"] == "1"))
        .unwrap_or_else(|| panic!("no drift of version 1: {report}"))
}

/// `report` without what names this gateway's own ledger entry.
fn without_entry_seq(mut report: Value) -> Value {
    if let Some(versions) = report["drift"].as_array_mut() {
        for version in versions {
            if let Some(members) = version.as_object_mut() {
                members.remove("reference_seq");
            }
        }
    }
    report
}

/// Waits until `replica`'s fleet windows name `sha256` as version 1's reference.
async fn until_fleet_reference(replica: &Gateway, sha256: &str) -> Value {
    let mut report = Value::Null;
    for _ in 0..100 {
        report = fleet_windows(replica, "tiny").await;
        if drift(&report)["reference_sha256"] == sha256 {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the fleet windows never took the reference {sha256}: {report}")
}

/// The replica's own KPI report of the tiny model, without counts since start.
async fn own_windows(replica: &Gateway) -> Value {
    let reply = admin_call(
        &replica.admin,
        Some("ops"),
        Method::GET,
        "/admin/kpis/tiny",
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_reference_uploaded_to_one_replica_is_every_replicas_and_takes_its_place_in_the_fleet_order()
 {
    let tiny = TinyFleet::start().await;
    let (url, model) = (&tiny.url, &tiny.model);
    let config = |id: &str| replica_config(model, url, id);
    let (r1, r2) = (config("r1"), config("r2"));
    let (one, two) = tokio::join!(
        Gateway::start_pending("", &r1),
        Gateway::start_pending("", &r2)
    );
    approve_declared(&one.admin, &r1).await;
    until_active(&one, &["tiny"]).await;
    until_active(&two, &["tiny"]).await;
    // One gateway alone, sent the same calls and the same upload between them.
    let single = Gateway::start_pending("", model).await;
    approve_declared(&single.admin, model).await;

    // Calls alternately to each replica, each in the feed before the next.
    let mut calls = 0;
    let mut send = async |n: usize| {
        for _ in 0..n {
            let i = calls;
            calls += 1;
            let replica = if i % 2 == 0 { &one } else { &two };
            tiny_call(replica, i).await;
            tiny_call(&single, i).await;
            wait_for_counter(
                replica,
                "govgate_fleet_kpi_rows_total",
                &[("model", "tiny")],
                i + 1,
            )
            .await;
        }
    };
    send(6).await;

    // Uploaded to replica one: replica two records it with the same
    // control event and uses it in its own windows at once.
    let answer = upload(&one, FIRST).await;
    upload(&single, FIRST).await;
    let control_seq = answer["control_seq"].as_u64().expect("a control seq");
    let first = sha256(FIRST);
    let expected = vec![(Some(control_seq), first.clone())];
    assert_eq!(references(&one, 1).await, expected);
    assert_eq!(references(&two, 1).await, expected);
    for replica in [&one, &two] {
        let own = own_windows(replica).await;
        assert_eq!(drift(&own)["reference_sha256"], first.as_str(), "{own}");
        assert_eq!(drift(&own)["reference_rows"], 5, "{own}");
        until_fleet_reference(replica, &first).await;
    }
    send(5).await;
    for replica in [&one, &two] {
        wait_for_counter(
            replica,
            "govgate_fleet_kpi_rows_total",
            &[("model", "tiny")],
            11,
        )
        .await;
    }
    let fleet = fleet_windows(&one, "tiny").await;
    assert_eq!(fleet, fleet_windows(&two, "tiny").await);
    assert_eq!(drift(&fleet)["rows_in_window"], 4, "{fleet}");
    // The same figures as the one gateway's, to the bit.
    let mut alone = own_windows(&single).await;
    strip_rows_total(&mut alone);
    assert_eq!(without_entry_seq(fleet.clone()), without_entry_seq(alone));

    // A second upload, through replica two; then a replica joins: it
    // records both uploads, and folds only the second, which the feed
    // keeps alone.
    let answer = upload(&two, SECOND).await;
    let second = sha256(SECOND);
    let second_seq = answer["control_seq"].as_u64().unwrap();
    assert!(second_seq > control_seq, "{answer}");
    for replica in [&one, &two] {
        until_fleet_reference(replica, &second).await;
    }
    let three = Gateway::start_pending("", &config("r3")).await;
    until_active(&three, &["tiny"]).await;
    assert_eq!(
        references(&three, 2).await,
        vec![
            (Some(control_seq), first.clone()),
            (Some(second_seq), second.clone())
        ]
    );
    let fleet = until_fleet_reference(&three, &second).await;
    assert_eq!(fleet, until_fleet_reference(&one, &second).await);
    assert_eq!(drift(&fleet)["rows_in_window"], 0, "{fleet}");
    // The feed keeps the second upload alone (pruned at the replica's start).
    let db = tiny.postgres.client().await;
    let mut kept = Vec::new();
    for _ in 0..100 {
        kept = db
            .query(
                "SELECT row_index FROM govgate_kpi_feed WHERE kind = 'reference' ORDER BY seq",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, i64>(0))
            .collect();
        if kept.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kept, vec![second_seq as i64], "the first one is pruned");

    // Without the control plane an upload is refused at once, and no
    // replica records it.
    drop(db);
    tiny.postgres.stop();
    let reply = put_reference(&one, FIRST).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.error_code(), "control_plane_unavailable");
    assert_eq!(references(&one, 2).await.len(), 2);
}

/// Removes the counts since start (`rows_total`), each gateway's own.
fn strip_rows_total(value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.remove("rows_total");
            members.values_mut().for_each(strip_rows_total);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_rows_total),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_feed_written_before_references_were_shared_is_migrated_in_place_and_kept() {
    let tiny = TinyFleet::start().await;
    let (url, model) = (&tiny.url, &tiny.model);
    // The control plane as the previous release left it: schema 4, a row
    // and its label in the feed.
    let mut db = tiny.postgres.client().await;
    assert_eq!(
        govgate::cluster::schema::migrate_to(&mut db, 4)
            .await
            .unwrap(),
        0
    );
    db.batch_execute(
        "INSERT INTO govgate_kpi_feed (kind, model, version, decision_id, row_index, payload, replica_id) VALUES \
         ('row', 'tiny', '1', 'd0', 0, '{\"groups\":[\"female\"],\"predicted\":true,\"features\":[7]}', 'r0'), \
         ('label', 'tiny', '', 'd0', 0, '{\"label\":true}', 'r0')",
    )
    .await
    .unwrap();
    let config = replica_config(model, url, "r1");
    let one = Gateway::start_pending("", &config).await;
    approve_declared(&one.admin, &config).await;
    until_active(&one, &["tiny"]).await;
    let versions: Vec<i32> = db
        .query("SELECT version FROM govgate_schema ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    // The earlier row and label are folded; an upload now takes its place.
    wait_for_counter(
        &one,
        "govgate_fleet_kpi_labels_total",
        &[("model", "tiny")],
        1,
    )
    .await;
    let fleet = fleet_windows(&one, "tiny").await;
    assert_eq!(drift(&fleet)["reference_rows"], 1, "{fleet}");
    let answer = upload(&one, FIRST).await;
    until_fleet_reference(&one, &sha256(FIRST)).await;
    let kinds: Vec<String> = db
        .query("SELECT kind FROM govgate_kpi_feed ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(kinds, ["row", "label", "reference"], "{answer}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_replica_without_kpi_settings_records_an_upload_and_keeps_following_the_fleet() {
    let tiny = TinyFleet::start().await;
    let (url, model) = (&tiny.url, &tiny.model);
    // The same model without [models.kpi]: a replica whose configuration
    // a rolling change has not reached yet.
    let (plain, _) = model.split_once("[models.kpi]").unwrap();
    let (r1, r2) = (
        replica_config(model, url, "r1"),
        replica_config(plain, url, "r2"),
    );
    let (one, two) = tokio::join!(
        Gateway::start_pending("", &r1),
        Gateway::start_pending("", &r2)
    );
    let answer = upload(&one, FIRST).await;
    let control_seq = answer["control_seq"].as_u64().expect("control_seq");
    assert_eq!(
        references(&two, 1).await,
        [(Some(control_seq), sha256(FIRST))],
        "recorded by the replica that does not use it"
    );
    two.metrics_when(&format!("govgate_fleet_control_seq {control_seq}\n"))
        .await;
    // And it follows the fleet past the upload: a version proposed on
    // replica 1 reaches it.
    let body = serde_json::json!({
        "version": "2",
        "upstream": format!("{}/json", tiny.upstream.url),
        "risk_class": "limited",
        "change_ref": "CHG-after-upload",
    });
    let proposed = admin_call(
        &one.admin,
        Some("ops"),
        Method::POST,
        "/admin/models/tiny/versions",
        &body.to_string(),
    )
    .await;
    assert_eq!(proposed.status, 201, "{}", proposed.text());
    two.metrics_when(&format!("govgate_fleet_control_seq {}\n", control_seq + 1))
        .await;
}
