//! The links between streamed decisions and their `stream_ended` entries,
//! in logs written by the real sequencer: a good pair verifies, an open
//! stream is reported, a dangling, repeated or mismatched end is named.

use super::*;
use crate::decision::{
    Capture, Decision, DecisionId, EntrySignatures, Outcome, StreamEnd, fixture,
};
use crate::ledger::entry::EntryBody;
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{Ledger, SequencerConfig};
use ed25519_dalek::SigningKey;
use std::sync::Arc;

const ORIGIN: &str = "test.example/streams";
const KEY: [u8; 32] = [5; 32];

fn decision(outcome: Outcome) -> Decision {
    Decision {
        version: Some("2024-06".into()),
        outcome,
        request: fixture::captured(b"{\"stream\":true}"),
        ..fixture::streamed_chat()
    }
}

/// The end of `decision`'s stream, recorded at `decision_seq`.
fn end_of(decision: &Decision, decision_seq: u64) -> StreamEnd {
    StreamEnd {
        decision_id: decision.id,
        decision_seq,
        model: decision.model.clone(),
        version: decision.version.clone(),
        outcome: Outcome::Served,
        error_code: None,
        released_bytes: 9,
        complete_us: 1500,
        response: Capture::of_complete(&bytes::Bytes::from_static(b"data: hi\n"), 64),
    }
}

/// Appends each body in its own batch, returning their seqs.
async fn append(store: &Arc<MemStore>, bodies: Vec<EntryBody>) -> Vec<u64> {
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
    let mut seqs = Vec::new();
    for body in bodies {
        seqs.push(ledger.append(body).await.unwrap().seq.unwrap());
    }
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    seqs
}

fn verifier() -> NoteVerifier {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&KEY).verifying_key()).unwrap()
}

fn first_bad(store: &MemStore) -> (u64, String) {
    match verify_store(store, &verifier()) {
        Err(VerifyError::Bad { seq, reason }) => (seq, reason),
        other => panic!("expected a bad seq, got {other:?}"),
    }
}

fn decision_body(decision: &Decision) -> EntryBody {
    EntryBody::Decision(Box::new(decision.clone()))
}

fn end_body(end: StreamEnd) -> EntryBody {
    EntryBody::StreamEnded(Box::new(end))
}

/// A log of: a served decision (seq 0), a streamed one (1), another
/// decision (2), the stream's end (3). Returns the store and the streamed
/// decision.
async fn good_pair() -> (Arc<MemStore>, Decision) {
    let store = Arc::new(MemStore::new());
    let streamed = decision(Outcome::Streaming);
    let seqs = append(
        &store,
        vec![
            decision_body(&decision(Outcome::Served)),
            decision_body(&streamed),
            decision_body(&decision(Outcome::Served)),
            end_body(end_of(&streamed, 1)),
        ],
    )
    .await;
    assert_eq!(seqs, [0, 1, 2, 3]);
    (store, streamed)
}

#[tokio::test]
async fn a_streamed_decision_and_its_end_verify() {
    let (store, _) = good_pair().await;
    let verified = verify_store(store.as_ref(), &verifier()).unwrap();
    assert_eq!(verified.entries, 4);
    assert_eq!(verified.open_streams, Vec::<u64>::new());
}

#[tokio::test]
async fn a_stream_without_its_end_is_reported_open_not_failed() {
    let (store, _) = good_pair().await;
    let unended = decision(Outcome::Streaming);
    append(
        &store,
        vec![
            decision_body(&unended),
            decision_body(&decision(Outcome::Served)),
        ],
    )
    .await;
    let verified = verify_store(store.as_ref(), &verifier()).unwrap();
    assert_eq!(verified.entries, 6);
    assert_eq!(verified.open_streams, [4]);
}

#[tokio::test]
async fn an_end_naming_no_streamed_decision_is_named() {
    let (store, streamed) = good_pair().await;
    // Seq 2 is a decision that was served whole.
    append(&store, vec![end_body(end_of(&streamed, 2))]).await;
    let (seq, reason) = first_bad(&store);
    assert_eq!(seq, 4, "{reason}");
    assert!(
        reason.contains("names a decision with outcome \"served\", not streaming"),
        "{reason}"
    );

    // A seq at or after its own.
    let (store, streamed) = good_pair().await;
    append(&store, vec![end_body(end_of(&streamed, 4))]).await;
    let (seq, reason) = first_bad(&store);
    assert_eq!(seq, 4, "{reason}");
    assert!(reason.contains("not below its own seq"), "{reason}");
}

#[tokio::test]
async fn a_second_end_of_one_stream_is_named() {
    let (store, streamed) = good_pair().await;
    append(
        &store,
        vec![
            decision_body(&decision(Outcome::Served)),
            end_body(end_of(&streamed, 1)),
        ],
    )
    .await;
    let (seq, reason) = first_bad(&store);
    assert_eq!(seq, 5, "{reason}");
    assert!(reason.contains("already ended"), "{reason}");
}

#[tokio::test]
async fn an_end_of_another_model_version_or_id_is_named() {
    type Change = fn(&mut StreamEnd);
    let changes: [(Change, &str); 3] = [
        (
            |end| end.model = Some("other".into()),
            "its model is \"other\", the decision's \"chat\"",
        ),
        (
            |end| end.version = None,
            "its version is null, the decision's \"2024-06\"",
        ),
        (
            |end| end.decision_id = DecisionId::random(),
            "its decision_id is",
        ),
    ];
    for (change, expected) in changes {
        let store = Arc::new(MemStore::new());
        let streamed = decision(Outcome::Streaming);
        let mut end = end_of(&streamed, 0);
        change(&mut end);
        append(&store, vec![decision_body(&streamed), end_body(end)]).await;
        let (seq, reason) = first_bad(&store);
        assert_eq!(seq, 1, "{reason}");
        assert!(
            reason.contains("not the stream of the decision at seq 0"),
            "{reason}"
        );
        assert!(reason.contains(expected), "{expected}: {reason}");
    }
}
