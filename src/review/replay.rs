//! What the ledger says about reviews: for each review id, where it was
//! opened and whether (and how) it was closed. Read at start, so stored
//! review files can be reconciled with the ledger, and pending flags
//! (which have no file: their `review_opened` entry is their record) can
//! be queued again.

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
    /// For a flag, what its entries say about it (none for a hold: its
    /// file holds the answer, and the file is read instead).
    pub flag: Option<RecordedFlag>,
}

/// A flag review as its `review_opened` entry and its decision entry
/// record it: everything its queue item needs except the bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFlag {
    /// The decision under review.
    pub decision_id: String,
    /// Its entry's seq.
    pub decision_seq: Option<u64>,
    /// Model name.
    pub model: String,
    /// Version label.
    pub version: String,
    /// The stage whose verdict opened it (`request` or `response`).
    pub stage: String,
    /// The reasons of the rules that fired.
    pub reasons: Vec<String>,
    /// When it was opened (the entry's time), Unix milliseconds.
    pub opened_unix_ms: u64,
    /// Who asked, from the decision entry (empty once erased).
    pub caller: String,
    /// The caller's JWT identity, from the decision entry's `auth`.
    pub caller_token: Option<super::TokenIdentity>,
    /// Seq of the policy set that judged the decision, from its entry.
    pub set_seq: u64,
}

/// The flag of a `review_opened` entry, without what only its decision
/// entry says (caller, policy set).
fn recorded_flag(entry: &Value) -> Option<RecordedFlag> {
    if entry["review_kind"] != "flag" {
        return None;
    }
    let text = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
    let opened_unix_ms = entry["time"]
        .as_str()
        .and_then(|time| crate::ledger::export::UtcTime::parse(time).ok())
        .map_or(0, |time| (time.unix_seconds() * 1000.0).round() as u64);
    Some(RecordedFlag {
        decision_id: text("decision_id"),
        decision_seq: entry["decision_seq"].as_u64(),
        model: text("model"),
        version: text("version"),
        stage: text("stage"),
        reasons: entry["reasons"]
            .as_array()
            .map(|reasons| {
                reasons
                    .iter()
                    .filter_map(|reason| reason.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        opened_unix_ms,
        caller: String::new(),
        caller_token: None,
        set_seq: 0,
    })
}

/// Fills in a pending flag's caller and policy set from its decision entry.
fn complete_flag(store: &dyn LedgerStore, flag: &mut RecordedFlag) -> Result<(), StoreError> {
    let Some(seq) = flag.decision_seq else {
        return Ok(());
    };
    let Some(bytes) = store.entry(seq)? else {
        return Ok(());
    };
    if let Ok(decision) = serde_json::from_slice::<Value>(&bytes) {
        flag.caller = decision["caller"].as_str().unwrap_or_default().to_owned();
        let auth = &decision["auth"];
        if let (Some("jwt"), Some(issuer), Some(subject)) = (
            auth["method"].as_str(),
            auth["issuer"].as_str(),
            auth["subject"].as_str(),
        ) {
            flag.caller_token = Some(super::TokenIdentity {
                issuer: issuer.to_owned(),
                subject: subject.to_owned(),
            });
        }
        flag.set_seq = decision["policy"]["set_seq"].as_u64().unwrap_or_default();
    }
    Ok(())
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
                        flag: recorded_flag(&entry),
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
    // Only pending flags are queued again: their decision entries are
    // read for them alone.
    for review in reviews.values_mut() {
        if review.closing_seq.is_some() {
            review.flag = None;
        }
        if let Some(flag) = review.flag.as_mut() {
            complete_flag(store, flag)?;
        }
    }
    Ok(reviews)
}
