//! Streamed decisions and their `stream_ended` entries in bundles of both
//! forms: exported with their payloads and verified; an open stream is
//! reported; a dangling, repeated or mismatched end, and payload bytes no
//! commitment covers, are refused.

use super::*;
use crate::decision::{Capture, Decision, EntrySignatures, Outcome, StreamEnd, fixture};
use crate::ledger::entry::EntryBody;
use crate::ledger::export::{BundleOptions, Filter, export_bundle, export_filtered};
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, SequencerConfig};
use ed25519_dalek::SigningKey;
use std::sync::Arc;

const ORIGIN: &str = "test.example/bundle-streams";
const KEY: [u8; 32] = [6; 32];

fn verifier() -> NoteVerifier {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&KEY).verifying_key()).unwrap()
}

fn decision(model: &str, outcome: Outcome) -> Decision {
    Decision {
        model: Some(model.into()),
        outcome,
        request: fixture::captured(b"{\"stream\":true}"),
        response: match outcome {
            Outcome::Streaming => Capture::default(),
            _ => fixture::captured(b"{\"out\":2}"),
        },
        ..fixture::streamed_chat()
    }
}

fn end_of(decision: &Decision, decision_seq: u64) -> StreamEnd {
    StreamEnd {
        decision_id: decision.id,
        decision_seq,
        model: decision.model.clone(),
        version: decision.version.clone(),
        outcome: Outcome::Error,
        error_code: Some("client_disconnected"),
        released_bytes: 7,
        complete_us: 2500,
        response: Capture::of_complete(&bytes::Bytes::from_static(b"data: 1\n\n"), 64),
    }
}

/// Appends each body in its own batch.
async fn append(store: &Arc<MemStore>, bodies: Vec<EntryBody>) {
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            ORIGIN,
            &SigningKey::from_bytes(&KEY),
            EntrySignatures::Off,
            64,
            4,
        ),
    )
    .unwrap();
    for body in bodies {
        ledger.append(body).await.unwrap();
    }
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
}

fn body(decision: &Decision) -> EntryBody {
    EntryBody::Decision(Box::new(decision.clone()))
}

fn end(end: StreamEnd) -> EntryBody {
    EntryBody::StreamEnded(Box::new(end))
}

/// Seq 0 served `a`, 1 streamed `a`, 2 served `b`, 3 streamed `b`, 4 end
/// of 1, 5 served `a`, 6 end of 3, 7 streamed `a` never ended. Payloads
/// are kept (mode full).
async fn ledger() -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    let (a1, b3, a7) = (
        decision("a", Outcome::Streaming),
        decision("b", Outcome::Streaming),
        decision("a", Outcome::Streaming),
    );
    append(
        &store,
        vec![
            body(&decision("a", Outcome::Served)),
            body(&a1),
            body(&decision("b", Outcome::Served)),
            body(&b3),
            end(end_of(&a1, 1)),
            body(&decision("a", Outcome::Served)),
            end(end_of(&b3, 3)),
            body(&a7),
        ],
    )
    .await;
    store
}

fn contiguous(store: &MemStore, dir: &Path, from: u64, to: Option<u64>) {
    export_bundle(
        store,
        &verifier(),
        from,
        to,
        &BundleOptions::payloads(true),
        dir,
        |_, _| {},
    )
    .unwrap();
}

fn seqs_of(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("entries.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn first_bad(dir: &Path) -> (Option<u64>, String) {
    super::evidence::refresh_file_list(dir);
    match verify_bundle(dir, &verifier(), None) {
        Err(BundleError::Bad { seq, item, reason }) => (seq, format!("{item}: {reason}")),
        other => panic!("expected a bad bundle, got {other:?}"),
    }
}

/// Rewrites the line of `file` whose `seq` is `seq` with `edit`.
fn edit_seq(dir: &Path, file: &str, seq: u64, edit: impl FnOnce(&mut Value)) {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let mut edit = Some(edit);
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).unwrap();
            if value["seq"] != seq {
                return line.to_owned();
            }
            (edit.take().unwrap())(&mut value);
            serde_json::to_string(&value).unwrap()
        })
        .collect();
    assert!(edit.is_none(), "no line of seq {seq} in {file}");
    std::fs::write(dir.join(file), lines.join("\n") + "\n").unwrap();
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_contiguous_bundle_with_streams_and_their_payloads_verifies() {
    let store = ledger().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("all");
    contiguous(&store, &dir, 0, None);
    let report = verify_bundle(&dir, &verifier(), None).unwrap();
    assert_eq!(report.entries, 8);
    assert_eq!(report.payloads, 8, "decisions and stream_ended entries");
    assert_eq!(report.open_streams, [7]);

    // A bundle that ends before seq 6 holds the stream of seq 3 open.
    let part = tmp.path().join("part");
    contiguous(&store, &part, 2, Some(6));
    let report = verify_bundle(&part, &verifier(), None).unwrap();
    assert_eq!((report.from, report.to), (2, 6));
    assert_eq!(report.open_streams, [3]);

    // One that starts after seq 1 holds its end alone: taken as given.
    let late = tmp.path().join("late");
    contiguous(&store, &late, 4, None);
    assert_eq!(
        verify_bundle(&late, &verifier(), None)
            .unwrap()
            .open_streams,
        [7]
    );
}

#[tokio::test]
async fn a_model_bundle_holds_the_ends_of_its_streams() {
    let store = ledger().await;
    let tmp = tempfile::tempdir().unwrap();
    for (model, seqs, open) in [
        ("a", vec![0, 1, 4, 5, 7], vec![7]),
        ("b", vec![2, 3, 6], vec![]),
    ] {
        let dir = tmp.path().join(model);
        let filter = Filter {
            model: Some(model.into()),
            ..Filter::default()
        };
        export_filtered(
            &*store,
            &verifier(),
            0,
            None,
            &filter,
            true,
            &dir,
            |_, _| {},
        )
        .unwrap();
        assert_eq!(seqs_of(&dir), seqs, "model {model}");
        let report = verify_bundle(&dir, &verifier(), None).unwrap();
        assert_eq!(report.payloads, seqs.len() as u64);
        assert_eq!(report.open_streams, open, "model {model}");
    }
    // A time range starting at seq 4: the end of seq 1 without it.
    let dir = tmp.path().join("range");
    let filter = Filter {
        since: Some("1970-01-01T00:00:00Z".into()),
        ..Filter::default()
    };
    export_filtered(
        &*store,
        &verifier(),
        4,
        None,
        &filter,
        true,
        &dir,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(seqs_of(&dir), [4, 5, 6, 7]);
    verify_bundle(&dir, &verifier(), None).unwrap();
}

/// A bundle of `bodies` appended after a streamed decision of model `a` at seq 0.
async fn bundle_after_stream(dir: &Path, bodies: impl FnOnce(&Decision) -> Vec<EntryBody>) {
    let store = Arc::new(MemStore::new());
    let streamed = decision("a", Outcome::Streaming);
    let mut all = vec![body(&streamed)];
    all.extend(bodies(&streamed));
    append(&store, all).await;
    contiguous(&store, dir, 0, None);
}

#[tokio::test]
async fn dangling_repeated_and_mismatched_ends_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    /// What follows the streamed decision at seq 0.
    type After = fn(&Decision) -> Vec<EntryBody>;
    let cases: [(&str, After, u64, &str); 4] = [
        (
            "served",
            |_| {
                let served = decision("a", Outcome::Served);
                let end_of_served = end_of(&served, 1);
                vec![body(&served), end(end_of_served)]
            },
            2,
            "names a decision with outcome \"served\", not streaming",
        ),
        (
            "twice",
            |streamed| vec![end(end_of(streamed, 0)), end(end_of(streamed, 0))],
            2,
            "already ended at seq 1 (a second stream_ended)",
        ),
        (
            "model",
            |streamed| {
                let mut other = end_of(streamed, 0);
                other.model = Some("b".into());
                vec![end(other)]
            },
            1,
            "its model is \"b\", the decision's \"a\"",
        ),
        (
            "ahead",
            |streamed| vec![end(end_of(streamed, 1))],
            1,
            "decision_seq 1 is not below its own seq",
        ),
    ];
    for (name, bodies, seq, expected) in cases {
        let dir = tmp.path().join(name);
        bundle_after_stream(&dir, bodies).await;
        let (bad, why) = first_bad(&dir);
        assert_eq!(bad, Some(seq), "{name}: {why}");
        assert!(why.contains(expected), "{name}: {why}");
    }
}

#[tokio::test]
async fn payload_bytes_no_commitment_covers_are_refused() {
    let store = ledger().await;
    let tmp = tempfile::tempdir().unwrap();
    type Edit = fn(&mut Value);
    let cases: [(u64, Edit, &str); 4] = [
        // The stream_ended's request is its decision's: its own is empty.
        (
            4,
            |line| line["request"] = base64_of(b"x").into(),
            "request is 1 bytes, but this entry commits to no request",
        ),
        (
            4,
            |line| line["response"] = base64_of(b"data: 2\n\n").into(),
            "BLAKE3(response_salt || response) is not the entry's response.commitment",
        ),
        // A streamed decision's answer is its stream_ended's.
        (
            1,
            |line| line["response"] = base64_of(b"data").into(),
            "response is 4 bytes, but this entry commits to no response",
        ),
        (
            1,
            |line| line["request"] = base64_of(b"{}").into(),
            "BLAKE3(request_salt || request) is not the entry's request.commitment",
        ),
    ];
    for (i, (seq, edit, expected)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(i.to_string());
        contiguous(&store, &dir, 0, None);
        edit_seq(&dir, "payloads.jsonl", seq, edit);
        let (bad, why) = first_bad(&dir);
        assert_eq!(bad, Some(seq), "{why}");
        assert!(why.contains(expected), "{expected}: {why}");
    }
}
