//! What the ledger says about reviews: for each review id, where it was
//! opened and whether (and how) it was closed. Read at start, so stored
//! review files can be reconciled with the ledger.

use crate::ledger::store::{LedgerStore, StoreError};
use serde_json::Value;
use std::collections::HashMap;

/// One review as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerReview {
    /// Seq of its `review_opened` entry.
    pub opened_seq: u64,
    /// Seq of its `review_decided` or `review_timed_out` entry.
    pub closing_seq: Option<u64>,
    /// The verdict (`approve`, `reject`, `override`, or `timeout`).
    pub verdict: Option<String>,
}

/// Every review the ledger records, by review id.
pub fn ledger_reviews(
    store: &dyn LedgerStore,
) -> Result<HashMap<String, LedgerReview>, StoreError> {
    let mut reviews = HashMap::new();
    for seq in store.governance_seqs()? {
        let Some(bytes) = store.entry(seq)? else {
            continue;
        };
        let Ok(entry) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let Some(review_id) = entry["review_id"].as_str() else {
            continue;
        };
        match entry["kind"].as_str() {
            Some("review_opened") => {
                reviews.insert(
                    review_id.to_owned(),
                    LedgerReview {
                        opened_seq: seq,
                        closing_seq: None,
                        verdict: None,
                    },
                );
            }
            Some(kind @ ("review_decided" | "review_timed_out")) => {
                if let Some(review) = reviews.get_mut(review_id) {
                    review.closing_seq = Some(seq);
                    review.verdict = Some(match kind {
                        "review_decided" => entry["verdict"].as_str().unwrap_or("").to_owned(),
                        _ => "timeout".to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(reviews)
}
