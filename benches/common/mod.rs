//! Pieces the ledger benches share: a typical decision, a sequencer on a
//! given store, and one commit's worth of concurrent appends.

use ed25519_dalek::SigningKey;
use govgate::decision::{Decision, EntrySignatures, PayloadMode};
use govgate::ledger::checkpoint::NoteSigner;
use govgate::ledger::entry::EntryBody;
use govgate::ledger::metrics::LedgerMetrics;
use govgate::ledger::sequencer::{Ledger, LedgerWriter, SequencerConfig};
use govgate::ledger::store::LedgerStore;
use std::sync::Arc;

mod sample;

/// A served KServe decision with bodies of typical size (84 and 138 bytes).
pub(crate) fn decision() -> Decision {
    sample::served_decision("credit-scoring", "2")
}

/// The real sequencer on `store`, committing at most `batch` entries at once.
pub(crate) fn sequencer(
    store: Arc<dyn LedgerStore>,
    origin: &str,
    key: &SigningKey,
    entry_signatures: EntrySignatures,
    batch: usize,
) -> (Ledger, LedgerWriter) {
    Ledger::open(
        store,
        SequencerConfig {
            origin: origin.into(),
            signer: NoteSigner::new(origin, key.clone()).unwrap(),
            payload_mode: PayloadMode::Full,
            entry_signatures,
            queue_len: 4 * batch,
            max_batch: batch,
            metrics: LedgerMetrics::new().unwrap(),
        },
    )
    .unwrap()
}

/// Appends `count` decisions concurrently (so they share commits) and
/// waits until every one is acknowledged.
#[allow(dead_code)] // Not every bench appends in bursts.
pub(crate) async fn append_decisions(ledger: &Ledger, count: usize) {
    let appends: Vec<_> = (0..count)
        .map(|_| ledger.append(EntryBody::Decision(Box::new(decision()))))
        .collect();
    for append in appends {
        append.await.unwrap();
    }
}

/// Appends `count` decisions keeping at most `window` unacknowledged, the
/// way concurrent requests keep the writer busy, and waits for them all.
#[allow(dead_code)] // Not every bench streams.
pub(crate) async fn append_streaming(ledger: &Ledger, count: usize, window: usize) {
    let mut pending = std::collections::VecDeque::with_capacity(window);
    for _ in 0..count {
        if pending.len() == window
            && let Some(oldest) = pending.pop_front()
        {
            let ack: Result<_, _> = oldest.await;
            ack.unwrap();
        }
        pending.push_back(ledger.append(EntryBody::Decision(Box::new(decision()))));
    }
    for append in pending {
        append.await.unwrap();
    }
}
