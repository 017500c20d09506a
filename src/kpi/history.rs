//! The `kpi_snapshot` entries the gateway wrote since it started, kept in
//! memory for charts (the console): the latest [`MAX_POINTS`] per model,
//! each with its seq and time as in the ledger. The ledger holds every
//! snapshot ever written; the period report reads them from there, and
//! the console's history of a time range reads from the ledger only the
//! part these do not cover ([`KpiHistory::covered`]).

use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Snapshots kept per model.
pub(crate) const MAX_POINTS: usize = 500;

/// One model's snapshots kept.
#[derive(Default)]
struct Points {
    points: VecDeque<Value>,
    /// The seq of the latest snapshot let go (the oldest kept came after).
    dropped: Option<u64>,
}

/// The history; cheap to clone (one shared store).
#[derive(Clone, Default)]
pub struct KpiHistory {
    models: Arc<Mutex<HashMap<String, Points>>>,
    /// The ledger's size when the snapshot task started: every snapshot
    /// from this seq on is pushed here.
    start: Arc<AtomicU64>,
}

/// The snapshots of one model held in memory, and from which seq on they
/// are every one the ledger holds.
#[derive(Debug, Default)]
pub struct Covered {
    /// Every snapshot of the model at or after this seq is in `snapshots`.
    pub since: u64,
    /// Oldest first.
    pub snapshots: Vec<Value>,
}

impl KpiHistory {
    /// Says that every snapshot from `seq` on (the ledger's size when the
    /// snapshot task starts) will be pushed.
    pub fn starts_at(&self, seq: u64) {
        self.start.store(seq, Ordering::Release);
    }

    /// Keeps the snapshot of `model` written as entry `seq` at `time`
    /// (RFC 3339) with `members`, as the entry's JSON object.
    pub fn push(&self, model: &str, seq: u64, time: String, members: &Map<String, Value>) {
        let mut entry = members.clone();
        entry.insert("kind".to_owned(), "kpi_snapshot".into());
        entry.insert("seq".to_owned(), seq.into());
        entry.insert("time".to_owned(), time.into());
        let mut models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = models.entry(model.to_owned()).or_default();
        if kept.points.len() == MAX_POINTS
            && let Some(oldest) = kept.points.pop_front()
        {
            kept.dropped = oldest["seq"].as_u64();
        }
        kept.points.push_back(Value::Object(entry));
    }

    /// The snapshots of `model` kept, oldest first.
    pub fn of(&self, model: &str) -> Vec<Value> {
        self.covered(model).snapshots
    }

    /// The snapshots of `model` kept and the seq from which they are all
    /// the ledger holds.
    pub fn covered(&self, model: &str) -> Covered {
        let start = self.start.load(Ordering::Acquire);
        let models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        match models.get(model) {
            Some(kept) => Covered {
                since: kept
                    .dropped
                    .map_or(start, |seq| seq.saturating_add(1).max(start)),
                snapshots: kept.points.iter().cloned().collect(),
            },
            None => Covered {
                since: start,
                snapshots: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_snapshots_of_each_model_are_kept_with_their_seq_and_time() {
        let history = KpiHistory::default();
        history.starts_at(2);
        let mut members = Map::new();
        members.insert("model".to_owned(), "scorer".into());
        assert_eq!(history.covered("scorer").since, 2);
        for seq in 2..(MAX_POINTS as u64 + 5) {
            history.push("scorer", seq, format!("t{seq}"), &members);
        }
        history.push("other", 9, "t".into(), &members);
        let kept = history.of("scorer");
        assert_eq!(kept.len(), MAX_POINTS);
        assert_eq!(kept[0]["seq"], 5);
        assert_eq!(kept[MAX_POINTS - 1]["seq"], MAX_POINTS as u64 + 4);
        assert_eq!(kept[0]["kind"], "kpi_snapshot");
        assert_eq!(kept[0]["time"], "t5");
        // Seq 4 was let go: the kept ones cover from 5 on.
        assert_eq!(history.covered("scorer").since, 5);
        assert_eq!(history.covered("other").since, 2);
        assert_eq!(history.of("other").len(), 1);
        assert!(history.of("none").is_empty());
        assert_eq!(history.covered("none").since, 2);
    }
}
