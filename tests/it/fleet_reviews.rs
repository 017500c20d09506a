//! Reviews across a fleet of three replicas on a real PostgreSQL: a hold
//! opened on one replica is listed, shown and decided through another and
//! polled on a third; the owner's ledger records it once; two verdicts at
//! once close it once; a timeout fires once; a verdict given while the
//! owner is down is applied when it is back.

use crate::reviews::{TEST_POLICY, decide, held, policy_dir, poll, show_review};
use crate::support::governance::admin_call;
use crate::support::postgres::Postgres;
use crate::support::{Gateway, TestUpstream};
use http::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// A replica's config: the test models, the review policy, `[cluster]`.
fn replica(upstream: &str, policies: &Path, url_file: &Path, id: &str) -> String {
    format!(
        "{}\n[review]\npolicies_dir = \"{}\"\ntimeout_secs = 3600\n\
         [[review.timeouts]]\nreason_prefix = \"slow lane\"\ntimeout_secs = 2\non_timeout = \"release\"\n\
         [cluster]\nurl = {{ file = \"{}\" }}\nreplica_id = \"{id}\"\nlease_secs = 3\n",
        crate::models(upstream),
        policies.display(),
        url_file.display()
    )
}

struct Fleet {
    postgres: Postgres,
    replicas: Vec<Gateway>,
    _upstream: TestUpstream,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn fleet() -> Fleet {
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    let upstream = TestUpstream::start().await;
    let policies = policy_dir(&[("test.rego", TEST_POLICY)]);
    let config = |id: &str| replica(&upstream.url(), policies.path(), &url, id);
    // One after the other: each approves the declared versions, which the
    // next then finds approved.
    let mut replicas = Vec::new();
    for id in ["r1", "r2", "r3"] {
        replicas.push(Gateway::start_with("", &config(id)).await);
    }
    Fleet {
        postgres,
        replicas,
        _upstream: upstream,
        _dirs: (urls, policies),
    }
}

async fn closing_entries(replica: &Gateway, review_id: &str) -> Vec<Value> {
    replica
        .entries()
        .await
        .into_iter()
        .filter(|e| {
            (e["kind"] == "review_decided" || e["kind"] == "review_timed_out")
                && e["review_id"] == review_id
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_hold_opened_on_one_replica_is_decided_on_another_and_polled_on_a_third() {
    let fleet = fleet().await;
    let [r1, r2, r3] = [&fleet.replicas[0], &fleet.replicas[1], &fleet.replicas[2]];
    let body = "{ \"hold\" : true, \"text\": \"r\u{e9}sum\u{e9}\" }";
    let (decision_id, review_id) = held(r1, body).await;

    // Listed and shown (with its bodies) through r2.
    let listed = admin_call(
        &r2.admin,
        Some("rita"),
        Method::GET,
        "/admin/reviews?status=pending",
        "",
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let reviews = listed.json()["reviews"].as_array().unwrap().clone();
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["review_id"], review_id.as_str());
    let shown = show_review(&r2.admin, "auditor", &review_id).await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json()["response"]["body"]["hold"], true);
    // The client's poll on r3 waits.
    let pending = poll(r3, &decision_id, None).await;
    assert_eq!(pending.status, 202, "{}", pending.text());
    assert_eq!(pending.json()["review_id"], review_id.as_str());

    // Approved on r2 while the client long-polls r3.
    let long_poll = tokio::spawn({
        let (url, id) = (
            r3.url(&format!("/govgate/decisions/{decision_id}")),
            decision_id.clone(),
        );
        async move {
            let reply = crate::support::send(Method::GET, &url, &[("prefer", "wait=20")], "").await;
            (reply, id)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let approved = decide(r2, "rita", &review_id, json!({"verdict": "approve"})).await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(approved.json()["status"], "approved", "{}", approved.text());
    let (released, _) = long_poll.await.unwrap();
    assert_eq!(released.status, 200, "{}", released.text());
    assert_eq!(
        &released.body[..],
        body.as_bytes(),
        "the upstream's answer, byte for byte"
    );
    assert_eq!(released.headers["govgate-review-state"], "approved");

    // Recorded once, in the ledger of the replica that holds the decision.
    let closing = closing_entries(r1, &review_id).await;
    assert_eq!(closing.len(), 1, "{closing:?}");
    assert_eq!(closing[0]["reviewer"], "rita");
    assert_eq!(closing[0]["verdict"], "approve");
    assert!(closing_entries(r2, &review_id).await.is_empty());
    assert!(closing_entries(r3, &review_id).await.is_empty());
    let again = decide(r3, "rob", &review_id, json!({"verdict": "approve"})).await;
    assert_eq!(again.status, 409, "{}", again.text());

    // Two reviewers at once on two replicas: one verdict counts.
    let (_, contested) = held(r1, r#"{"hold": true, "n": 2}"#).await;
    let (a, b) = tokio::join!(
        decide(r2, "rita", &contested, json!({"verdict": "approve"})),
        decide(
            r3,
            "rob",
            &contested,
            json!({"verdict": "reject", "reason": "no"})
        )
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.text(), b.text());
    assert_eq!(closing_entries(r1, &contested).await.len(), 1);

    // A timeout fires once, on the owner; the poll on r2 gets its outcome.
    let slow_body = r#"{"slow_lane": true}"#;
    let (slow_decision, slow_review) = held(r1, slow_body).await;
    let released = poll(r2, &slow_decision, Some(10)).await;
    assert_eq!(released.status, 200, "{}", released.text());
    assert_eq!(&released.body[..], slow_body.as_bytes());
    assert_eq!(released.headers["govgate-review-state"], "timed_out");
    let late = decide(
        r3,
        "rita",
        &slow_review,
        json!({"verdict": "reject", "reason": "late"}),
    )
    .await;
    assert_eq!(late.status, 409, "{}", late.text());
    let closing = closing_entries(r1, &slow_review).await;
    assert_eq!(closing.len(), 1, "{closing:?}");
    assert_eq!(closing[0]["kind"], "review_timed_out");
    let db = fleet.postgres.client().await;
    let claims: i64 = db
        .query_one("SELECT count(*) FROM govgate_review_claims", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(claims, 3, "one claim per closed review");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_verdict_given_while_the_holding_replica_is_killed_is_applied_when_it_is_back() {
    let mut fleet = fleet().await;
    let body = r#"{"hold": true, "n": 3}"#;
    let (decision_id, review_id) = held(&fleet.replicas[0], body).await;
    fleet.replicas[0].kill().await;

    let accepted = decide(
        &fleet.replicas[1],
        "rita",
        &review_id,
        json!({"verdict": "approve"}),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    assert_eq!(accepted.error_code(), "verdict_not_yet_applied");
    assert_eq!(accepted.json()["error"]["owner_replica"], "r1");
    let waiting = poll(&fleet.replicas[2], &decision_id, None).await;
    assert_eq!(waiting.status, 202, "{}", waiting.text());

    // Its id is free once its lease (3 s) ran out; back, it applies the verdict.
    tokio::time::sleep(Duration::from_secs(4)).await;
    fleet.replicas[0].restart().await;
    let released = poll(&fleet.replicas[2], &decision_id, Some(15)).await;
    assert_eq!(released.status, 200, "{}", released.text());
    assert_eq!(&released.body[..], body.as_bytes());
    let closing = closing_entries(&fleet.replicas[0], &review_id).await;
    assert_eq!(closing.len(), 1, "{closing:?}");
    assert_eq!(closing[0]["reviewer"], "rita");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_review_closed_on_its_replica_while_the_database_was_down_is_not_closed_again() {
    let fleet = fleet().await;
    let [r1, r2] = [&fleet.replicas[0], &fleet.replicas[1]];
    let (decision_id, review_id) = held(r1, r#"{"hold": true, "n": 4}"#).await;
    // The database goes away; r1 decides its own review alone.
    fleet.postgres.stop();
    let approved = decide(r1, "rita", &review_id, json!({"verdict": "approve"})).await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    fleet.postgres.restart();
    // The fleet's copy catches up by itself: r2 no longer lists it pending.
    let mut listed = Vec::new();
    for _ in 0..50 {
        let reply = admin_call(
            &r2.admin,
            Some("rita"),
            Method::GET,
            "/admin/reviews?status=pending",
            "",
        )
        .await;
        listed = reply.json()["reviews"].as_array().unwrap().clone();
        if listed.iter().all(|r| r["review_id"] != review_id.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        listed.iter().all(|r| r["review_id"] != review_id.as_str()),
        "still pending on r2: {listed:?}"
    );
    // A reviewer on r2 who still had it on screen: refused.
    let late = decide(
        r2,
        "rob",
        &review_id,
        json!({"verdict": "reject", "reason": "late"}),
    )
    .await;
    assert_eq!(late.status, 409, "{}", late.text());
    assert_eq!(late.json()["error"]["current_state"], "approved");
    let released = poll(r2, &decision_id, None).await;
    assert_eq!(released.status, 200, "{}", released.text());
    let closing = closing_entries(r1, &review_id).await;
    assert_eq!(closing.len(), 1, "{closing:?}");
    assert_eq!(closing[0]["verdict"], "approve");
}
