//! Retention and erasure: payloads erased in the period, by the retention
//! runs (`retention: ...` reasons) or on request, and the retention runs
//! per model with their settings and cutoffs. The entries with their
//! commitments stay: an erasure never removes evidence of a decision.

use super::{Entry, Evidence, Facts, Section};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// At most this many models are told apart.
const MAX_MODELS: usize = 1000;

#[derive(Debug, Default)]
struct ModelRuns {
    runs: u64,
    erased: u64,
    setting: Value,
    last_cutoff: Value,
    last_through_seq: Value,
}

/// The retention section.
#[derive(Debug, Default)]
pub(super) struct Retention {
    erased_by_retention: u64,
    erased_on_request: u64,
    erased_by_admin_api: u64,
    runs: u64,
    runs_with_more: u64,
    models: BTreeMap<String, ModelRuns>,
    evidence: Evidence,
}

impl Section for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn observe(&mut self, entry: &Entry) {
        match entry.kind() {
            "payload_erased" => {
                self.evidence.add(entry.seq);
                if entry
                    .str("reason")
                    .is_some_and(|r| r.starts_with("retention:"))
                {
                    self.erased_by_retention += 1;
                } else {
                    self.erased_on_request += 1;
                    if entry.get("principal").is_some() {
                        self.erased_by_admin_api += 1;
                    }
                }
            }
            "retention_run" => {
                self.evidence.add(entry.seq);
                self.runs += 1;
                if entry.get("more") == Some(&Value::Bool(true)) {
                    self.runs_with_more += 1;
                }
                let models = entry.get("models").and_then(Value::as_array);
                for model in models.into_iter().flatten() {
                    let name = model["model"].as_str().unwrap_or_default();
                    if self.models.len() >= MAX_MODELS && !self.models.contains_key(name) {
                        continue;
                    }
                    let runs = self.models.entry(name.to_owned()).or_default();
                    runs.runs += 1;
                    runs.erased += model["erased"].as_u64().unwrap_or(0);
                    runs.setting = model["payloads"].clone();
                    runs.last_cutoff = model["cutoff"].clone();
                    runs.last_through_seq = model["through_seq"].clone();
                }
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>, _facts: &Facts<'_>) -> Value {
        let models: Map<String, Value> = self
            .models
            .iter()
            .map(|(name, runs)| {
                (
                    name.clone(),
                    json!({
                        "runs": runs.runs,
                        "erased": runs.erased,
                        "setting": runs.setting,
                        "last_cutoff": runs.last_cutoff,
                        "last_through_seq": runs.last_through_seq,
                    }),
                )
            })
            .collect();
        let mut object = Map::new();
        object.insert(
            "payloads_erased".to_owned(),
            json!({
                "by_retention": self.erased_by_retention,
                "on_request": self.erased_on_request,
                "on_request_by_admin_api": self.erased_by_admin_api,
            }),
        );
        object.insert("retention_runs".to_owned(), json!(self.runs));
        object.insert(
            "retention_runs_with_more".to_owned(),
            json!(self.runs_with_more),
        );
        object.insert("retention_by_model".to_owned(), Value::Object(models));
        self.evidence.put(&mut object);
        Value::Object(object)
    }
}
