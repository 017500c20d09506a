//! Traffic: the period's decisions by model and version, outcome, error
//! code and caller (the [`TOP_CALLERS`] largest, the rest as others).

use super::{CappedCounts, Entry, Facts, Section};
use serde_json::{Map, Value, json};

/// Callers listed by name.
pub(super) const TOP_CALLERS: usize = 50;
/// Callers counted apart before the rest go to `others` (bounds memory).
const TRACKED_CALLERS: usize = 10_000;
/// Model/version pairs (a request may name any model) counted apart.
const TRACKED_MODELS: usize = 1000;

/// The traffic section.
#[derive(Debug)]
pub(super) struct Traffic {
    decisions: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    by_model_version: CappedCounts,
    by_outcome: CappedCounts,
    by_error_code: CappedCounts,
    by_caller: CappedCounts,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            decisions: 0,
            first_seq: None,
            last_seq: None,
            by_model_version: CappedCounts::new(TRACKED_MODELS),
            by_outcome: CappedCounts::new(64),
            by_error_code: CappedCounts::new(256),
            by_caller: CappedCounts::new(TRACKED_CALLERS),
        }
    }
}

impl Section for Traffic {
    fn name(&self) -> &'static str {
        "traffic"
    }

    fn observe(&mut self, entry: &Entry) {
        if entry.kind() != "decision" {
            return;
        }
        self.decisions += 1;
        self.first_seq.get_or_insert(entry.seq);
        self.last_seq = Some(entry.seq);
        let model = entry.str("model").unwrap_or("(none)");
        let version = entry.str("version").unwrap_or("(none)");
        self.by_model_version.add(&format!("{model} {version}"));
        self.by_outcome
            .add(entry.str("outcome").unwrap_or_default());
        if let Some(code) = entry.str("error_code") {
            self.by_error_code.add(code);
        }
        self.by_caller.add(entry.str("caller").unwrap_or_default());
    }

    fn finish(self: Box<Self>, _facts: &Facts<'_>) -> Value {
        let mut object = Map::new();
        object.insert("decisions".to_owned(), json!(self.decisions));
        object.insert("first_decision_seq".to_owned(), json!(self.first_seq));
        object.insert("last_decision_seq".to_owned(), json!(self.last_seq));
        object.insert(
            "by_model_version".to_owned(),
            self.by_model_version.to_json(TRACKED_MODELS),
        );
        object.insert("by_outcome".to_owned(), self.by_outcome.to_json(64));
        object.insert("by_error_code".to_owned(), self.by_error_code.to_json(256));
        object.insert("by_caller".to_owned(), self.by_caller.to_json(TOP_CALLERS));
        let seqs: Vec<u64> = self.first_seq.into_iter().chain(self.last_seq).collect();
        object.insert("seqs".to_owned(), json!(seqs));
        object.insert("seqs_left_off".to_owned(), json!(0));
        Value::Object(object)
    }
}
