//! The `kpi_snapshot` entries the gateway wrote since it started, kept in
//! memory for charts (the console): the latest [`MAX_POINTS`] per model,
//! each with its seq and time as in the ledger. The ledger holds every
//! snapshot ever written; the period report reads them from there.

use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

/// Snapshots kept per model.
pub(crate) const MAX_POINTS: usize = 500;

/// The history; cheap to clone (one shared store).
#[derive(Clone, Default)]
pub struct KpiHistory {
    models: Arc<Mutex<HashMap<String, VecDeque<Value>>>>,
}

impl KpiHistory {
    /// Keeps the snapshot of `model` written as entry `seq` at `time`
    /// (RFC 3339) with `members`, as the entry's JSON object.
    pub fn push(&self, model: &str, seq: u64, time: String, members: &Map<String, Value>) {
        let mut entry = members.clone();
        entry.insert("kind".to_owned(), "kpi_snapshot".into());
        entry.insert("seq".to_owned(), seq.into());
        entry.insert("time".to_owned(), time.into());
        let mut models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        let points = models.entry(model.to_owned()).or_default();
        if points.len() == MAX_POINTS {
            points.pop_front();
        }
        points.push_back(Value::Object(entry));
    }

    /// The snapshots of `model` kept, oldest first.
    pub fn of(&self, model: &str) -> Vec<Value> {
        let models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        models
            .get(model)
            .map(|points| points.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_snapshots_of_each_model_are_kept_with_their_seq_and_time() {
        let history = KpiHistory::default();
        let mut members = Map::new();
        members.insert("model".to_owned(), "scorer".into());
        for seq in 0..(MAX_POINTS as u64 + 3) {
            history.push("scorer", seq, format!("t{seq}"), &members);
        }
        history.push("other", 9, "t".into(), &members);
        let kept = history.of("scorer");
        assert_eq!(kept.len(), MAX_POINTS);
        assert_eq!(kept[0]["seq"], 3);
        assert_eq!(kept[MAX_POINTS - 1]["seq"], MAX_POINTS as u64 + 2);
        assert_eq!(kept[0]["kind"], "kpi_snapshot");
        assert_eq!(kept[0]["time"], "t3");
        assert_eq!(history.of("other").len(), 1);
        assert!(history.of("none").is_empty());
    }
}
