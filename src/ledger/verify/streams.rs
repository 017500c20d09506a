//! The link between a streamed decision and its `stream_ended` entry
//! (docs/audit-format.md section 14), checked in seq order.
//!
//! SPEC (section 14.3): a `stream_ended` names, by `decision_seq`, an
//! earlier `decision` with outcome `streaming` and the same `decision_id`,
//! `model` and `version`; a decision's stream ends at most once. A
//! streaming decision with no `stream_ended` is an open stream (the
//! gateway stopped before the stream ended): reported, not a failure.
//!
//! Memory: only streams not yet ended are held (those in flight at any
//! point of the log, plus the open ones), never every stream seen. So a
//! second `stream_ended` for a decision finds nothing held; only then is
//! the decision's entry read back to say why.

use super::{VerifyError, bad};
use crate::ledger::canonical::to_canonical;
use crate::ledger::store::LedgerStore;
use serde_json::Value;
use std::collections::HashMap;

/// What the two entries of a stream must agree on, each member as its
/// canonical JSON token (`None` when absent). Entries are canonical, so
/// equal values are equal tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamNames {
    decision_id: Option<Box<[u8]>>,
    model: Option<Box<[u8]>>,
    version: Option<Box<[u8]>>,
}

impl StreamNames {
    /// From the raw value tokens of a canonical entry.
    pub(super) fn of_tokens(
        decision_id: Option<&[u8]>,
        model: Option<&[u8]>,
        version: Option<&[u8]>,
    ) -> Self {
        Self {
            decision_id: decision_id.map(Box::from),
            model: model.map(Box::from),
            version: version.map(Box::from),
        }
    }

    /// From a parsed entry (the slow path): the same tokens
    /// [`StreamNames::of_tokens`] gives for its canonical bytes.
    pub(super) fn of_value(seq: u64, entry: &Value) -> Result<Self, VerifyError> {
        let token = |name: &str| -> Result<Option<Box<[u8]>>, VerifyError> {
            entry
                .get(name)
                .map(|value| {
                    to_canonical(value)
                        .map(Vec::into_boxed_slice)
                        .map_err(|err| bad(seq, err.to_string()))
                })
                .transpose()
        };
        Ok(Self {
            decision_id: token("decision_id")?,
            model: token("model")?,
            version: token("version")?,
        })
    }

    /// The members that differ, for a message; empty when none does.
    fn differences(&self, decision: &Self) -> Vec<String> {
        let show = |token: &Option<Box<[u8]>>| {
            token.as_deref().map_or("absent".to_owned(), |t| {
                String::from_utf8_lossy(t).into_owned()
            })
        };
        [
            ("decision_id", &self.decision_id, &decision.decision_id),
            ("model", &self.model, &decision.model),
            ("version", &self.version, &decision.version),
        ]
        .into_iter()
        .filter(|(_, ours, theirs)| ours != theirs)
        .map(|(name, ours, theirs)| {
            format!(
                "its {name} is {}, the decision's {}",
                show(ours),
                show(theirs)
            )
        })
        .collect()
    }
}

/// A stream's link as one entry shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StreamFact {
    /// A `decision` with outcome `streaming`: a stream begins.
    Opened(StreamNames),
    /// A `stream_ended` naming the decision at `decision_seq`.
    Ended {
        /// The seq of the decision it ends.
        decision_seq: u64,
        /// Its own `decision_id`, `model`, `version`.
        names: StreamNames,
    },
}

/// The stream fact of a parsed entry, or why a `stream_ended` has none.
pub(super) fn stream_fact(seq: u64, entry: &Value) -> Result<Option<StreamFact>, VerifyError> {
    match entry["kind"].as_str() {
        Some("decision") if entry["outcome"] == "streaming" => {
            Ok(Some(StreamFact::Opened(StreamNames::of_value(seq, entry)?)))
        }
        Some("stream_ended") => {
            let decision_seq = entry["decision_seq"].as_u64().ok_or_else(|| {
                bad(
                    seq,
                    format!(
                        "stream_ended: decision_seq {} is not a seq (a non-negative integer)",
                        entry["decision_seq"]
                    ),
                )
            })?;
            Ok(Some(StreamFact::Ended {
                decision_seq,
                names: StreamNames::of_value(seq, entry)?,
            }))
        }
        _ => Ok(None),
    }
}

/// The streams begun and not yet ended, as the pass goes.
#[derive(Debug, Default)]
pub(super) struct StreamLinks {
    /// Decision seq -> its names.
    open: HashMap<u64, StreamNames>,
}

impl StreamLinks {
    /// Takes in entry `seq`'s fact; entries come in seq order.
    pub(super) fn see(
        &mut self,
        store: &dyn LedgerStore,
        seq: u64,
        fact: Option<StreamFact>,
    ) -> Result<(), VerifyError> {
        let (decision_seq, names) = match fact {
            None => return Ok(()),
            Some(StreamFact::Opened(names)) => {
                self.open.insert(seq, names);
                return Ok(());
            }
            Some(StreamFact::Ended {
                decision_seq,
                names,
            }) => (decision_seq, names),
        };
        if decision_seq >= seq {
            return Err(bad(
                seq,
                format!("stream_ended: decision_seq {decision_seq} is not below its own seq"),
            ));
        }
        let Some(decision) = self.open.remove(&decision_seq) else {
            return Err(bad(seq, not_open(store, decision_seq)?));
        };
        let differences = names.differences(&decision);
        if differences.is_empty() {
            return Ok(());
        }
        Err(bad(
            seq,
            format!(
                "stream_ended: not the stream of the decision at seq {decision_seq}: {}",
                differences.join("; ")
            ),
        ))
    }

    /// The seqs of the streamed decisions never ended, in order.
    pub(super) fn open(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self.open.keys().copied().collect();
        seqs.sort_unstable();
        seqs
    }
}

/// Why `decision_seq` (below the current seq, so already checked) names
/// no stream still open: it is no streaming decision, or its stream ended.
fn not_open(store: &dyn LedgerStore, decision_seq: u64) -> Result<String, VerifyError> {
    let entry = store
        .entry(decision_seq)?
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .unwrap_or(Value::Null);
    let named = format!("stream_ended: decision_seq {decision_seq}");
    Ok(if entry["kind"] != "decision" {
        format!("{named} names a {} entry, not a decision", entry["kind"])
    } else if entry["outcome"] != "streaming" {
        format!(
            "{named} names a decision with outcome {}, not streaming",
            entry["outcome"]
        )
    } else {
        format!("{named}: that decision's stream already ended (a second stream_ended)")
    })
}
