//! Human oversight: holds by reason and model, flags, verdicts by
//! reviewer, time from hold (or flag) to a reviewer's decision (p50 and
//! p95, exact over at most [`MAX_TIMED`] reviews, which the section says
//! when reached), timeouts, and flagged answers reviewed.

use super::{CappedCounts, Entry, Evidence, Facts, Section};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// At most this many reviews are timed (their opening times kept until
/// decided): p50 and p95 are exact over them.
pub(super) const MAX_TIMED: usize = 100_000;
/// At most this many reviewers, and (reason, model) pairs, are told apart.
const MAX_KEYS: usize = 1000;

/// The oversight section.
#[derive(Debug)]
pub(super) struct Oversight {
    holds: CappedCounts,
    holds_total: u64,
    flags_total: u64,
    opened_ms: HashMap<String, i64>,
    timed_left_off: u64,
    durations: Vec<i64>,
    verdicts: BTreeMap<String, BTreeMap<String, u64>>,
    reviewers_left_off: u64,
    timeouts: BTreeMap<String, u64>,
    flags_reviewed: u64,
    evidence: Evidence,
}

impl Default for Oversight {
    fn default() -> Self {
        Self {
            holds: CappedCounts::new(MAX_KEYS),
            holds_total: 0,
            flags_total: 0,
            opened_ms: HashMap::new(),
            timed_left_off: 0,
            durations: Vec::new(),
            verdicts: BTreeMap::new(),
            reviewers_left_off: 0,
            timeouts: BTreeMap::new(),
            flags_reviewed: 0,
            evidence: Evidence::default(),
        }
    }
}

impl Section for Oversight {
    fn name(&self) -> &'static str {
        "human_oversight"
    }

    fn observe(&mut self, entry: &Entry) {
        match entry.kind() {
            "review_opened" => {
                self.evidence.add(entry.seq);
                let model = entry.str("model").unwrap_or("(none)");
                if entry.str("review_kind") == Some("hold") {
                    self.holds_total += 1;
                    let reasons = entry.get("reasons").and_then(Value::as_array);
                    for reason in reasons.into_iter().flatten() {
                        let reason = reason.as_str().unwrap_or_default();
                        self.holds.add(&format!("{model}\t{reason}"));
                    }
                } else {
                    self.flags_total += 1;
                }
                if let Some(id) = entry.str("review_id") {
                    if self.opened_ms.len() + self.durations.len() < MAX_TIMED {
                        self.opened_ms.insert(id.to_owned(), entry.time_ms);
                    } else {
                        self.timed_left_off += 1;
                    }
                }
            }
            "review_decided" => {
                self.evidence.add(entry.seq);
                let reviewer = entry.str("reviewer").unwrap_or_default();
                let verdict = entry.str("verdict").unwrap_or_default().to_owned();
                if self.verdicts.len() < MAX_KEYS || self.verdicts.contains_key(reviewer) {
                    *self
                        .verdicts
                        .entry(reviewer.to_owned())
                        .or_default()
                        .entry(verdict)
                        .or_default() += 1;
                } else {
                    self.reviewers_left_off += 1;
                }
                if entry.str("outcome") == Some("reviewed") {
                    self.flags_reviewed += 1;
                }
                let opened = entry
                    .str("review_id")
                    .and_then(|id| self.opened_ms.remove(id));
                if let Some(opened) = opened {
                    self.durations.push(entry.time_ms - opened);
                }
            }
            "review_timed_out" => {
                self.evidence.add(entry.seq);
                let outcome = entry.str("outcome").unwrap_or_default().to_owned();
                *self.timeouts.entry(outcome).or_default() += 1;
                if let Some(id) = entry.str("review_id") {
                    self.opened_ms.remove(id);
                }
            }
            _ => {}
        }
    }

    fn finish(mut self: Box<Self>, _facts: &Facts<'_>) -> Value {
        self.durations.sort_unstable();
        let holds = self.holds.to_json(MAX_KEYS);
        let mut by_model_reason = Vec::new();
        for (key, count) in holds["counts"].as_object().into_iter().flatten() {
            let (model, reason) = key.split_once('\t').unwrap_or((key, ""));
            by_model_reason.push(json!({"model": model, "reason": reason, "holds": count}));
        }
        let verdicts: Map<String, Value> = self
            .verdicts
            .iter()
            .map(|(reviewer, counts)| {
                let count = |verdict: &str| counts.get(verdict).copied().unwrap_or(0);
                (
                    reviewer.clone(),
                    json!({"approve": count("approve"), "reject": count("reject"), "override": count("override")}),
                )
            })
            .collect();
        let mut object = Map::new();
        object.insert("holds".to_owned(), json!(self.holds_total));
        object.insert("flags".to_owned(), json!(self.flags_total));
        object.insert(
            "holds_by_model_and_reason".to_owned(),
            json!(by_model_reason),
        );
        object.insert(
            "holds_by_model_and_reason_others".to_owned(),
            holds["others"].clone(),
        );
        object.insert("verdicts_by_reviewer".to_owned(), Value::Object(verdicts));
        object.insert(
            "reviewers_left_off".to_owned(),
            json!(self.reviewers_left_off),
        );
        object.insert(
            "time_to_decision_ms".to_owned(),
            json!({
                "reviews": self.durations.len(),
                "p50": percentile(&self.durations, 50),
                "p95": percentile(&self.durations, 95),
                "max": self.durations.last(),
                "cap": MAX_TIMED,
                "left_off": self.timed_left_off,
            }),
        );
        object.insert("timeouts".to_owned(), json!(self.timeouts));
        object.insert("undecided_at_end".to_owned(), json!(self.opened_ms.len()));
        object.insert(
            "flagged_answers_reviewed".to_owned(),
            json!(self.flags_reviewed),
        );
        self.evidence.put(&mut object);
        Value::Object(object)
    }
}

/// The nearest-rank percentile of sorted values (`None` when empty).
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        let values: Vec<i64> = (1..=20).collect();
        assert_eq!(percentile(&values, 50), Some(10));
        assert_eq!(percentile(&values, 95), Some(19));
    }
}
