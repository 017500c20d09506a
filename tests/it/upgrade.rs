//! Ledgers written by earlier versions verify unchanged with today's code:
//! the bundles in tests/data/upgrade/ (their README says how they were
//! made), by both verifiers.

use crate::support::audit::both_accept_bundle;
use std::path::PathBuf;

/// Bundles written by the code before streamed decisions had two entries.
fn before_stream_entries(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/upgrade/v0.1-a2c4271")
        .join(name)
}

fn vkey() -> String {
    format!("@{}", before_stream_entries("log.vkey").display())
}

#[test]
fn bundles_from_before_stream_entries_verify_with_both_verifiers() {
    let (rust, python) = both_accept_bundle(&vkey(), &before_stream_entries("bundle-full"));
    assert!(
        rust.contains("bundle ok: origin govgate.demo/local, entries 0..21 (21 checked), checkpoint of size 21, 7 payloads"),
        "{rust}"
    );
    assert!(!rust.contains("open streams"), "{rust}");
    assert!(
        python.starts_with("OK bundle origin=govgate.demo/local from=0 to=21 payloads=7"),
        "{python}"
    );

    let (rust, python) =
        both_accept_bundle(&vkey(), &before_stream_entries("bundle-model-support-chat"));
    assert!(
        rust.contains("sparse bundle (model=support-chat) ok: origin govgate.demo/local, entries 0..21 (7 checked), checkpoint of size 21, 3 payloads"),
        "{rust}"
    );
    assert!(
        python.starts_with("OK sparse bundle origin=govgate.demo/local from=0 to=21 size=21 entries=7 filter=[model=support-chat] payloads=3"),
        "{python}"
    );
}

#[test]
fn the_whole_old_log_verifies_as_a_log_with_the_independent_verifier() {
    let bundle = before_stream_entries("bundle-full");
    let output = crate::support::python_verifier(&[
        "log".as_ref(),
        "--vkey".as_ref(),
        vkey().as_ref(),
        "--entries".as_ref(),
        bundle.join("entries.jsonl").as_os_str(),
        "--checkpoint".as_ref(),
        bundle.join("checkpoint.txt").as_os_str(),
    ]);
    let said = crate::support::audit::said(&output);
    assert!(output.status.success(), "{said}");
    assert_eq!(
        said,
        "OK log origin=govgate.demo/local size=21 entries=21 rotations=0\n"
    );
}

/// Appends `n` gateway_started entries to the stopped gateway's store the
/// way earlier versions committed: straight to the sled store, flushed and
/// fsynced per commit, with no write-ahead file.
fn append_without_write_ahead_file(config: &std::path::Path, n: usize) {
    use govgate::ledger::entry::EntryBody;
    use govgate::ledger::sequencer::{Ledger, SequencerConfig};
    let env = govgate::config::Environment::fixed(
        std::collections::HashMap::from([("TEST_UPSTREAM_KEY".to_owned(), "s".to_owned())]),
        config.parent().unwrap(),
    );
    let text = std::fs::read_to_string(config).unwrap();
    let config = govgate::config::Config::parse(&text, "govgate.toml", &env).unwrap();
    let store =
        govgate::ledger::store::SledStore::open(&config.server.data_dir.join("ledger")).unwrap();
    let (ledger, writer) = Ledger::open(
        std::sync::Arc::new(store),
        SequencerConfig {
            origin: config.ledger.origin.clone(),
            signer: govgate::ledger::checkpoint::NoteSigner::new(
                &config.ledger.origin,
                config.ledger.signing_key.clone(),
            )
            .unwrap(),
            payload_mode: config.ledger.payload_mode,
            entry_signatures: config.ledger.entry_signatures,
            queue_len: 16,
            max_batch: 4,
            metrics: govgate::ledger::metrics::LedgerMetrics::new().unwrap(),
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for _ in 0..n {
        runtime
            .block_on(ledger.append(EntryBody::GatewayStarted {
                version: "0.0.0-earlier".to_owned(),
            }))
            .unwrap();
    }
    drop(ledger);
    writer.close();
}

#[tokio::test]
async fn a_store_written_without_a_write_ahead_file_opens_continues_and_verifies() {
    let upstream = crate::support::TestUpstream::start().await;
    let mut gateway = crate::support::Gateway::start(&crate::models(&upstream.url())).await;
    gateway.stop().await;
    // The store as an earlier version leaves it: sled alone.
    let ledger = gateway.dir.path().join("data/ledger");
    assert!(gateway.cli(&["verify"]).status.success());
    std::fs::remove_dir_all(ledger.join("wal")).unwrap();
    let config = gateway.dir.path().join("govgate.toml");
    // blocking: the writer threads and their own runtime.
    tokio::task::spawn_blocking(move || append_without_write_ahead_file(&config, 5))
        .await
        .unwrap();
    assert!(!ledger.join("wal").exists());

    gateway.restart().await;
    let entries = gateway.entries().await;
    let earlier = entries
        .iter()
        .filter(|e| e["gateway_version"] == "0.0.0-earlier")
        .count();
    assert_eq!(earlier, 5, "the earlier entries are read");
    let reply = gateway.infer("{}").await;
    assert_eq!(reply.status, 200);
    let receipt = gateway
        .get(&format!("/govgate/receipts/{}", reply.decision_id()))
        .await;
    assert_eq!(receipt.status, 200);
    assert!(
        ledger.join("wal").is_dir(),
        "the write-ahead file is new state"
    );
    gateway.stop().await;
    let verified = gateway.cli(&["verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

/// Bundles written before bundles carried their checkpoints, context
/// entries and file list, from a log with per-entry signatures, a key
/// rotation and an erasure.
fn before_bundle_evidence(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/upgrade/v0.1-57d6b4f")
        .join(name)
}

#[test]
fn bundles_from_before_carried_checkpoints_verify_with_both_verifiers() {
    let vkey = format!("@{}", before_bundle_evidence("log.vkey").display());
    let (rust, python) = both_accept_bundle(&vkey, &before_bundle_evidence("bundle-full"));
    assert!(
        rust.contains("bundle ok: origin govgate.example/fixture, entries 0..18 (18 checked), checkpoint of size 18, 8 payloads, 18 signatures, 1 key rotations"),
        "{rust}"
    );
    assert!(
        python.starts_with("OK bundle origin=govgate.example/fixture from=0 to=18 payloads=8 signatures=18 rotations=1"),
        "{python}"
    );
    // Its seq 3 payload was erased by an entry outside the range: the old
    // form cannot say so, and a missing line is not held against it.
    let from_3 = before_bundle_evidence("bundle-from-3");
    let rust = crate::support::audit::rust_bundle(&vkey, &from_3);
    assert!(
        rust.status.success(),
        "{}",
        crate::support::audit::said(&rust)
    );
    let python = crate::support::python_verifier(&[
        "bundle".as_ref(),
        "--vkey".as_ref(),
        vkey.as_ref(),
        from_3.as_os_str(),
    ]);
    assert!(
        python.status.success(),
        "{}",
        crate::support::audit::said(&python)
    );
    let (rust, python) = both_accept_bundle(&vkey, &before_bundle_evidence("bundle-model-scorer"));
    assert!(
        rust.contains("sparse bundle (model=unknown-2) ok"),
        "{rust}"
    );
    assert!(python.starts_with("OK sparse bundle"), "{python}");
}

/// The data directory (and key) written by the code before subjects.
fn before_subjects(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/upgrade/store-c7eabc9")
        .join(name)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(item.file_name());
        if item.path().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_from_before_subjects_opens_takes_subjects_and_erases_online() {
    use http::Method;
    use serde_json::json;
    let upstream = crate::support::TestUpstream::start().await;
    let models = format!(
        "[[models]]\nname = \"fresh\"\nprotocol = \"kserve_v2\"\n[models.subject]\nheader = \"x-subject-id\"\n\
         [[models.versions]]\nversion = \"1\"\nupstream = \"{}\"\n",
        upstream.url()
    );
    let mut gateway = crate::support::Gateway::start_pending("", &models).await;
    gateway.stop().await;
    // The old gateway's data directory and key in place of the new one's.
    let dir = gateway.dir.path().to_path_buf();
    std::fs::remove_dir_all(dir.join("data")).unwrap();
    copy_dir(&before_subjects("data"), &dir.join("data"));
    std::fs::copy(before_subjects("test.key"), dir.join("test.key")).unwrap();
    std::fs::remove_file(dir.join("test.key.state")).ok();
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(dir.join("test.key"), private).unwrap();
    }
    let vkey = std::fs::read_to_string(before_subjects("log.vkey")).unwrap();
    let vkey = vkey.trim();

    gateway.restart().await;
    let config = std::fs::read_to_string(dir.join("govgate.toml")).unwrap();
    crate::support::governance::approve_declared(&gateway.admin, &config).await;
    let old = gateway.decisions().await;
    assert_eq!(old.len(), 3, "the old decisions are read");
    assert!(old.iter().all(|d| d.get("subject").is_none()));
    let mut new = std::collections::BTreeSet::new();
    for n in 0..2 {
        let reply = crate::support::send(
            Method::POST,
            &gateway.url("/v2/models/fresh/infer"),
            &[("x-subject-id", "new-subject")],
            format!(r#"{{"inputs":[],"n":{n}}}"#),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        new.insert(reply.decision_id());
    }
    let erase = |body: serde_json::Value| {
        let admin = gateway.admin.clone();
        async move {
            let reply = crate::support::governance::admin_call(
                &admin,
                Some("ops"),
                Method::POST,
                "/admin/payloads/erase",
                &body.to_string(),
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.json()["decisions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["decision_id"].as_str().unwrap().to_owned())
                .collect::<std::collections::BTreeSet<_>>()
        }
    };
    assert_eq!(
        erase(json!({"subject": "new-subject", "reason": "DSR-9"})).await,
        new
    );
    let anns: std::collections::BTreeSet<String> = old
        .iter()
        .filter(|d| d["caller"] == "ann")
        .map(|d| d["decision_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(anns.len(), 2);
    assert_eq!(
        erase(json!({"caller": "ann", "reason": "DSR-9"})).await,
        anns
    );
    gateway.stop().await;

    let verified = gateway.cli(&["verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let bundle = dir.join("bundle");
    let exported = gateway.cli(&["export", "--payloads", "--out", bundle.to_str().unwrap()]);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let payloads = std::fs::read_to_string(bundle.join("payloads.jsonl")).unwrap();
    assert_eq!(
        payloads.lines().count(),
        1,
        "bob's payload is all that is left"
    );
    let (rust, python) = both_accept_bundle(vkey, &bundle);
    assert!(rust.contains("bundle ok"), "{rust}");
    assert!(python.starts_with("OK bundle"), "{python}");
}
