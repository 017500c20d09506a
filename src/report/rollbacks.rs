//! Rollback performance: for each rollback of the period, the time from
//! its entry to the first decision served by the version it restored
//! (the recovery time as measured), or none when no such decision came in
//! the period.

use super::{Entry, Evidence, Facts, Section};
use serde_json::{Map, Value, json};

/// At most this many rollbacks are followed.
const MAX_ROLLBACKS: usize = 10_000;

#[derive(Debug)]
struct Rollback {
    seq: u64,
    time: String,
    time_ms: i64,
    model: String,
    version: String,
    deactivated: Value,
    restored: Option<(u64, String, i64)>,
}

/// The rollback-performance section.
#[derive(Debug, Default)]
pub(super) struct Rollbacks {
    rollbacks: Vec<Rollback>,
    left_off: u64,
}

impl Section for Rollbacks {
    fn name(&self) -> &'static str {
        "rollback_performance"
    }

    fn observe(&mut self, entry: &Entry) {
        match entry.kind() {
            "version_rolled_back" => {
                if self.rollbacks.len() >= MAX_ROLLBACKS {
                    self.left_off += 1;
                    return;
                }
                self.rollbacks.push(Rollback {
                    seq: entry.seq,
                    time: entry.time_text().to_owned(),
                    time_ms: entry.time_ms,
                    model: entry.str("model").unwrap_or_default().to_owned(),
                    version: entry.str("version").unwrap_or_default().to_owned(),
                    deactivated: entry.value("deactivated"),
                    restored: None,
                });
            }
            "decision" if matches!(entry.str("outcome"), Some("served" | "streaming")) => {
                let (Some(model), Some(version)) = (entry.str("model"), entry.str("version"))
                else {
                    return;
                };
                for rollback in &mut self.rollbacks {
                    if rollback.restored.is_none()
                        && rollback.model == model
                        && rollback.version == version
                    {
                        rollback.restored = Some((
                            entry.seq,
                            entry.time_text().to_owned(),
                            entry.time_ms - rollback.time_ms,
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>, _facts: &Facts<'_>) -> Value {
        let mut evidence = Evidence::default();
        let mut items = Vec::new();
        for rollback in &self.rollbacks {
            evidence.add(rollback.seq);
            let (decision_seq, decision_time, ms) = match &rollback.restored {
                Some((seq, time, ms)) => {
                    evidence.add(*seq);
                    (json!(seq), json!(time), json!(ms))
                }
                None => (Value::Null, Value::Null, Value::Null),
            };
            items.push(json!({
                "seq": rollback.seq,
                "time": rollback.time,
                "model": rollback.model,
                "restored_version": rollback.version,
                "deactivated": rollback.deactivated,
                "first_decision_seq": decision_seq,
                "first_decision_time": decision_time,
                "restore_ms": ms,
            }));
        }
        let measured: Vec<i64> = self
            .rollbacks
            .iter()
            .filter_map(|rollback| rollback.restored.as_ref().map(|(_, _, ms)| *ms))
            .collect();
        let mut object = Map::new();
        object.insert("rollbacks".to_owned(), Value::Array(items));
        object.insert("rollbacks_left_off".to_owned(), json!(self.left_off));
        object.insert("measured".to_owned(), json!(measured.len()));
        object.insert("max_restore_ms".to_owned(), json!(measured.iter().max()));
        evidence.put(&mut object);
        Value::Object(object)
    }
}
