//! Fail closed: when the ledger cannot write, nothing is served.

use crate::models;
use crate::support::{TestUpstream, send};
use govgate::app::{self, App};
use govgate::config::{Config, Environment};
use govgate::ledger::memstore::MemStore;
use govgate::ledger::store::LedgerStore;
use http::Method;
use std::collections::HashMap;
use std::sync::Arc;

/// An in-process gateway on a failable in-memory store, with `ledger_extra`
/// lines in its `[ledger]` table. Returns its base URL, admin URL, the store
/// and a stop switch.
async fn start_on_memory_store(
    upstream: &TestUpstream,
    ledger_extra: &str,
) -> (
    String,
    String,
    Arc<MemStore>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let store = Arc::new(MemStore::new());
    let (base, admin, stop, server) = start_on_store(upstream, ledger_extra, store.clone()).await;
    (base, admin, store, stop, server)
}

/// An in-process gateway on `store`, with `ledger_extra` lines in its
/// `[ledger]` table. Returns its base URL, admin URL and a stop switch.
pub async fn start_on_store(
    upstream: &TestUpstream,
    ledger_extra: &str,
    store: Arc<dyn LedgerStore>,
) -> (
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let dir = tempfile::tempdir().unwrap();
    crate::support::gateway::keygen(&dir.path().join("k.key"), "test.example/failclosed");
    let text = format!(
        "[server]\npublic_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\
         [ledger]\norigin = \"test.example/failclosed\"\nkey_file = \"k.key\"\n{ledger_extra}\n{}\n{}",
        models(&upstream.url()),
        crate::support::governance::token_tables()
    );
    let env = Environment::fixed(
        HashMap::from([("TEST_UPSTREAM_KEY".to_owned(), "s".to_owned())]),
        dir.path(),
    );
    let config = Config::parse(&text, "test", &env).unwrap();
    let gateway = App::build_on(&config, store).await.unwrap();
    let public = app::bind("public", config.server.public_listen)
        .await
        .unwrap();
    let admin = app::bind("admin", config.server.admin_listen)
        .await
        .unwrap();
    let base = format!("http://{}", public.local_addr().unwrap());
    let admin_url = format!("http://{}", admin.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _keep_key_dir = dir;
        gateway
            .run(public, admin, None, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    crate::support::governance::approve_declared(&admin_url, &text).await;
    (base, admin_url, stop, server)
}

#[tokio::test]
async fn a_failing_store_yields_503_and_no_answer_without_its_entry() {
    let upstream = TestUpstream::start().await;
    let (base, _admin, store, stop, server) = start_on_memory_store(&upstream, "").await;
    let infer = format!("{base}/v2/models/scorer/infer");
    let body = r#"{"inputs":"the upstream's answer echoes this"}"#;

    assert_eq!(send(Method::POST, &infer, &[], body).await.status, 200);

    store.fail_commits(true);
    let refused = send(Method::POST, &infer, &[], body).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.error_code(), "ledger_unavailable");
    assert!(
        !String::from_utf8_lossy(&refused.body).contains("echoes this"),
        "the answer was withheld"
    );
    assert_eq!(
        upstream.seen().len(),
        2,
        "the upstream answered; the gateway did not pass it on"
    );

    // Now the ledger is known not to commit: a stream is refused whole,
    // no byte of it sent, and the model is not even called.
    let streamed = send(
        Method::POST,
        &format!("{base}/v1/chat/completions"),
        &[],
        r#"{"model":"chat","stream":true}"#,
    )
    .await;
    assert_eq!(streamed.status, 503);
    assert_eq!(streamed.error_code(), "ledger_unavailable");
    assert!(
        !String::from_utf8_lossy(&streamed.body).contains("data:"),
        "no event of the stream was released"
    );
    assert_eq!(upstream.seen().len(), 2, "the model was not called");
    upstream.state.release.notify_one();

    store.fail_commits(false);
    // The ledger resumes by itself; readiness says when.
    let ready = format!("{base}/v2/health/ready");
    for _ in 0..250 {
        if send(Method::GET, &ready, &[], "").await.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = send(Method::POST, &infer, &[], body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, body.as_bytes());

    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn on_failure_serve_serves_unlogged_answers_and_counts_them() {
    let upstream = TestUpstream::start().await;
    let (base, admin, store, stop, server) =
        start_on_memory_store(&upstream, "on_failure = \"serve\"").await;
    let infer = format!("{base}/v2/models/scorer/infer");
    store.fail_commits(true);
    let served = send(Method::POST, &infer, &[], "{\"x\":1}").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, "{\"x\":1}".as_bytes());
    let metrics = send(Method::GET, &format!("{admin}/metrics"), &[], "").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("govgate_unlogged_answers_total 1"), "{text}");
    let _ = stop.send(());
    server.await.unwrap();
}
