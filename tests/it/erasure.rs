//! Erasure on a running gateway (`POST /admin/payloads/erase`, `govgate
//! erase --admin-url`): by data subject under steady load, exactly that
//! subject's payloads go, everything else stays, nothing is refused and
//! every proof still verifies.

use crate::models;
use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream, send};
use crate::verification::Load;
use http::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The test models, with a subject header on `scorer` and a subject
/// pointer into `chat`'s request body.
fn models_with_subjects(upstream: &str) -> String {
    models(upstream)
        .replacen(
            "default_version = \"2\"\n",
            "default_version = \"2\"\n[models.subject]\nheader = \"x-subject-id\"\n",
            1,
        )
        .replacen(
            "name = \"chat\"\nprotocol = \"openai\"\n",
            "name = \"chat\"\nprotocol = \"openai\"\n[models.subject]\npointer = \"/user\"\n",
            1,
        )
}

/// A scorer request naming `subject` (none: no header), with a body that
/// says whose it is.
async fn infer_as(
    gateway: &Gateway,
    subject: Option<&str>,
    n: usize,
    extra: &[(&str, &str)],
) -> String {
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(subject) = subject {
        headers.push(("x-subject-id", subject));
    }
    // The body says whose it is without the subject id itself.
    let whose = subject.map_or("nobody".to_owned(), |s| s.replace("cust-", "subject-"));
    let body = format!(r#"{{"inputs":[],"note":"payload-of-{whose}-{n}"}}"#);
    let reply = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &headers,
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.decision_id()
}

async fn erase(gateway: &Gateway, principal: &str, body: Value) -> crate::support::client::Reply {
    admin_call(
        &gateway.admin,
        Some(principal),
        Method::POST,
        "/admin/payloads/erase",
        &body.to_string(),
    )
    .await
}

fn ids_of(answer: &Value) -> BTreeSet<String> {
    answer["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for item in std::fs::read_dir(dir).unwrap().flatten() {
        let path = item.path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if std::fs::read(&path)
            .unwrap_or_default()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_by_subject_under_load_removes_exactly_that_subjects_payloads() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models_with_subjects(&upstream.url())).await;
    let mut a = BTreeSet::new();
    let mut b = BTreeSet::new();
    let mut others = BTreeSet::new();
    for n in 0..3 {
        a.insert(infer_as(&gateway, Some("cust-a"), n, &[]).await);
        b.insert(infer_as(&gateway, Some("cust-b"), n, &[]).await);
        others.insert(infer_as(&gateway, None, n, &[]).await);
    }
    // A streamed decision of A: its answer is in its stream_ended's payload.
    let streamed = infer_as(&gateway, Some("cust-a"), 9, &[("x-test-answer", "sse")]).await;
    gateway.wait_for_stream_end(&streamed).await;
    a.insert(streamed.clone());
    // C names itself in the body (a JSON pointer).
    let chat = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[],
        r#"{"model":"chat","user":"cust-c","messages":[]}"#,
    )
    .await;
    assert_eq!(chat.status, 200, "{}", chat.text());
    let c = chat.decision_id();

    // Entries carry the keyed hash, never the id.
    let key: [u8; 32] = std::fs::read(gateway.dir.path().join("data/subject.key"))
        .unwrap()
        .try_into()
        .expect("a 32-byte subject key made at start");
    let key = govgate::decision::SubjectKey::from_bytes(key);
    for decision in gateway.decisions().await {
        let id = decision["decision_id"].as_str().unwrap();
        let expected = if a.contains(id) {
            Some(key.hash("cust-a").to_string())
        } else if b.contains(id) {
            Some(key.hash("cust-b").to_string())
        } else if id == c {
            Some(key.hash("cust-c").to_string())
        } else {
            None
        };
        assert_eq!(
            decision["subject"].as_str().map(str::to_owned),
            expected,
            "{decision}"
        );
    }
    assert!(
        gateway
            .metrics()
            .await
            .contains("govgate_subject_missing_total{model=\"scorer\"} 3"),
        "requests without a subject are counted"
    );

    let load = Load::start(&gateway.url("/v2/models/scorer/infer"));

    // Only an admin may erase, and only with a reason.
    let refused = erase(
        &gateway,
        "auditor",
        json!({"subject": "cust-a", "reason": "DSR-1"}),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    let no_reason = erase(&gateway, "ops", json!({"subject": "cust-a"})).await;
    assert_eq!(no_reason.status, 400, "{}", no_reason.text());
    assert_eq!(no_reason.error_code(), "reason_required");

    // A dry run lists exactly A's decisions and erases nothing.
    let dry = erase(
        &gateway,
        "ops",
        json!({"subject": "cust-a", "reason": "DSR-1", "dry_run": true}),
    )
    .await;
    assert_eq!(dry.status, 200, "{}", dry.text());
    let dry = dry.json();
    assert_eq!(ids_of(&dry), a);
    assert_eq!(dry["more"], false);
    let by_c = erase(
        &gateway,
        "ops",
        json!({"subject": "cust-c", "reason": "DSR-1", "dry_run": true}),
    )
    .await
    .json();
    assert_eq!(ids_of(&by_c), BTreeSet::from([c.clone()]));

    // The erasure itself, through the CLI's online form.
    let erased = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .env("GOVGATE_TOKEN", crate::support::governance::token("ops"))
        .args([
            "erase",
            "--admin-url",
            &gateway.admin,
            "--subject",
            "cust-a",
            "--reason",
            "DSR-1",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&erased.stdout).into_owned();
    assert!(
        erased.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&erased.stderr)
    );
    for id in &a {
        assert!(
            said.contains(&format!("decision {id}: payload erased")),
            "{said}"
        );
    }
    // The streamed decision's two payloads, one entry each.
    let line = said.lines().find(|l| l.contains(&streamed)).unwrap();
    let recorded = line.split("erasure recorded at seqs ").nth(1).unwrap();
    assert_eq!(recorded.split(", ").count(), 2, "{line}");
    // Nothing of A's payloads is left in the write-ahead file either.
    let wal = gateway.dir.path().join("data/ledger/wal");
    assert_eq!(files_holding(&wal, b"payload-of-subject-a").len(), 0);
    // Again: nothing left to erase.
    let again = erase(
        &gateway,
        "ops",
        json!({"subject": "cust-a", "reason": "DSR-1"}),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text());
    let again = again.json();
    assert!(ids_of(&again).is_empty(), "{again}");
    assert_eq!(again["already_empty"], 4);

    let served = load.stop_all_served().await;
    assert!(served > 0);
    gateway.stop().await;

    // The offline form selects the same way, on the stopped gateway.
    let listed = gateway.cli(&[
        "erase",
        "--subject",
        "cust-b",
        "--reason",
        "DSR-2",
        "--dry-run",
    ]);
    let said = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success(), "{said}");
    assert_eq!(
        said.lines()
            .filter(|l| l.starts_with("would erase"))
            .count(),
        3,
        "{said}"
    );
    assert!(b.iter().all(|id| said.contains(id.as_str())), "{said}");
    let verified = gateway.cli(&["verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let bundle = gateway.dir.path().join("bundle");
    let exported = gateway.cli(&["export", "--payloads", "--out", bundle.to_str().unwrap()]);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let entries: Vec<Value> = std::fs::read_to_string(bundle.join("entries.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let payload_seqs: BTreeSet<u64> = std::fs::read_to_string(bundle.join("payloads.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let seq_of = |id: &str, kind: &str| {
        entries
            .iter()
            .find(|e| e["decision_id"] == id && e["kind"] == kind)
            .and_then(|e| e["seq"].as_u64())
            .unwrap()
    };
    for id in &a {
        assert!(
            !payload_seqs.contains(&seq_of(id, "decision")),
            "{id} erased"
        );
    }
    assert!(!payload_seqs.contains(&seq_of(&streamed, "stream_ended")));
    for id in b.iter().chain(&others).chain([&c]) {
        assert!(payload_seqs.contains(&seq_of(id, "decision")), "{id} kept");
    }
    let erasures: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "payload_erased")
        .collect();
    assert_eq!(erasures.len(), 5, "one entry per payload erased");
    assert!(erasures.iter().all(|e| e["reason"] == "DSR-1"));
    let rust = gateway.cli(&[
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--vkey",
        &gateway.vkey,
    ]);
    assert!(
        rust.status.success(),
        "{}{}",
        String::from_utf8_lossy(&rust.stdout),
        String::from_utf8_lossy(&rust.stderr)
    );
    let checked = crate::support::python_verifier(&[
        std::ffi::OsString::from("bundle"),
        "--vkey".into(),
        gateway.vkey.clone().into(),
        bundle.clone().into(),
    ]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    // The subject ids in clear are nowhere in the data directory (B's
    // payloads are all still there).
    let data = gateway.dir.path().join("data");
    assert_eq!(
        files_holding(&data, b"cust-a"),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        files_holding(&data, b"cust-b"),
        Vec::<std::path::PathBuf>::new()
    );
}

/// The gateway stopping ends an erasure at its next group and waits for
/// it, however short the grace: every `payload_erased` entry comes before
/// `gateway_stopped`, and erasing again after the restart finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_an_erasure_ends_it_before_gateway_stopped() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&format!(
        "[timeouts]\nshutdown_grace_ms = 1\n{}",
        models_with_subjects(&upstream.url())
    ))
    .await;
    // As many decisions as one call erases: 32 groups.
    for round in 0..40 {
        let sent = (0..25).map(|i| infer_as(&gateway, Some("cust-z"), round * 25 + i, &[]));
        futures_util::future::join_all(sent).await;
    }
    let admin = gateway.admin.clone();
    let body = json!({"subject": "cust-z", "reason": "ticket 7"}).to_string();
    let erasing = tokio::spawn(async move {
        admin_call(
            &admin,
            Some("ops"),
            Method::POST,
            "/admin/payloads/erase",
            &body,
        )
        .await
    });
    // Stopped once its first group is in the ledger.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !gateway
        .entries()
        .await
        .iter()
        .any(|e| e["kind"] == "payload_erased")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the erasure did not begin"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(gateway.stop().await.success());
    erasing.abort();

    gateway.restart().await;
    let entries = gateway.entries().await;
    let stopped = entries
        .iter()
        .position(|e| e["kind"] == "gateway_stopped")
        .expect("the first run's gateway_stopped");
    let erased = |range: &[Value]| {
        range
            .iter()
            .filter(|e| e["kind"] == "payload_erased")
            .count()
    };
    let before = erased(&entries[..stopped]);
    assert_eq!(
        erased(&entries[stopped..]),
        0,
        "an erasure entry after gateway_stopped"
    );
    assert!(before > 0);
    // The rest goes on the next call.
    if before < 1000 {
        let rest = erase(
            &gateway,
            "ops",
            json!({"subject": "cust-z", "reason": "ticket 7"}),
        )
        .await;
        assert_eq!(rest.status, 200, "{}", rest.text());
        assert_eq!(
            rest.json()["decisions"].as_array().unwrap().len(),
            1000 - before
        );
    }
}
