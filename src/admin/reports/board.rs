//! The report jobs' records: at most one running, at most `kept` in all
//! (the oldest ended one forgotten first), each with its state, phase and
//! progress as its thread sets them, and its files once made.

use crate::ledger::entry::{ActedBy, rfc3339_millis};
use crate::report::Period;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a job has come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Its thread is working.
    Running,
    /// The report is made and recorded: its files can be read.
    Done,
    /// It ended without a report (its error says why).
    Failed,
}

/// Where a running job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Verifying the log up to the pinned checkpoint.
    Verifying,
    /// Folding the period's entries into the report.
    Reading,
    /// Appending `report_issued` and deriving report.oscal.json.
    Recording,
    /// Ended.
    Ended,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Verifying => "verifying",
            Phase::Reading => "reading",
            Phase::Recording => "recording",
            Phase::Ended => "ended",
        }
    }
}

/// Why a job failed: a code (docs/evidence.md) and what happened.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub(super) code: &'static str,
    pub(super) message: String,
}

/// A made report: its three files and where it lies in the log.
#[derive(Debug)]
pub(crate) struct Made {
    pub(crate) json: Bytes,
    pub(crate) html: Bytes,
    pub(crate) oscal: Bytes,
    /// The period's first and last seq.
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
    /// The `report_issued` entry's seq.
    pub(crate) issued_seq: u64,
}

/// One job, as `GET /admin/reports/{id}` shows it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) id: u64,
    principal: String,
    from: String,
    to: String,
    asked: String,
    ended: Option<String>,
    state: State,
    phase: Phase,
    done: u64,
    total: u64,
    failure: Option<Failure>,
    pub(crate) made: Option<Arc<Made>>,
}

impl Record {
    /// `running`, `done` or `failed`.
    pub(crate) fn state(&self) -> &'static str {
        match self.state {
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut shown = json!({
            "id": self.id,
            "state": self.state(),
            "phase": self.phase.name(),
            "done": self.done,
            "total": self.total,
            "period": {"from": self.from, "to": self.to},
            "principal": self.principal,
            "asked": self.asked,
            "ended": self.ended,
            "error": self.failure.as_ref().map(|failure| {
                json!({"code": failure.code, "message": failure.message})
            }),
        });
        if let Some(made) = &self.made {
            shown["first_seq"] = json!(made.first_seq);
            shown["last_seq"] = json!(made.last_seq);
            shown["report_issued_seq"] = json!(made.issued_seq);
            shown["files"] = json!(super::FILES);
            shown["bundle"] = json!(format!("/admin/reports/{}/bundle", self.id));
        }
        shown
    }
}

/// Whether a job could start.
pub(super) enum Started {
    /// It did, with this id.
    Yes(u64),
    /// Another is running (its id).
    Busy(u64),
}

/// The records.
pub(super) struct Board {
    kept: usize,
    inner: Mutex<Records>,
}

struct Records {
    next_id: u64,
    records: VecDeque<Record>,
}

impl Board {
    pub(super) fn new(kept: usize) -> Self {
        Self {
            kept: kept.max(1),
            inner: Mutex::new(Records {
                next_id: 1,
                records: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new running job for `by` over `period`, unless one is running.
    pub(super) fn start(&self, by: &ActedBy, period: &Period) -> Started {
        let mut inner = self.lock();
        if let Some(running) = inner.records.iter().find(|r| r.state == State::Running) {
            return Started::Busy(running.id);
        }
        // INVARIANT: none is running, so every kept record has ended.
        while inner.records.len() >= self.kept {
            inner.records.pop_front();
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.records.push_back(Record {
            id,
            principal: by.principal.clone(),
            from: period.from.clone(),
            to: period.to.clone(),
            asked: rfc3339_millis(std::time::SystemTime::now()),
            ended: None,
            state: State::Running,
            phase: Phase::Verifying,
            done: 0,
            total: 0,
            failure: None,
            made: None,
        });
        Started::Yes(id)
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut Record)) {
        let mut inner = self.lock();
        if let Some(record) = inner.records.iter_mut().find(|r| r.id == id) {
            change(record);
        }
    }

    /// Job `id` is in `phase`, `done` of `total`.
    pub(super) fn progress(&self, id: u64, phase: Phase, done: u64, total: u64) {
        self.update(id, |record| {
            record.phase = phase;
            record.done = done;
            record.total = total;
        });
    }

    /// Job `id` ended: `made` or failed.
    pub(super) fn end(&self, id: u64, ended: Result<Made, Failure>) {
        let now = rfc3339_millis(std::time::SystemTime::now());
        self.update(id, |record| {
            record.phase = Phase::Ended;
            record.ended = Some(now);
            match ended {
                Ok(made) => {
                    record.state = State::Done;
                    record.made = Some(Arc::new(made));
                }
                Err(failure) => {
                    record.state = State::Failed;
                    record.failure = Some(failure);
                }
            }
        });
    }

    /// Job `id`'s record.
    pub(super) fn get(&self, id: u64) -> Option<Record> {
        self.lock().records.iter().find(|r| r.id == id).cloned()
    }

    /// Every kept record, oldest first.
    pub(super) fn list(&self) -> Vec<Value> {
        self.lock().records.iter().map(Record::to_json).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by() -> ActedBy {
        ActedBy {
            principal: "auditor".into(),
            roles: vec!["auditor".into()],
            issuer: None,
        }
    }

    #[test]
    fn one_runs_at_a_time_and_the_oldest_ended_ones_are_forgotten() {
        let board = Board::new(2);
        let period = Period::new("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z").unwrap();
        let Started::Yes(first) = board.start(&by(), &period) else {
            panic!("the first starts");
        };
        assert!(matches!(board.start(&by(), &period), Started::Busy(id) if id == first));
        let failed = Failure {
            code: "empty_period",
            message: "none".into(),
        };
        board.end(first, Err(failed.clone()));
        assert_eq!(board.get(first).unwrap().state(), "failed");
        let Started::Yes(second) = board.start(&by(), &period) else {
            panic!("starts once the first ended");
        };
        board.end(second, Err(failed));
        let Started::Yes(third) = board.start(&by(), &period) else {
            panic!("starts");
        };
        assert!(board.get(first).is_none(), "only two are kept");
        assert_eq!(board.list().len(), 2);
        assert_eq!(board.get(third).unwrap().to_json()["phase"], "verifying");
    }
}
