//! Inventory: the models and versions that served in the period (from
//! its decisions), with the risk class and change reference their
//! model-version entries record, and the risks of the register linked to
//! them.

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

/// At most this many risks are linked to one version.
const MAX_LINKED: usize = 64;

/// The inventory section.
#[derive(Debug, Default)]
pub(super) struct Inventory {
    served: BTreeMap<(String, String), Served>,
    left_off: u64,
    /// `(risk_class, change_ref, seq)` of each version's latest entry.
    recorded: BTreeMap<(String, String), (Value, Value, u64)>,
    /// Whether risks are linked (not in reports of format 1).
    risks: bool,
    /// `(risk id, model as the risk names it)` of the period's last
    /// register (bounded like the register: one per risk and model named).
    registered: std::collections::BTreeSet<(String, String)>,
    /// The same, of the period's breach and recovery entries.
    breached: std::collections::BTreeSet<(String, String)>,
}

impl Inventory {
    /// The section; `risks`: link the risks to the versions.
    pub(super) fn new(risks: bool) -> Self {
        Self {
            risks,
            ..Self::default()
        }
    }

    fn link(&mut self, entry: &Entry) {
        match entry.kind() {
            "risk_register_set" => {
                // The register in force replaces the earlier one's links.
                self.registered.clear();
                for risk in entry
                    .get("risks")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let id = risk["id"].as_str().unwrap_or_default();
                    for model in risk["models"].as_array().into_iter().flatten() {
                        if self.registered.len() < MAX_VERSIONS {
                            let model = model.as_str().unwrap_or_default();
                            self.registered.insert((id.to_owned(), model.to_owned()));
                        }
                    }
                }
            }
            "risk_indicator_breached" | "risk_indicator_recovered" => {
                if let (Some(id), Some(model)) = (entry.str("risk"), entry.str("model"))
                    && self.breached.len() < MAX_VERSIONS
                {
                    self.breached.insert((id.to_owned(), model.to_owned()));
                }
            }
            _ => {}
        }
    }

    /// The risks linked to `model` `version`: those naming the model, or
    /// this version of it (`model@version`).
    fn linked_to(&self, model: &str, version: &str) -> Vec<&str> {
        let pinned = format!("{model}@{version}");
        let ids: std::collections::BTreeSet<&str> = self
            .registered
            .iter()
            .chain(&self.breached)
            .filter(|(_, named)| *named == model || *named == pinned)
            .map(|(id, _)| id.as_str())
            .collect();
        ids.into_iter().take(MAX_LINKED).collect()
    }
}

impl Section for Inventory {
    fn name(&self) -> &'static str {
        "inventory"
    }

    fn observe(&mut self, entry: &Entry) {
        let kind = entry.kind();
        if self.risks && kind.starts_with("risk_") {
            self.link(entry);
            return;
        }
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
            let mut item = json!({
                "model": model,
                "version": version,
                "decisions": served.decisions,
                "first_seq": served.first_seq,
                "last_seq": served.last_seq,
                "approval_seqs": served.approval_seqs,
                "risk_class": risk_class,
                "change_ref": change_ref,
                "version_entry_seq": version_seq,
            });
            if self.risks {
                item["linked_risks"] = json!(self.linked_to(model, version));
            }
            versions.push(item);
        }
        let models: std::collections::BTreeSet<&String> =
            self.served.keys().map(|(model, _)| model).collect();
        let mut object = Map::new();
        object.insert("models".to_owned(), json!(models));
        object.insert("versions".to_owned(), Value::Array(versions));
        object.insert("versions_left_off".to_owned(), json!(self.left_off));
        let note = if self.risks {
            "risk_class and change_ref come from the version's latest model-version entry in the period; null when its entries all lie before the period (follow approval_seqs); linked_risks: the risks of the period's last risk register, and of its indicator breaches and recoveries, naming the model or this version (the risks section)"
        } else {
            "risk_class and change_ref come from the version's latest model-version entry in the period; null when its entries all lie before the period (follow approval_seqs)"
        };
        object.insert("note".to_owned(), json!(note));
        evidence.put(&mut object);
        Value::Object(object)
    }
}
