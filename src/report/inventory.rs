//! Inventory: the models and versions that served in the period (from
//! its decisions), with the risk class and change reference their
//! model-version entries record.

use super::{Entry, Evidence, Facts, Section};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// At most this many (model, version) pairs; a configured gateway has far
/// fewer (a decision names a served version only when it was approved).
const MAX_VERSIONS: usize = 10_000;

#[derive(Debug, Default)]
struct Served {
    decisions: u64,
    first_seq: u64,
    last_seq: u64,
    approval_seqs: Vec<u64>,
}

/// The inventory section.
#[derive(Debug, Default)]
pub(super) struct Inventory {
    served: BTreeMap<(String, String), Served>,
    left_off: u64,
    /// `(risk_class, change_ref, seq)` of each version's latest entry.
    recorded: BTreeMap<(String, String), (Value, Value, u64)>,
}

impl Section for Inventory {
    fn name(&self) -> &'static str {
        "inventory"
    }

    fn observe(&mut self, entry: &Entry) {
        let kind = entry.kind();
        let key = || {
            Some((
                entry.str("model")?.to_owned(),
                entry.str("version")?.to_owned(),
            ))
        };
        if kind.starts_with("version_") {
            if let Some(key) = key()
                && (self.recorded.len() < MAX_VERSIONS || self.recorded.contains_key(&key))
            {
                let record = (
                    entry.value("risk_class"),
                    entry.value("change_ref"),
                    entry.seq,
                );
                self.recorded.insert(key, record);
            }
            return;
        }
        // A version served: the decision names the approval it served on.
        if kind != "decision" {
            return;
        }
        let Some(approval) = entry.u64("approval_seq") else {
            return;
        };
        let Some(key) = key() else { return };
        if self.served.len() >= MAX_VERSIONS && !self.served.contains_key(&key) {
            self.left_off += 1;
            return;
        }
        let served = self.served.entry(key).or_insert_with(|| Served {
            first_seq: entry.seq,
            ..Served::default()
        });
        served.decisions += 1;
        served.last_seq = entry.seq;
        if !served.approval_seqs.contains(&approval) && served.approval_seqs.len() < 16 {
            served.approval_seqs.push(approval);
        }
    }

    fn finish(self: Box<Self>, _facts: &Facts<'_>) -> Value {
        let mut evidence = Evidence::default();
        let mut versions = Vec::new();
        for ((model, version), served) in &self.served {
            let recorded = self.recorded.get(&(model.clone(), version.clone()));
            let (risk_class, change_ref, version_seq) = match recorded {
                Some((risk, change, seq)) => (risk.clone(), change.clone(), json!(seq)),
                None => (Value::Null, Value::Null, Value::Null),
            };
            evidence.add(served.first_seq);
            if let Some(seq) = version_seq.as_u64() {
                evidence.add(seq);
            }
            versions.push(json!({
                "model": model,
                "version": version,
                "decisions": served.decisions,
                "first_seq": served.first_seq,
                "last_seq": served.last_seq,
                "approval_seqs": served.approval_seqs,
                "risk_class": risk_class,
                "change_ref": change_ref,
                "version_entry_seq": version_seq,
            }));
        }
        let models: std::collections::BTreeSet<&String> =
            self.served.keys().map(|(model, _)| model).collect();
        let mut object = Map::new();
        object.insert("models".to_owned(), json!(models));
        object.insert("versions".to_owned(), Value::Array(versions));
        object.insert("versions_left_off".to_owned(), json!(self.left_off));
        object.insert(
            "note".to_owned(),
            json!("risk_class and change_ref come from the version's latest model-version entry in the period; null when its entries all lie before the period (follow approval_seqs)"),
        );
        evidence.put(&mut object);
        Value::Object(object)
    }
}
