//! The ledger through the real proxy: an answer implies a durable entry
//! with a receipt that verifies against a signed checkpoint; SIGKILL under
//! load loses no acknowledged decision and the chain continues.

use crate::models;
use crate::support::load::Load;
use crate::support::{Gateway, TestUpstream, send};
use govgate::ledger::checkpoint::{Checkpoint, NoteVerifier, TlogProof};
use govgate::ledger::entry::{GENESIS_PREV_HASH, hex};
use govgate::ledger::tree::{Frontier, leaf_hash, verify_inclusion};
use http::Method;
use std::collections::HashSet;

/// Fetches and checks a decision's receipt: signed checkpoint, inclusion
/// of the entry's exact bytes, and the entry naming the decision.
async fn check_receipt(gateway: &Gateway, id: &str) -> Checkpoint {
    let proof = gateway.get(&format!("/govgate/receipts/{id}")).await;
    assert_eq!(proof.status, 200, "receipt of {id}");
    let entry = gateway.get(&format!("/govgate/receipts/{id}/entry")).await;
    assert_eq!(entry.status, 200);
    let proof = TlogProof::parse(std::str::from_utf8(&proof.body).unwrap()).unwrap();
    let verifier = NoteVerifier::parse(&gateway.vkey).unwrap();
    let checkpoint = Checkpoint::parse(verifier.open(&proof.signed_checkpoint).unwrap()).unwrap();
    assert_eq!(checkpoint.origin, crate::support::gateway::TEST_ORIGIN);
    assert!(
        verify_inclusion(
            &leaf_hash(&entry.body),
            proof.index,
            checkpoint.size,
            &proof.path,
            &checkpoint.root
        ),
        "inclusion proof of {id}"
    );
    let parsed = entry.json();
    assert_eq!(parsed["decision_id"], id);
    assert_eq!(parsed["seq"], proof.index);
    checkpoint
}

/// Checks the whole log: gap-free seqs, the BLAKE3 chain, and that the
/// latest signed checkpoint's root is the tree of exactly these entries.
async fn check_whole_log(gateway: &Gateway) -> Vec<serde_json::Value> {
    let lines = gateway.entry_lines().await;
    let mut prev = GENESIS_PREV_HASH.to_owned();
    let mut frontier = Frontier::new();
    let mut entries = Vec::new();
    for (seq, line) in lines.iter().enumerate() {
        let entry: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert_eq!(entry["seq"], seq as u64, "gap-free seq");
        assert_eq!(entry["prev_hash"], prev.as_str(), "chain link at {seq}");
        prev = hex(blake3::hash(line).as_bytes());
        frontier.push(leaf_hash(line));
        entries.push(entry);
    }
    let checkpoint = gateway.checkpoint().await;
    assert_eq!(checkpoint.size, lines.len() as u64);
    assert_eq!(
        checkpoint.root,
        frontier.root(),
        "signed root is the tree of the stored entries"
    );
    entries
}

#[tokio::test]
async fn every_answer_has_a_receipt_that_verifies_against_a_signed_checkpoint() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let mut sizes = Vec::new();
    for (method, path, body) in [
        (Method::POST, "/v2/models/scorer/infer", "{}"),
        (Method::POST, "/v1/chat/completions", r#"{"model":"ghost"}"#),
        (Method::GET, "/m/status/503", ""),
    ] {
        let reply = send(method, &gateway.url(path), &[], body).await;
        let id = reply.decision_id();
        assert_eq!(
            reply.headers["govgate-receipt"],
            format!("/govgate/receipts/{id}").as_str()
        );
        sizes.push(check_receipt(&gateway, &id).await.size);
    }
    assert!(
        sizes.windows(2).all(|w| w[0] < w[1]),
        "each answer waited for its own checkpoint: {sizes:?}"
    );
    let unknown = gateway
        .get("/govgate/receipts/00000000000000000000000000000000")
        .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.error_code()),
        (404, "unknown_decision".to_owned())
    );
    check_whole_log(&gateway).await;
}

#[tokio::test]
async fn sigkill_under_load_loses_no_acknowledged_decision() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let load = Load::start(&[gateway.url("/v2/models/scorer/infer")], 8, 2000);
    // Let the load run until 100 answers are out (however fast this
    // machine is), then kill the gateway without warning while it goes on.
    load.until(100).await;
    gateway.kill().await;
    let acknowledged: HashSet<String> = load.finish().await.into_iter().map(|(_, id)| id).collect();
    assert!(
        acknowledged.len() >= 100,
        "the load ran ({} answers)",
        acknowledged.len()
    );

    gateway.restart().await;
    let entries = check_whole_log(&gateway).await;
    let logged: HashSet<String> = entries
        .iter()
        .filter_map(|e| e["decision_id"].as_str().map(str::to_owned))
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&logged).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged decisions missing, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    assert_eq!(
        entries.last().unwrap()["kind"],
        "gateway_started",
        "the restart continues the chain"
    );

    // And it keeps serving, on the same chain.
    let reply = gateway.infer("{}").await;
    check_receipt(&gateway, &reply.decision_id()).await;
    check_whole_log(&gateway).await;
}

#[tokio::test]
async fn the_independent_python_verifier_accepts_real_logs_and_receipts_and_rejects_tampering() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let mut ids = Vec::new();
    for (method, path, body) in [
        (
            Method::POST,
            "/v2/models/scorer/infer",
            r#"{"inputs":[{"name":"x","data":["é ü \u0001"]}]}"#,
        ),
        (
            Method::POST,
            "/v1/chat/completions",
            r#"{"model":"chat","messages":[]}"#,
        ),
        (Method::POST, "/v1/chat/completions", "not json"),
        (Method::GET, "/m/status/500", ""),
    ] {
        let reply = send(
            method,
            &gateway.url(path),
            &[("x-govgate-caller", "ä \"quoted\" caller")],
            body,
        )
        .await;
        ids.push(reply.decision_id());
    }
    let dir = tempfile::tempdir().unwrap();
    let entries = send(
        Method::GET,
        &format!("{}/ledger/entries?from=0&count=1000", gateway.admin),
        &[],
        "",
    )
    .await;
    let checkpoint = send(
        Method::GET,
        &format!("{}/ledger/checkpoint", gateway.admin),
        &[],
        "",
    )
    .await;
    let (entries_file, checkpoint_file) = (
        dir.path().join("entries.jsonl"),
        dir.path().join("checkpoint.txt"),
    );
    std::fs::write(&entries_file, &entries.body).unwrap();
    std::fs::write(&checkpoint_file, &checkpoint.body).unwrap();
    let vkey = std::ffi::OsString::from(&gateway.vkey);
    let log_args = |entries: &std::path::Path| {
        vec![
            std::ffi::OsString::from("log"),
            "--vkey".into(),
            vkey.clone(),
            "--entries".into(),
            entries.into(),
            "--checkpoint".into(),
            checkpoint_file.clone().into(),
        ]
    };

    let accepted = crate::support::python_verifier(&log_args(&entries_file));
    assert!(
        accepted.status.success(),
        "{}{}",
        String::from_utf8_lossy(&accepted.stdout),
        String::from_utf8_lossy(&accepted.stderr)
    );

    for id in &ids {
        let proof = gateway.get(&format!("/govgate/receipts/{id}")).await;
        let entry = gateway.get(&format!("/govgate/receipts/{id}/entry")).await;
        let (proof_file, entry_file) =
            (dir.path().join("proof.txt"), dir.path().join("entry.json"));
        std::fs::write(&proof_file, &proof.body).unwrap();
        std::fs::write(&entry_file, &entry.body).unwrap();
        let args = [
            std::ffi::OsString::from("receipt"),
            "--vkey".into(),
            vkey.clone(),
            "--entry".into(),
            entry_file.into(),
            "--proof".into(),
            proof_file.into(),
        ];
        let receipt = crate::support::python_verifier(&args);
        assert!(
            receipt.status.success(),
            "receipt of {id}: {}",
            String::from_utf8_lossy(&receipt.stdout)
        );
    }

    // One changed byte in the first decision's entry (the caller name):
    // rejected, its seq named.
    let tampered = String::from_utf8(entries.body.to_vec()).unwrap();
    let mut lines: Vec<String> = tampered.lines().map(str::to_owned).collect();
    let first_decision = lines.iter().position(|l| l.contains("quoted")).unwrap();
    lines[first_decision] = lines[first_decision].replacen("quoted", "qu0ted", 1);
    let tampered_file = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered_file, lines.join("\n") + "\n").unwrap();
    let rejected = crate::support::python_verifier(&log_args(&tampered_file));
    let said = String::from_utf8_lossy(&rejected.stdout).into_owned()
        + &String::from_utf8_lossy(&rejected.stderr);
    assert_eq!(rejected.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("seq {first_decision}")), "{said}");
    assert!(
        tampered.contains(r#""caller":"ä \"quoted\" caller""#),
        "non-ASCII caller kept"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn govgate_verify_checks_a_stopped_gateways_ledger_and_names_a_foreign_key() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let start_entries = gateway.entries().await.len();
    for _ in 0..5 {
        gateway.infer("{}").await;
    }
    let busy = gateway.cli(&["verify"]);
    assert_eq!(
        busy.status.code(),
        Some(2),
        "the running gateway holds the store"
    );
    assert!(String::from_utf8_lossy(&busy.stderr).contains("in use by a running gateway (locked)"));
    gateway.stop().await;

    let ok = gateway.cli(&["verify"]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // The start's entries, 5 decisions and gateway_stopped.
    let total = start_entries + 6;
    assert!(
        stdout.contains(&format!("ledger ok: {total} entries")),
        "{stdout}"
    );

    // The same store checked with another key: the first checkpoint is not ours.
    let (other, _) = gateway.config_with_new_key("other");
    let refused = gateway.cli_with(&other, &["verify"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("first bad seq 0") && stderr.contains("no signature by key"),
        "{stderr}"
    );
}

#[tokio::test]
async fn start_up_refuses_a_store_that_does_not_match_its_key_naming_the_seq() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    gateway.infer("{}").await;
    gateway.stop().await;
    // Same store, another signing key: the latest checkpoint is not ours.
    let (impostor, _) = gateway.config_with_new_key("impostor");
    let started = gateway.cli_with(&impostor, &["serve"]);
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert!(!started.status.success(), "refused to start");
    assert!(
        stderr.contains("does not verify at seq 2") && stderr.contains("latest checkpoint"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&started.stdout).contains("ready"));
}

#[tokio::test]
async fn quarantine_moves_a_damaged_ledger_aside_only_when_told_and_starts_a_new_one() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    gateway.infer("{}").await;
    gateway.stop().await;
    // The key file replaced: the stored checkpoints are no longer ours.
    let key = gateway.dir.path().join("test.key");
    std::fs::remove_file(&key).unwrap();
    gateway.vkey = crate::support::gateway::keygen(&key, crate::support::gateway::TEST_ORIGIN);
    let refused = gateway.cli(&["serve"]);
    assert!(!refused.status.success(), "refused without the flag");
    let data = gateway.dir.path().join("data");
    let listing = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(listing(), vec!["ledger"], "nothing moved without the flag");

    gateway.restart_with(&["--quarantine-damaged-ledger"]).await;
    let names = listing();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[1].starts_with("ledger.damaged-"), "{names:?}");
    let entries = gateway.entries().await;
    assert_eq!(entries[0]["kind"], "ledger_restarted");
    assert_eq!(entries[0]["damaged_store"], names[1].as_str());
    let reason = entries[0]["reason"].as_str().unwrap();
    assert!(reason.contains("first bad seq"), "{reason}");
    assert_eq!(entries[1]["kind"], "entry_signatures_set");
    assert_eq!(entries[2]["kind"], "gateway_started");
    // Approvals lived in the damaged ledger: the new one starts with the
    // declared versions proposed again, and nothing served until approved.
    assert_eq!(entries[3]["kind"], "version_proposed");
    assert_eq!(
        gateway.infer("{}").await.error_code(),
        "model_version_not_approved"
    );
    let config = std::fs::read_to_string(gateway.dir.path().join("govgate.toml")).unwrap();
    crate::support::governance::approve_declared(&gateway.admin, &config).await;
    assert_eq!(gateway.infer("{}").await.status, 200);
    gateway.stop().await;
    let verified = gateway.cli(&["verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // The damaged store is kept as it was: the old ledger's files are there.
    assert!(data.join(&names[1]).join("db").exists());
}

/// `bundle --vkey VKEY DIR` for the independent verifier.
fn bundle_args(vkey: &str, dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    vec!["bundle".into(), "--vkey".into(), vkey.into(), dir.into()]
}

#[tokio::test]
async fn exported_bundles_verify_independently_whole_and_in_part() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let start_entries = gateway.entries().await.len();
    for i in 0..12 {
        let body = format!(r#"{{"inputs":[{{"name":"x","data":[{i}]}}]}}"#);
        gateway.infer(body).await;
    }
    gateway.stop().await;
    let bundles = tempfile::tempdir().unwrap();
    let (whole, part) = (bundles.path().join("whole"), bundles.path().join("part"));
    let (whole_arg, part_arg) = (whole.to_str().unwrap(), part.to_str().unwrap());
    let done = gateway.cli(&["export", "--payloads", "--out", whole_arg]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // The start's entries, 12 decisions and gateway_stopped.
    let total = start_entries + 13;
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        said.contains(&format!("entries 0..{total}, 12 payloads")),
        "{said}"
    );
    assert!(
        !gateway
            .cli(&["export", "--out", whole_arg])
            .status
            .success(),
        "never writes into an existing directory"
    );
    let done = gateway.cli(&[
        "export",
        "--from",
        "5",
        "--to",
        "9",
        "--payloads",
        "--out",
        part_arg,
    ]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(part.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["from"], 5);
    assert_eq!(
        manifest["prefix"].as_array().unwrap().len(),
        2,
        "5 = 4 + 1: two subtrees left of the range"
    );
    for dir in [&whole, &part] {
        let checked = crate::support::python_verifier(&bundle_args(&gateway.vkey, dir));
        assert!(
            checked.status.success(),
            "{}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }

    // A payload's bytes changed: its commitment no longer opens.
    let payloads = std::fs::read_to_string(whole.join("payloads.jsonl")).unwrap();
    let mut lines: Vec<serde_json::Value> = payloads
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seq = lines[3]["seq"].as_u64().unwrap();
    lines[3]["request"] = serde_json::Value::String(base64_of(b"{\"inputs\":[]}"));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(whole.join("payloads.jsonl"), text).unwrap();
    let rejected = crate::support::python_verifier(&bundle_args(&gateway.vkey, &whole));
    let said = String::from_utf8_lossy(&rejected.stdout).into_owned()
        + &String::from_utf8_lossy(&rejected.stderr);
    assert_eq!(rejected.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("seq {seq}")), "{said}");
}

#[tokio::test]
async fn erase_removes_the_payload_logs_the_erasure_and_everything_still_verifies() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let secret = gateway.infer(r#"{"name":"Jane Doe"}"#).await;
    let kept = gateway.infer("{}").await;
    gateway.stop().await;
    let id = secret.decision_id();
    let erased = gateway.cli(&[
        "erase",
        "--decision",
        &id,
        "--reason",
        "data subject request DSR-17",
    ]);
    assert!(
        erased.status.success(),
        "{}",
        String::from_utf8_lossy(&erased.stderr)
    );
    assert!(String::from_utf8_lossy(&erased.stdout).contains("payload erased"));
    let verified = gateway.cli(&["verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    let out = gateway.dir.path().join("bundle");
    let exported = gateway.cli(&["export", "--payloads", "--out", out.to_str().unwrap()]);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let payloads = std::fs::read_to_string(out.join("payloads.jsonl")).unwrap();
    assert!(
        !payloads.contains(&base64_of(br#"{"name":"Jane Doe"}"#)),
        "the erased body is gone from exports"
    );
    assert_eq!(
        payloads.lines().count(),
        1,
        "the other decision's payload is still there"
    );
    let entries = std::fs::read_to_string(out.join("entries.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(entries.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "payload_erased");
    assert_eq!(last["decision_id"], id.as_str());
    assert_eq!(last["reason"], "data subject request DSR-17");
    assert!(entries.contains(&kept.decision_id()));
    let checked = crate::support::python_verifier(&bundle_args(&gateway.vkey, &out));
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
}

#[tokio::test]
async fn govgate_proof_prints_the_served_receipt_and_consistency_proofs_that_verify() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let reply = gateway.infer("{}").await;
    let id = reply.decision_id();
    let served = gateway.get(&format!("/govgate/receipts/{id}")).await;
    let old = check_receipt(&gateway, &id).await;
    for _ in 0..5 {
        gateway.infer("{}").await;
    }
    let new = gateway.checkpoint().await;
    gateway.stop().await;
    let printed = gateway.cli(&["proof", "--decision", &id]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert_eq!(
        printed.stdout,
        served.body.to_vec(),
        "the same receipt, offline"
    );

    let (old_size, new_size) = (old.size.to_string(), new.size.to_string());
    let printed = gateway.cli(&["proof", "--old", &old_size, "--new", &new_size]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    use base64::Engine;
    let proof: Vec<govgate::ledger::tree::Hash> = String::from_utf8(printed.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            base64::engine::general_purpose::STANDARD
                .decode(line)
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    assert!(govgate::ledger::tree::verify_consistency(
        old.size, new.size, &old.root, &new.root, &proof
    ));
    assert!(
        !gateway
            .cli(&["proof", "--old", "1", "--new", "999"])
            .status
            .success()
    );
}

#[tokio::test]
async fn per_entry_signatures_are_served_exported_and_verified() {
    let upstream = TestUpstream::start().await;
    let rest = format!("entry_signatures = \"on\"\n{}", models(&upstream.url()));
    let mut gateway = Gateway::start(&rest).await;
    let start_entries = gateway.entries().await.len();
    let reply = gateway.infer("{}").await;
    let id = reply.decision_id();
    let signature = gateway
        .get(&format!("/govgate/receipts/{id}/signature"))
        .await;
    assert_eq!(signature.status, 200);
    let entry = gateway.get(&format!("/govgate/receipts/{id}/entry")).await;
    use base64::Engine;
    let signature: [u8; 64] = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8_lossy(&signature.body).trim())
        .unwrap()
        .try_into()
        .unwrap();
    let verifier = NoteVerifier::parse(&gateway.vkey).unwrap();
    assert!(verifier.verify_entry(&entry.body, &signature));
    let mut altered = entry.body.to_vec();
    altered[5] ^= 1;
    assert!(!verifier.verify_entry(&altered, &signature));
    gateway.stop().await;
    assert!(gateway.cli(&["verify"]).status.success());
    let out = gateway.dir.path().join("bundle");
    assert!(
        gateway
            .cli(&["export", "--out", out.to_str().unwrap()])
            .status
            .success()
    );
    let lines = std::fs::read_to_string(out.join("signatures.jsonl")).unwrap();
    let total = start_entries + 2;
    assert_eq!(
        lines.lines().count(),
        total,
        "the start's entries, the decision and gateway_stopped: every entry signed"
    );
    let checked = crate::support::python_verifier(&bundle_args(&gateway.vkey, &out));
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success() && said.contains(&format!("signatures={total}")),
        "{said}"
    );
}

#[tokio::test]
async fn key_rotation_is_an_entry_under_the_old_key_and_verification_follows_it() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let before = gateway.infer("{}").await;
    gateway.stop().await;
    let original_vkey = gateway.vkey.clone();
    let (next_config, next_vkey) = gateway.config_with_new_key("next");
    let next_key = gateway.dir.path().join("next.key");
    let rotated = gateway.cli(&["rotate-key", "--new-key", next_key.to_str().unwrap()]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(String::from_utf8_lossy(&rotated.stdout).contains(&next_vkey));

    // Switch the gateway to the new key, as an operator would.
    std::fs::copy(
        gateway.dir.path().join(&next_config),
        gateway.dir.path().join("govgate.toml"),
    )
    .unwrap();
    gateway.vkey = next_vkey.clone();
    gateway.restart().await;
    let after = gateway.infer("{}").await;
    check_receipt(&gateway, &after.decision_id()).await;
    let entries = gateway.entries().await;
    let rotation = entries
        .iter()
        .find(|e| e["kind"] == "key_rotated")
        .expect("rotation entry");
    assert_eq!(rotation["old_vkey"], original_vkey.as_str());
    assert_eq!(rotation["new_vkey"], next_vkey.as_str());
    gateway.stop().await;

    let verified = gateway.cli(&["verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // An auditor who holds only the first key follows the rotation.
    let out = gateway.dir.path().join("bundle");
    assert!(
        gateway
            .cli(&["export", "--out", out.to_str().unwrap()])
            .status
            .success()
    );
    let checked = crate::support::python_verifier(&bundle_args(&original_vkey, &out));
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success() && said.contains("rotations=1"),
        "{said}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // Still the old key configured: the log says otherwise.
    let stale = "stale.toml";
    let text = std::fs::read_to_string(gateway.dir.path().join("govgate.toml"))
        .unwrap()
        .replace("\"next.key\"", "\"test.key\"");
    std::fs::write(gateway.dir.path().join(stale), text).unwrap();
    let refused = gateway.cli_with(stale, &["verify"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("does not end at the configured key")
    );
    // Receipts issued before the rotation still verify with the old key.
    let _ = before;
}
