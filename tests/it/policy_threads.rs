//! Parsing and judging a large body takes long enough to stall the
//! requests that share its async worker; with one worker thread
//! (`server.worker_threads = 1`) every other request would wait for it.
//! A large body is judged on a blocking thread instead.

use crate::reviews::policy_dir;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use std::time::{Duration, Instant};

/// A rule that does not read the body: the time goes to parsing it and
/// converting it for the engine (the evaluation itself has a time limit).
const READS_THE_CALLER: &str = r#"package govgate

deny contains "caller mallory is blocked" if {
	input.stage == "request"
	input.caller == "mallory"
}
"#;

#[tokio::test]
async fn a_large_body_is_judged_without_holding_the_only_async_worker() {
    let upstream = TestUpstream::start().await;
    let policies = policy_dir(&[("caller.rego", READS_THE_CALLER)]);
    let config = format!(
        "{}\n[review]\npolicies_dir = \"{}\"\n",
        crate::models(&upstream.url()),
        policies.path().display()
    );
    let gateway = Gateway::start_with("worker_threads = 1", &config).await;
    // A million and a half numbers (3 MB) to parse and convert.
    let large = format!(r#"{{"data": [{}0]}}"#, "1,".repeat(1_499_999));
    let url = gateway.url("/v2/models/scorer/infer");
    let started = Instant::now();
    let judged = tokio::spawn(async move {
        let reply = send(
            Method::POST,
            &url,
            &[("content-type", "application/json")],
            large,
        )
        .await;
        (reply.status, reply.text(), started.elapsed())
    });
    // Requests of the gateway's own, one after another, while the large
    // one is read, judged, forwarded and recorded.
    let mut slowest = Duration::ZERO;
    while !judged.is_finished() {
        let asked = Instant::now();
        let live = gateway.get("/v2/health/live").await;
        assert_eq!(live.status, 200);
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, text, judged_at) = judged.await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(
        judged_at > Duration::from_millis(400),
        "the large request takes long enough to tell ({judged_at:?})"
    );
    // Judged on the worker, the parse and conversion held a health check
    // for 55-76 % of the large request's time (measured); off it, at most
    // 29 % (the two cores are shared with the test, the upstream and the
    // blocking thread).
    assert!(
        slowest < judged_at / 2,
        "a health check waited {slowest:?} while the large request took {judged_at:?}"
    );
}
