//! Continuous verification of a running gateway's ledger: background
//! rounds that find a store damaged underneath and raise the metric the
//! critical alert watches, and `govgate verify --admin-url`, all while
//! requests keep flowing without a single failure.

use crate::failclosed::start_on_store;
use crate::models;
use crate::support::governance::{admin_call, token};
use crate::support::{Gateway, TestUpstream, send};
use govgate::ledger::memstore::MemStore;
use http::Method;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Requests sent one after another by a few clients until stopped.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>,
}

impl Load {
    pub(crate) fn start(infer: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..3)
            .map(|_| {
                let (stop, infer) = (stop.clone(), infer.to_owned());
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        let reply = send(Method::POST, &infer, &[], r#"{"inputs":[1]}"#).await;
                        if reply.status == 200 {
                            ok += 1;
                        } else {
                            failed.push(format!("{} {}", reply.status, reply.text()));
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Load { stop, clients }
    }

    /// Stops; every answer must have been a 200.
    pub(crate) async fn stop_all_served(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let mut served = 0;
        for client in self.clients {
            let (ok, failed) = client.await.unwrap();
            assert!(failed.is_empty(), "requests failed under load: {failed:?}");
            served += ok;
        }
        assert!(served > 0, "the load sent nothing");
        served
    }
}

/// `GET /admin/ledger/verification` as the auditor, until `ready` holds (10 s).
async fn status_when(admin: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let mut status = Value::Null;
    for _ in 0..200 {
        let reply = admin_call(
            admin,
            Some("auditor"),
            Method::GET,
            "/admin/ledger/verification",
            "",
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        status = reply.json();
        if ready(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the verification status never got there: {status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_verification_finds_a_store_damaged_underneath_and_raises_the_alert_metric() {
    let upstream = TestUpstream::start().await;
    let store = Arc::new(MemStore::new());
    let (base, admin, stop, server) = start_on_store(
        &upstream,
        // Unpaced: rounds here must each end within the 2 s between full
        // ones however busy the machine (the pacing has tests of its own).
        "verify_every_secs = 1\nverify_full_every_secs = 2\nverify_cpu_share = 1",
        store.clone(),
    )
    .await;
    let load = Load::start(&format!("{base}/v2/models/scorer/infer"));

    // Rounds go on by themselves: incremental ones between full ones, each
    // recorded in the ledger.
    let verified = status_when(&admin, |s| {
        s["last"]["mode"] == "incremental"
            && s["last"]["result"] == "ok"
            && s["last_full"]["result"] == "ok"
    })
    .await;
    assert!(
        verified["last"]["from_seq"].as_u64().unwrap() > 0,
        "{verified:#}"
    );
    let metrics = send(Method::GET, &format!("{admin}/metrics"), &[], "")
        .await
        .text();
    assert!(
        metrics.contains("govgate_ledger_verification_failed 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"govgate_ledger_verifications_total{mode="incremental",result="ok"}"#),
        "{metrics}"
    );

    // An old entry changes underneath the running gateway: the next full
    // round finds it.
    store.tamper(|entries, _| {
        let entry = entries.get_mut(&3).expect("entry 3");
        let at = entry.len() - 3;
        entry[at] ^= 1;
    });
    let failed = status_when(&admin, |s| s["last"]["result"] == "failed").await;
    assert_eq!(failed["last"]["mode"], "full", "{failed:#}");
    assert_eq!(failed["last"]["bad_seq"], 3, "{failed:#}");
    assert!(
        failed["last"]["recorded_seq"].is_u64(),
        "the failure is in the ledger: {failed:#}"
    );
    let metrics = send(Method::GET, &format!("{admin}/metrics"), &[], "")
        .await
        .text();
    assert!(
        metrics.contains("govgate_ledger_verification_failed 1"),
        "{metrics}"
    );

    load.stop_all_served().await;
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn govgate_verify_admin_url_verifies_a_running_gateway_under_steady_load() {
    let upstream = TestUpstream::start().await;
    // No background rounds: the one verification is the one asked for.
    let gateway = Gateway::start(&format!(
        "verify_every_secs = 0\n{}",
        models(&upstream.url())
    ))
    .await;
    for _ in 0..20 {
        assert_eq!(gateway.infer(r#"{"inputs":[1]}"#).await.status, 200);
    }
    let load = Load::start(&gateway.url("/v2/models/scorer/infer"));
    let cli = |principal: &'static str| {
        let admin = gateway.admin.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
                .args(["verify", "--admin-url", &admin])
                .env("GOVGATE_TOKEN", token(principal))
                .output()
                .unwrap()
        })
    };

    let refused = cli("rita").await.unwrap();
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a reviewer may not start one"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("forbidden"));

    let verified = cli("auditor").await.unwrap();
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        said.starts_with("ledger ok: the running gateway verified "),
        "{said}"
    );
    load.stop_all_served().await;

    let recorded: Vec<Value> = gateway
        .entries()
        .await
        .into_iter()
        .filter(|entry| entry["kind"] == "ledger_verified")
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["mode"], "full");
    assert_eq!(recorded[0]["result"], "ok");
    assert_eq!(recorded[0]["from_seq"], 0);
    assert!(
        recorded[0]["to_size"].as_u64().unwrap() > 20,
        "{recorded:?}"
    );
    let anonymous = send(
        Method::GET,
        &format!("{}/admin/ledger/verification", gateway.admin),
        &[],
        "",
    )
    .await;
    assert_eq!(anonymous.status, 401);
}

/// Checks `id`'s receipt: its checkpoint opens with `vkey` (and only so)
/// and includes the entry's exact bytes.
async fn receipt_verifies_with(gateway: &Gateway, id: &str, vkey: &str, not: &str) {
    use govgate::ledger::checkpoint::{Checkpoint, NoteVerifier, TlogProof};
    use govgate::ledger::tree::{leaf_hash, verify_inclusion};
    let proof = gateway.get(&format!("/govgate/receipts/{id}")).await;
    assert_eq!(proof.status, 200, "receipt of {id}");
    let entry = gateway.get(&format!("/govgate/receipts/{id}/entry")).await;
    let proof = TlogProof::parse(std::str::from_utf8(&proof.body).unwrap()).unwrap();
    let opened = NoteVerifier::parse(vkey)
        .unwrap()
        .open(&proof.signed_checkpoint)
        .map(str::to_owned);
    let checkpoint = Checkpoint::parse(&opened.expect("signed by the expected key")).unwrap();
    assert!(
        NoteVerifier::parse(not)
            .unwrap()
            .open(&proof.signed_checkpoint)
            .is_err(),
        "not signed by the other key"
    );
    assert!(verify_inclusion(
        &leaf_hash(&entry.body),
        proof.index,
        checkpoint.size,
        &proof.path,
        &checkpoint.root
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_key_rotation_under_steady_load_keeps_receipts_of_both_keys_verifying() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&format!(
        "verify_every_secs = 0\n{}",
        models(&upstream.url())
    ))
    .await;
    let before = gateway.infer(r#"{"inputs":[1]}"#).await.decision_id();
    let old_vkey = gateway.vkey.clone();
    let key_file = gateway.dir.path().join("test.key");
    let old_key = std::fs::read(&key_file).unwrap();
    let load = Load::start(&gateway.url("/v2/models/scorer/infer"));
    let cli = |principal: &'static str, args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"));
        command.args(args).env("GOVGATE_TOKEN", token(principal));
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };

    let refused = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::POST,
        "/admin/ledger/rotate-key",
        "",
    )
    .await;
    assert_eq!(refused.status, 403, "only an admin rotates");
    let admin = gateway.admin.clone();
    let rotated = cli("ops", &["rotate-key", "--admin-url", &admin])
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(
        rotated.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let new_vkey = said.lines().last().unwrap().to_owned();
    assert!(said.contains(&old_vkey), "{said}");
    assert_ne!(new_vkey, old_vkey);
    let after = gateway.infer(r#"{"inputs":[2]}"#).await.decision_id();
    // The running gateway's own verification follows the rotation.
    let verified = cli("auditor", &["verify", "--admin-url", &admin])
        .await
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    load.stop_all_served().await;

    let shown = send(Method::GET, &format!("{admin}/ledger/key"), &[], "").await;
    assert_eq!(
        shown.text().trim(),
        new_vkey,
        "the admin port shows the key in force"
    );
    receipt_verifies_with(&gateway, &before, &old_vkey, &new_vkey).await;
    receipt_verifies_with(&gateway, &after, &new_vkey, &old_vkey).await;
    let entries = gateway.entries().await;
    let rotation = entries
        .iter()
        .find(|e| e["kind"] == "key_rotated")
        .expect("the rotation entry");
    assert_eq!(rotation["old_vkey"], old_vkey.as_str());
    assert_eq!(rotation["new_vkey"], new_vkey.as_str());
    // The key file now holds the new key, written whole.
    assert_ne!(std::fs::read(&key_file).unwrap(), old_key);
    assert!(!gateway.dir.path().join("test.key.next").exists());

    gateway.stop().await;
    gateway.vkey = new_vkey.clone();
    let offline = gateway.cli(&["verify"]);
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    // The key's history record names the new key: the gateway starts again.
    gateway.restart().await;
    assert_eq!(gateway.infer(r#"{"inputs":[3]}"#).await.status, 200);
    gateway.stop().await;
    // An auditor holding only the first key follows the rotation.
    let out = gateway.dir.path().join("bundle");
    let exported = gateway.cli(&["export", "--out", out.to_str().unwrap()]);
    assert!(exported.status.success());
    let checked = crate::support::python_verifier(&[
        std::ffi::OsString::from("bundle"),
        "--vkey".into(),
        old_vkey.clone().into(),
        out.into(),
    ]);
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success() && said.contains("rotations=1"),
        "{said}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}
