//! The one-pass sparse verification says what the in-memory one says:
//! the same report for bundles as exported, the same first problem for
//! every line of every file removed, repeated, swapped with the next or
//! altered.

use super::*;
use crate::decision::{Capture, Decision, EntrySignatures, Outcome, StreamEnd, fixture};
use crate::ledger::entry::EntryBody;
use crate::ledger::export::{Filter, export_filtered};
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, SequencerConfig};
use crate::ledger::store::LedgerStore;
use ed25519_dalek::SigningKey;
use std::sync::Arc;

const ORIGIN: &str = "test.example/sparse-stream";
const KEY: [u8; 32] = [5; 32];

fn verifier() -> NoteVerifier {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&KEY).verifying_key()).unwrap()
}

fn version(kind: &'static str, state: &str) -> EntryBody {
    let members = serde_json::json!({
        "model": "a",
        "version": "1",
        "principal": "root",
        "principal_roles": ["admin"],
        "change_ref": "CHG-1",
        "risk_class": "limited",
        "approvals": [],
        "state": state,
    });
    let Value::Object(members) = members else {
        unreachable!()
    };
    EntryBody::Governance { kind, members }
}

fn decision(model: &str, outcome: Outcome, approval_seq: Option<u64>) -> Decision {
    Decision {
        model: Some(model.into()),
        version: Some("1".into()),
        outcome,
        approval_seq,
        request: fixture::captured(b"{\"in\":1}"),
        response: match outcome {
            Outcome::Streaming => Capture::default(),
            _ => fixture::captured(b"{\"out\":2}"),
        },
        ..fixture::streamed_chat()
    }
}

fn end_of(decision: &Decision, decision_seq: u64) -> EntryBody {
    EntryBody::StreamEnded(Box::new(StreamEnd {
        decision_id: decision.id,
        decision_seq,
        model: decision.model.clone(),
        version: decision.version.clone(),
        outcome: Outcome::Served,
        error_code: None,
        released_bytes: 9,
        complete_us: 2500,
        response: Capture::of_complete(&bytes::Bytes::from_static(b"data: 1\n\n"), 64),
    }))
}

/// A store holding `bodies`, appended in order by a ledger with per-entry
/// signatures `signatures`.
async fn written(signatures: EntrySignatures, bodies: Vec<EntryBody>) -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(ORIGIN, &SigningKey::from_bytes(&KEY), signatures, 64, 4),
    )
    .unwrap();
    for body in bodies {
        ledger.append(body).await.unwrap();
    }
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    store
}

/// 0-1 model `a` proposed and approved; decisions of `a` (naming the
/// approval) and `b`, streamed ones ended later, one never; `a` retired.
/// Entries signed, payloads kept.
async fn ledger() -> Arc<MemStore> {
    let a3 = decision("a", Outcome::Streaming, Some(1));
    let b5 = decision("b", Outcome::Streaming, None);
    let bodies = vec![
        version("version_proposed", "proposed"),
        version("version_approved", "approved"),
        EntryBody::Decision(Box::new(decision("a", Outcome::Served, Some(1)))),
        EntryBody::Decision(Box::new(a3.clone())),
        EntryBody::Decision(Box::new(decision("b", Outcome::Served, None))),
        EntryBody::Decision(Box::new(b5.clone())),
        end_of(&a3, 3),
        EntryBody::Decision(Box::new(decision("a", Outcome::Served, Some(1)))),
        end_of(&b5, 5),
        EntryBody::Decision(Box::new(decision("a", Outcome::Streaming, Some(1)))),
        version("version_retired", "retired"),
    ];
    written(EntrySignatures::On, bodies).await
}

/// What a verification concluded, for comparing the two.
fn said(result: Result<(BundleReport, KeySchedule), BundleError>) -> String {
    match result {
        Ok((report, schedule)) => format!("ok {report:?} rotations {}", schedule.count()),
        Err(error) => format!("{error} ({:?})", error_seq(&error)),
    }
}

fn error_seq(error: &BundleError) -> Option<u64> {
    match error {
        BundleError::Bad { seq, .. } => *seq,
        _ => None,
    }
}

/// Both ways, on the bundle in `dir`; `None` for the one-pass way when it
/// hands the bundle to the in-memory one.
fn both(dir: &Path) -> (Option<String>, String) {
    let manifest = read_manifest(dir).unwrap();
    let note = read_text(dir, "checkpoint.txt").unwrap().unwrap();
    let claimed = peek_checkpoint(&note).unwrap();
    let key = verifier();
    let streamed = match sparse_stream::verify(dir, &manifest, &claimed, &key, None, &note) {
        Ok(Some(verified)) => Some(said(Ok(verified))),
        Ok(None) => None,
        Err(error) => Some(said(Err(error))),
    };
    let in_memory = said(in_memory(dir, &manifest, &claimed, &key, None, &note));
    (streamed, in_memory)
}

fn lines_of(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file))
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Every way of spoiling one line of `file`.
fn spoiled(lines: &[String], index: usize) -> Vec<(&'static str, Vec<String>)> {
    let mut ways = Vec::new();
    let mut removed = lines.to_vec();
    removed.remove(index);
    ways.push(("removed", removed));
    let mut repeated = lines.to_vec();
    repeated.insert(index, lines[index].clone());
    ways.push(("repeated", repeated));
    if index + 1 < lines.len() {
        let mut swapped = lines.to_vec();
        swapped.swap(index, index + 1);
        ways.push(("swapped", swapped));
    }
    // A digit or hex letter changed in the middle of the line (a seq, a
    // hash, a signature, a salt or a base64 byte).
    let line = &lines[index];
    let middle = line.len() / 2;
    if let Some(at) = (middle..line.len()).find(|&i| line.as_bytes()[i].is_ascii_alphanumeric()) {
        let mut altered = line.clone().into_bytes();
        altered[at] = if altered[at] == b'1' { b'2' } else { b'1' };
        let mut lines = lines.to_vec();
        lines[index] = String::from_utf8(altered).unwrap();
        ways.push(("altered", lines));
    }
    // The seq member changed.
    if let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(line)
        && let Some(seq) = object.get("seq").and_then(Value::as_u64)
    {
        object.insert("seq".into(), (seq + 1).into());
        let mut lines = lines.to_vec();
        lines[index] = crate::ledger::canonical::to_canonical(&Value::Object(object))
            .map(|bytes| String::from_utf8(bytes).unwrap())
            .unwrap();
        ways.push(("seq changed", lines));
    }
    ways
}

#[tokio::test]
async fn one_pass_and_in_memory_agree_on_every_spoiled_line_of_every_file() {
    let store = ledger().await;
    let tmp = tempfile::tempdir().unwrap();
    let filters = [
        (
            "model",
            2,
            Filter {
                model: Some("a".into()),
                ..Filter::default()
            },
        ),
        (
            "time",
            0,
            Filter {
                since: Some("1970-01-01T00:00:00Z".into()),
                ..Filter::default()
            },
        ),
    ];
    let mut compared = 0;
    for (name, from, filter) in filters {
        let dir = tmp.path().join(name);
        export_filtered(
            &*store,
            &verifier(),
            from,
            None,
            &filter,
            true,
            &dir,
            |_, _| {},
        )
        .unwrap();
        let (streamed, in_memory) = both(&dir);
        assert!(in_memory.starts_with("ok "), "{in_memory}");
        assert_eq!(streamed.as_deref(), Some(in_memory.as_str()), "{name}");
        for file in [
            "entries.jsonl",
            "proofs.jsonl",
            "signatures.jsonl",
            "payloads.jsonl",
        ] {
            let original = lines_of(&dir, file);
            assert!(!original.is_empty(), "{name} has {file}");
            for index in 0..original.len() {
                for (how, lines) in spoiled(&original, index) {
                    std::fs::write(dir.join(file), lines.join("\n") + "\n").unwrap();
                    evidence::refresh_file_list(&dir);
                    let (streamed, in_memory) = both(&dir);
                    let what = format!("{name} bundle, {file} line {} {how}", index + 1);
                    if let Some(streamed) = streamed {
                        assert_eq!(streamed, in_memory, "{what}");
                        compared += 1;
                    } else {
                        // Only a side file out of seq order is handed over.
                        assert!(how == "swapped" || how == "seq changed", "{what}");
                        assert_ne!(file, "entries.jsonl", "{what}");
                    }
                }
            }
            std::fs::write(dir.join(file), original.join("\n") + "\n").unwrap();
            evidence::refresh_file_list(&dir);
        }
    }
    assert!(compared > 100, "{compared}");
}

/// A log written with wrong links: a stream ended twice, ends naming a
/// served decision, a model-version entry, another end and a decision of
/// another id, an end naming itself, approvals naming a proposal and an
/// approval further on.
async fn miswritten() -> Arc<MemStore> {
    let s2 = decision("a", Outcome::Streaming, Some(1));
    let served5 = decision("a", Outcome::Served, Some(0));
    let s9 = decision("a", Outcome::Streaming, Some(1));
    let stranger = decision("a", Outcome::Streaming, Some(1));
    let mut ends_itself = end_of(&s2, 12);
    if let EntryBody::StreamEnded(end) = &mut ends_itself {
        end.decision_seq = 12;
    }
    let bodies = vec![
        version("version_proposed", "proposed"),        // 0
        version("version_approved", "approved"),        // 1
        EntryBody::Decision(Box::new(s2.clone())),      // 2
        end_of(&s2, 2),                                 // 3
        end_of(&s2, 2),                                 // 4: again
        EntryBody::Decision(Box::new(served5.clone())), // 5: names a proposal
        end_of(&served5, 5),                            // 6: not a stream
        end_of(&stranger, 1),                           // 7: a version entry
        EntryBody::Decision(Box::new(decision("a", Outcome::Served, Some(10)))), // 8
        EntryBody::Decision(Box::new(s9.clone())),      // 9
        version("version_approved", "approved"),        // 10: named before
        end_of(&stranger, 9),                           // 11: another id
        ends_itself,                                    // 12
        end_of(&stranger, 4),                           // 13: an end
    ];
    written(EntrySignatures::Off, bodies).await
}

#[tokio::test]
async fn one_pass_and_in_memory_agree_on_every_window_of_a_miswritten_log() {
    let store = miswritten().await;
    let tmp = tempfile::tempdir().unwrap();
    let size = store.size().unwrap();
    let mut failures = std::collections::BTreeSet::new();
    for from in 0..size {
        for to in from + 1..=size {
            for (name, filter) in [
                (
                    "model",
                    Filter {
                        model: Some("a".into()),
                        ..Filter::default()
                    },
                ),
                (
                    "time",
                    Filter {
                        since: Some("1970-01-01T00:00:00Z".into()),
                        ..Filter::default()
                    },
                ),
            ] {
                let dir = tmp.path().join(format!("{name}-{from}-{to}"));
                export_filtered(
                    &*store,
                    &verifier(),
                    from,
                    Some(to),
                    &filter,
                    false,
                    &dir,
                    |_, _| {},
                )
                .unwrap();
                let (streamed, in_memory) = both(&dir);
                assert_eq!(
                    streamed.as_deref(),
                    Some(in_memory.as_str()),
                    "{name} {from}..{to}"
                );
                failures.insert(in_memory.split(" (").next().unwrap_or_default().to_owned());
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
    }
    // The windows reach every kind of wrong link.
    for needle in [
        "already ended at seq 3",
        "outcome \"served\", not streaming",
        "names a \"version_approved\" entry",
        "its decision_id is",
        "is not below its own seq",
        "its kind is \"version_proposed\"",
        "approval_seq 10",
    ] {
        assert!(
            failures.iter().any(|failure| failure.contains(needle)),
            "{needle}: {failures:#?}"
        );
    }
}
