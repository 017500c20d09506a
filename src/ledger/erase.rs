//! Which payload records erasing a decision's payload removes
//! (docs/audit-format.md section 9): the decision's own, and for a
//! streamed decision also its `stream_ended` entry's, which holds the
//! captured answer.
//!
//! The decision index maps ids to decision entries only: a `stream_ended`
//! is found by reading forward from its decision's seq (it always comes
//! later) until the entry naming that seq. Entries of other kinds are
//! skipped on a byte search, without parsing. A stream that never ended
//! (the gateway stopped mid-stream) costs a read to the end of the log.

use super::store::{LedgerStore, StoreError};
use crate::decision::DecisionId;
use serde_json::Value;
use std::ops::ControlFlow;

/// The seqs whose payload records belong to one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadSeqs {
    /// The decision's entry.
    pub decision: u64,
    /// Its `stream_ended` entry, when the decision was streamed and its
    /// stream's end is recorded.
    pub stream_end: Option<u64>,
}

/// The payload records of decision `id`; `None` when the log has no such
/// decision. `progress` hears (entries searched, entries to search) during
/// the search for a stream's end, which may read to the end of the log.
pub fn payload_seqs(
    store: &dyn LedgerStore,
    id: &DecisionId,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<PayloadSeqs>, StoreError> {
    let Some(decision) = store.decision_seq(id.as_bytes())? else {
        return Ok(None);
    };
    let entry = store
        .entry(decision)?
        .ok_or_else(|| StoreError::Corrupt(format!("entry {decision} missing")))?;
    let streamed =
        serde_json::from_slice::<Value>(&entry).is_ok_and(|entry| entry["outcome"] == "streaming");
    let stream_end = if streamed {
        stream_end_of(store, decision, &id.to_string(), progress)?
    } else {
        None
    };
    Ok(Some(PayloadSeqs {
        decision,
        stream_end,
    }))
}

/// The seq of the `stream_ended` entry naming the decision at
/// `decision_seq` (with id `id`), searched from just after it.
fn stream_end_of(
    store: &dyn LedgerStore,
    decision_seq: u64,
    id: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<u64>, StoreError> {
    // Canonical bytes spell the kind exactly so; only these are parsed.
    const MARK: &[u8] = br#""kind":"stream_ended""#;
    let mut found = None;
    let (from, to) = (decision_seq + 1, store.size()?);
    store.entries_in(from, to, &mut |seq, bytes| {
        progress(seq + 1 - from, to - from);
        if !bytes.windows(MARK.len()).any(|w| w == MARK) {
            return ControlFlow::Continue(());
        }
        let names_it = serde_json::from_slice::<Value>(bytes).is_ok_and(|end| {
            end["decision_seq"].as_u64() == Some(decision_seq) && end["decision_id"] == id
        });
        if names_it {
            found = Some(seq);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Capture, Decision, EntrySignatures, Outcome, StreamEnd};
    use crate::ledger::entry::EntryBody;
    use crate::ledger::memstore::MemStore;
    use crate::ledger::sequencer::{Ledger, SequencerConfig};
    use ed25519_dalek::SigningKey;
    use std::sync::Arc;

    fn decision(outcome: Outcome) -> Decision {
        Decision {
            outcome,
            ..crate::decision::fixture::streamed_chat()
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
            released_bytes: 3,
            complete_us: 10,
            response: Capture::of_complete(&bytes::Bytes::from_static(b"abc"), 64),
        }))
    }

    #[tokio::test]
    async fn a_streamed_decisions_payloads_include_its_ends() {
        let (served, streamed, unended) = (
            decision(Outcome::Served),
            decision(Outcome::Streaming),
            decision(Outcome::Streaming),
        );
        let store = Arc::new(MemStore::new());
        let (ledger, writer) = Ledger::open(
            store.clone(),
            SequencerConfig::for_tests(
                "test.example/erase",
                &SigningKey::from_bytes(&[4; 32]),
                EntrySignatures::Off,
                64,
                8,
            ),
        )
        .unwrap();
        let other = decision(Outcome::Streaming);
        for body in [
            EntryBody::Decision(Box::new(served.clone())),
            EntryBody::Decision(Box::new(other.clone())),
            EntryBody::Decision(Box::new(streamed.clone())),
            EntryBody::Decision(Box::new(unended.clone())),
            end_of(&other, 1),
            end_of(&streamed, 2),
        ] {
            ledger.append(body).await.unwrap();
        }
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();
        let seqs = |decision: &Decision| {
            payload_seqs(store.as_ref(), &decision.id, &mut |_, _| {}).unwrap()
        };
        let plain = |decision, stream_end| {
            Some(PayloadSeqs {
                decision,
                stream_end,
            })
        };
        assert_eq!(seqs(&served), plain(0, None));
        assert_eq!(seqs(&other), plain(1, Some(4)));
        assert_eq!(seqs(&streamed), plain(2, Some(5)));
        assert_eq!(seqs(&unended), plain(3, None));
        assert_eq!(seqs(&decision(Outcome::Served)), None);
    }
}
