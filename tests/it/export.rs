//! Filtered exports and `govgate verify --bundle`: a time range gives
//! exactly the entries in it, a model filter exactly that model's
//! decisions and model-version entries (so approvals can be followed);
//! both verifiers (this one and the independent Python one)
//! accept them, and reject an altered byte, a removed entry, a wrong key
//! and a modified proof, naming the seq.

use crate::models;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Runs tools/govgate_verify.py `bundle --vkey VKEY DIR`.
fn python_bundle(vkey: &str, dir: &Path) -> std::process::Output {
    crate::support::python_verifier(&[
        "bundle".as_ref(),
        "--vkey".as_ref(),
        vkey.as_ref(),
        dir.as_os_str(),
    ])
}

/// `govgate verify --bundle DIR --vkey VKEY`.
fn rust_bundle(gateway: &Gateway, vkey: &str, dir: &Path) -> std::process::Output {
    gateway.cli(&["verify", "--bundle", dir.to_str().unwrap(), "--vkey", vkey])
}

fn said(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// Both verifiers accept the bundle.
fn both_accept(gateway: &Gateway, dir: &Path) {
    let rust = rust_bundle(gateway, &gateway.vkey, dir);
    assert!(
        rust.status.success(),
        "govgate verify --bundle: {}",
        said(&rust)
    );
    let python = python_bundle(&gateway.vkey, dir);
    assert!(python.status.success(), "python: {}", said(&python));
}

/// Both verifiers reject the bundle with exit 1 and say `needle`, after
/// its file list was made to match (as a forger would).
fn both_reject(gateway: &Gateway, vkey: &str, dir: &Path, needle: &str) {
    crate::support::audit::refresh_file_list(dir);
    let rust = rust_bundle(gateway, vkey, dir);
    assert_eq!(rust.status.code(), Some(1), "{}", said(&rust));
    assert!(
        said(&rust).contains(needle),
        "govgate says: {}",
        said(&rust)
    );
    let python = python_bundle(vkey, dir);
    assert_eq!(python.status.code(), Some(1), "{}", said(&python));
    assert!(
        said(&python).contains(needle),
        "python says: {}",
        said(&python)
    );
}

fn export(gateway: &Gateway, out: &Path, args: &[&str]) -> String {
    let mut all = vec!["export", "--payloads", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let done = gateway.cli(&all);
    assert!(done.status.success(), "export {args:?}: {}", said(&done));
    String::from_utf8_lossy(&done.stdout).into_owned()
}

fn lines(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn entries(dir: &Path) -> Vec<Value> {
    lines(dir, "entries.jsonl")
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn write_lines(dir: &Path, file: &str, lines: &[String]) {
    std::fs::write(dir.join(file), lines.join("\n") + "\n").unwrap();
}

/// A copy of a bundle, to tamper with.
fn copy(dir: &Path, name: &str) -> PathBuf {
    let to = dir.with_file_name(name);
    std::fs::create_dir(&to).unwrap();
    for file in std::fs::read_dir(dir).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
    }
    to
}

async fn chat(gateway: &Gateway) -> String {
    send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[],
        r#"{"model":"chat","messages":[]}"#,
    )
    .await
    .decision_id()
}

fn now() -> String {
    govgate::ledger::entry::rfc3339_millis(SystemTime::now())
}

#[tokio::test]
async fn export_by_time_range_holds_exactly_the_entries_in_it_and_both_verifiers_check_it() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    let pause = || tokio::time::sleep(Duration::from_millis(30));
    for _ in 0..3 {
        gateway.infer("{}").await;
    }
    pause().await;
    let since = now();
    pause().await;
    let mut inside = Vec::new();
    for i in 0..4 {
        let reply = if i % 2 == 0 {
            gateway.infer("{}").await.decision_id()
        } else {
            chat(&gateway).await
        };
        inside.push(reply);
    }
    pause().await;
    let until = now();
    pause().await;
    for _ in 0..2 {
        gateway.infer("{}").await;
    }
    gateway.stop().await;

    let bundles = tempfile::tempdir().unwrap();
    let whole = bundles.path().join("whole");
    export(&gateway, &whole, &[]);
    both_accept(&gateway, &whole);
    let expected: Vec<Value> = entries(&whole)
        .into_iter()
        .filter(|e| {
            let time = e["time"].as_str().unwrap();
            since.as_str() <= time && time < until.as_str()
        })
        .collect();

    let range = bundles.path().join("range");
    let printed = export(&gateway, &range, &["--since", &since, "--until", &until]);
    assert!(printed.contains("sparse: 4 selected entries"), "{printed}");
    let got = entries(&range);
    assert_eq!(
        got, expected,
        "exactly the entries with since <= time < until"
    );
    let ids: Vec<&str> = got
        .iter()
        .map(|e| e["decision_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, inside);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(range.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "govgate-bundle-sparse/1");
    assert_eq!(manifest["filter"]["since"], since.as_str());
    assert_eq!(lines(&range, "payloads.jsonl").len(), 4);
    both_accept(&gateway, &range);

    // An entry removed (its proof too): the range is no longer gap-free.
    let removed = copy(&range, "removed");
    let seq = got[2]["seq"].as_u64().unwrap();
    for file in ["entries.jsonl", "proofs.jsonl", "payloads.jsonl"] {
        let mut kept = lines(&removed, file);
        kept.remove(2);
        write_lines(&removed, file, &kept);
    }
    both_reject(&gateway, &gateway.vkey, &removed, &format!("seq {seq}"));

    // A contiguous bundle altered in one byte: the altered seq is named.
    let altered = copy(&whole, "altered");
    let mut all = lines(&altered, "entries.jsonl");
    let decision = all.iter().position(|l| l.contains("anonymous")).unwrap();
    all[decision] = all[decision].replacen("anonymous", "anonymouz", 1);
    write_lines(&altered, "entries.jsonl", &all);
    both_reject(
        &gateway,
        &gateway.vkey,
        &altered,
        &format!("seq {decision}"),
    );

    let nothing = gateway.cli(&[
        "export",
        "--out",
        bundles.path().join("none").to_str().unwrap(),
        "--since",
        &until,
        "--until",
        &until,
    ]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        said(&nothing).contains("nothing to export"),
        "{}",
        said(&nothing)
    );
    let bad_time = gateway.cli(&["export", "--out", "x", "--since", "yesterday"]);
    assert_eq!(bad_time.status.code(), Some(2), "{}", said(&bad_time));
}

#[tokio::test]
async fn export_by_model_holds_exactly_its_decisions_and_approvals_and_tampering_is_named_by_both_verifiers()
 {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    for i in 0..9 {
        if i % 3 == 0 {
            chat(&gateway).await;
        } else {
            gateway
                .infer(format!(r#"{{"inputs":[{{"data":[{i}]}}]}}"#))
                .await;
        }
    }
    gateway.stop().await;
    let bundles = tempfile::tempdir().unwrap();
    let whole = bundles.path().join("whole");
    export(&gateway, &whole, &[]);
    let expected: Vec<Value> = entries(&whole)
        .into_iter()
        .filter(|e| {
            let kind = e["kind"].as_str().unwrap();
            e["model"] == "scorer" && (kind == "decision" || kind.starts_with("version_"))
        })
        .collect();
    // Line indexes of the decisions; the rest are scorer's model-version
    // entries, written at start before any decision.
    let decisions: Vec<usize> = (0..expected.len())
        .filter(|i| expected[*i]["kind"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 6);
    assert!(
        decisions[0] > 0,
        "the gateway approved scorer's versions at start"
    );

    let scorer = bundles.path().join("scorer");
    export(&gateway, &scorer, &["--model", "scorer"]);
    let got = entries(&scorer);
    assert_eq!(
        got, expected,
        "exactly the scorer decisions and model-version entries"
    );
    assert_eq!(lines(&scorer, "proofs.jsonl").len(), expected.len());
    assert_eq!(lines(&scorer, "payloads.jsonl").len(), 6);
    // Each decision's approval is in the bundle: a completed approval of
    // its model and version.
    for &i in &decisions {
        let decision = &got[i];
        let approval_seq = decision["approval_seq"]
            .as_u64()
            .expect("served by an approved version");
        let approval = got
            .iter()
            .find(|e| e["seq"] == approval_seq)
            .unwrap_or_else(|| panic!("approval {approval_seq} in the bundle"));
        assert_eq!(approval["kind"], "version_approved");
        assert_eq!(approval["state"], "approved");
        assert_eq!(approval["model"], "scorer");
        assert_eq!(approval["version"], decision["version"]);
    }
    both_accept(&gateway, &scorer);
    let ok = rust_bundle(&gateway, &gateway.vkey, &scorer);
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("sparse bundle (model=scorer) ok"),
        "{}",
        said(&ok)
    );

    // From the third decision on: the approvals, before it, still come along.
    let later = bundles.path().join("later");
    let from = expected[decisions[2]]["seq"].as_u64().unwrap().to_string();
    export(&gateway, &later, &["--model", "scorer", "--from", &from]);
    let versions = |bundle: &[Value]| -> Vec<Value> {
        bundle
            .iter()
            .filter(|e| e["kind"] != "decision")
            .cloned()
            .collect()
    };
    let later_entries = entries(&later);
    assert_eq!(versions(&later_entries), versions(&expected));
    assert_eq!(later_entries.len(), expected.len() - 2);
    both_accept(&gateway, &later);

    let seq_of = |i: usize| expected[decisions[i]]["seq"].as_u64().unwrap();
    // One byte of an entry.
    let altered = copy(&scorer, "altered");
    let mut all = lines(&altered, "entries.jsonl");
    let line = decisions[1];
    all[line] = all[line].replacen("\"served\"", "\"denied\"", 1);
    write_lines(&altered, "entries.jsonl", &all);
    both_reject(
        &gateway,
        &gateway.vkey,
        &altered,
        &format!("seq {}", seq_of(1)),
    );

    // An entry removed, its proof left behind.
    let removed = copy(&scorer, "removed");
    for (file, line) in [("entries.jsonl", decisions[3]), ("payloads.jsonl", 3)] {
        let mut kept = lines(&removed, file);
        kept.remove(line);
        write_lines(&removed, file, &kept);
    }
    both_reject(
        &gateway,
        &gateway.vkey,
        &removed,
        &format!("seq {}", seq_of(3)),
    );

    // The first decision's approval removed with its proof: nothing is
    // missing a proof, but the decision's approval_seq leads nowhere.
    let unapproved = copy(&scorer, "unapproved");
    let approval_seq = got[decisions[0]]["approval_seq"].as_u64().unwrap();
    let approval_line = got.iter().position(|e| e["seq"] == approval_seq).unwrap();
    for file in ["entries.jsonl", "proofs.jsonl"] {
        let mut kept = lines(&unapproved, file);
        kept.remove(approval_line);
        write_lines(&unapproved, file, &kept);
    }
    both_reject(
        &gateway,
        &gateway.vkey,
        &unapproved,
        &format!("seq {}", seq_of(0)),
    );
    let rust = said(&rust_bundle(&gateway, &gateway.vkey, &unapproved));
    assert!(
        rust.contains(&format!("approval_seq {approval_seq} is not in the bundle")),
        "{rust}"
    );

    // One hash of a proof.
    let proof = copy(&scorer, "proof");
    let mut all = lines(&proof, "proofs.jsonl");
    let at = decisions[4];
    let mut line: Value = serde_json::from_str(&all[at]).unwrap();
    let hash = line["path"][0].as_str().unwrap().to_owned();
    let flipped = if hash.starts_with('A') { "B" } else { "A" };
    line["path"][0] = Value::String(format!("{flipped}{}", &hash[1..]));
    all[at] = line.to_string();
    write_lines(&proof, "proofs.jsonl", &all);
    both_reject(
        &gateway,
        &gateway.vkey,
        &proof,
        &format!("seq {}", seq_of(4)),
    );

    // Another key than the log's: the checkpoint is not signed by it.
    let other = crate::support::gateway::keygen(
        &bundles.path().join("other.key"),
        crate::support::gateway::TEST_ORIGIN,
    );
    both_reject(&gateway, &other, &scorer, "checkpoint");

    // No key pinned, or no bundle there: cannot check (exit 2).
    let unpinned = gateway.cli(&["verify", "--bundle", scorer.to_str().unwrap()]);
    assert_eq!(unpinned.status.code(), Some(2), "{}", said(&unpinned));
    let absent = rust_bundle(&gateway, &gateway.vkey, &bundles.path().join("absent"));
    assert_eq!(absent.status.code(), Some(2), "{}", said(&absent));
}
