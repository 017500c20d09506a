//! The shipped audit-sample policy through the real proxy: over a few
//! thousand decisions it flags a fraction within statistical bounds of its
//! 5 % rate, each flagged decision gets a queued review, and an auditor
//! recomputing `sample` from the decision ids with the independent Python
//! verifier finds exactly the flagged set.

use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const REASON: &str = "audit sample (rate 0.05)";
const DECISIONS: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_sample_flags_its_rate_and_an_auditor_recomputes_it_exactly() {
    let upstream = TestUpstream::start().await;
    let policies = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/audit_sample.rego");
    std::fs::copy(&shipped, policies.path().join("audit_sample.rego")).unwrap();
    let config = format!(
        "{}\n[review]\npolicies_dir = \"{}\"\n",
        crate::models(&upstream.url()),
        policies.path().display()
    );
    let mut gateway = Gateway::start(&config).await;

    let url = gateway.url("/v2/models/scorer/infer");
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let url = url.clone();
        tasks.spawn(async move {
            let mut flagged_answers = 0;
            for i in (worker..DECISIONS).step_by(16) {
                let reply = send(Method::POST, &url, &[], format!("{{\"i\": {i}}}")).await;
                assert_eq!(reply.status, 200, "{}", reply.text());
                flagged_answers += usize::from(reply.body.is_empty());
            }
            flagged_answers
        });
    }
    let empty: usize = tasks.join_all().await.into_iter().sum();
    assert_eq!(empty, 0, "flagged answers are released whole");

    let entries = gateway.entries().await;
    let decisions: Vec<_> = entries.iter().filter(|e| e["kind"] == "decision").collect();
    assert_eq!(decisions.len(), DECISIONS);
    let flagged: BTreeSet<String> = decisions
        .iter()
        .filter(|d| {
            d["policy"]["response"]["flag"]
                .as_array()
                .is_some_and(|reasons| reasons.iter().any(|r| r == REASON))
        })
        .map(|d| d["decision_id"].as_str().unwrap().to_owned())
        .collect();
    // Binomial(3000, 0.05): mean 150, standard deviation 11.9; 5 sigma either side.
    assert!(
        (90..=210).contains(&flagged.len()),
        "{} of {DECISIONS} flagged",
        flagged.len()
    );

    // Every flagged decision has its review queued (in the background).
    let mut queued = BTreeSet::new();
    for _ in 0..200 {
        queued = gateway
            .entries()
            .await
            .iter()
            .filter(|e| e["kind"] == "review_opened" && e["review_kind"] == "flag")
            .map(|e| e["decision_id"].as_str().unwrap().to_owned())
            .collect();
        if queued.len() >= flagged.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queued, flagged, "one flag review per flagged decision");

    gateway.stop().await;
    let bundle = tempfile::tempdir().unwrap();
    let out = bundle.path().join("all");
    let export = gateway.cli(&["export", "--out", out.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let auditor = crate::support::python_verifier(&[
        "sample".as_ref(),
        "--json".as_ref(),
        "--vkey".as_ref(),
        gateway.vkey.as_ref(),
        "--bundle".as_ref(),
        out.as_os_str(),
        "--below".as_ref(),
        "0.05".as_ref(),
        "--reason".as_ref(),
        REASON.as_ref(),
    ]);
    let said = String::from_utf8_lossy(&auditor.stdout).into_owned()
        + &String::from_utf8_lossy(&auditor.stderr);
    assert!(auditor.status.success(), "{said}");
    let summary: serde_json::Value = serde_json::from_slice(&auditor.stdout).unwrap();
    assert_eq!(summary["decisions"], DECISIONS);
    assert_eq!(summary["sampled"], flagged.len());
    assert_eq!(summary["flagged"], flagged.len());
    assert_eq!(summary["missing"], serde_json::json!([]));
    assert_eq!(summary["unexpected"], serde_json::json!([]));
}
