//! Streamed decisions and their `stream_ended` entries inside a bundle
//! (docs/audit-format.md section 14.3), as far as the bundle holds both.
//!
//! SPEC: a `stream_ended`'s `decision_seq` is below its own seq; where
//! that seq is in the bundle, it is a `decision` with outcome `streaming`
//! and the same `decision_id`, `model` and `version`; no two
//! `stream_ended` entries name the same decision. A decision outside the
//! bundle (before `from`, or left out of a sparse bundle) is taken as
//! given. A streaming decision whose end is not in the bundle is open: its
//! stream ended after the bundle's last entry, or never (the gateway
//! stopped mid-stream); reported, not a failure.

use super::lines::BundleEntry;
use super::{BundleError, bad_seq};
use serde_json::Value;
use std::collections::BTreeMap;

/// Checks the stream links among `entries` (in increasing seq order);
/// returns the seqs of the streamed decisions whose end is not in them.
pub(super) fn check_streams(entries: &[BundleEntry]) -> Result<Vec<u64>, BundleError> {
    let present: BTreeMap<u64, &Value> = entries.iter().map(|e| (e.seq, &e.value)).collect();
    // Decision seq -> the seq of the stream_ended naming it.
    let mut ended: BTreeMap<u64, u64> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.value["kind"] == "stream_ended") {
        let (seq, end) = (entry.seq, &entry.value);
        let decision_seq = end["decision_seq"].as_u64().ok_or_else(|| {
            bad_seq(
                seq,
                format!(
                    "stream_ended: decision_seq {} is not a seq (a non-negative integer)",
                    end["decision_seq"]
                ),
            )
        })?;
        if decision_seq >= seq {
            return Err(bad_seq(
                seq,
                format!("stream_ended: decision_seq {decision_seq} is not below its own seq"),
            ));
        }
        if let Some(first) = ended.insert(decision_seq, seq) {
            return Err(bad_seq(
                seq,
                format!(
                    "stream_ended: the stream of the decision at seq {decision_seq} already \
                     ended at seq {first} (a second stream_ended)"
                ),
            ));
        }
        if let Some(decision) = present.get(&decision_seq) {
            link_problem(end, decision, decision_seq).map_or(Ok(()), |reason| {
                Err(bad_seq(seq, format!("stream_ended: {reason}")))
            })?;
        }
    }
    Ok(entries
        .iter()
        .filter(|e| is_streaming(&e.value) && !ended.contains_key(&e.seq))
        .map(|e| e.seq)
        .collect())
}

pub(super) fn is_streaming(entry: &Value) -> bool {
    entry["kind"] == "decision" && entry["outcome"] == "streaming"
}

/// Why `decision` (entry `decision_seq`) is not the decision `end` ends.
pub(super) fn link_problem(end: &Value, decision: &Value, decision_seq: u64) -> Option<String> {
    if decision["kind"] != "decision" {
        return Some(format!(
            "decision_seq {decision_seq} names a {} entry, not a decision",
            decision["kind"]
        ));
    }
    if decision["outcome"] != "streaming" {
        return Some(format!(
            "decision_seq {decision_seq} names a decision with outcome {}, not streaming",
            decision["outcome"]
        ));
    }
    let show = |value: Option<&Value>| value.map_or("absent".to_owned(), Value::to_string);
    let differences: Vec<String> = ["decision_id", "model", "version"]
        .into_iter()
        .filter(|name| end.get(name) != decision.get(name))
        .map(|name| {
            format!(
                "its {name} is {}, the decision's {}",
                show(end.get(name)),
                show(decision.get(name))
            )
        })
        .collect();
    (!differences.is_empty()).then(|| {
        format!(
            "not the stream of the decision at seq {decision_seq}: {}",
            differences.join("; ")
        )
    })
}
