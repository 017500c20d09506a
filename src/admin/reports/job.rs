//! One report job on its blocking thread: pins the store at its latest
//! signed checkpoint, verifies the log up to there, folds the period into
//! the report ([`crate::report::from_store`], the offline command's code),
//! appends `report_issued` through the live ledger with the caller as its
//! principal, derives report.oscal.json, and leaves the files on the
//! board.
//!
//! The period's end: its `to`, or the pinned checkpoint when `to` lies
//! beyond it (the entries sequenced while the job runs are not read; the
//! entry's `last_seq` says where the period ended, as offline).

use super::board::{Board, Failure, Made, Phase};
use super::stopping::{STOPPED, StoppingStore};
use crate::ledger::checkpoint::NoteVerifier;
use crate::ledger::entry::{ActedBy, EntryBody};
use crate::ledger::pace::Pace;
use crate::ledger::sequencer::{KeyInForce, Ledger};
use crate::ledger::store::{LedgerStore, Pinned, StoreError};
use crate::ledger::verify::{Limits, VerifyError, verify_store_limited};
use crate::report::{self, Period, ReportError};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Time slept per unit of verification work: a quarter of a core at most.
const REST_PER_BUSY: u32 = 3;

/// One report job.
pub(super) struct Job {
    pub(super) id: u64,
    pub(super) by: ActedBy,
    pub(super) period: Period,
    pub(super) store: Arc<dyn LedgerStore>,
    pub(super) ledger: Ledger,
    pub(super) keys: KeyInForce,
    pub(super) board: Arc<Board>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) handle: tokio::runtime::Handle,
}

fn failure(code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

impl Job {
    /// Why a store read failed: the gateway stopping (the stopping store
    /// refuses reads once told), or the store itself.
    fn unreadable(&self, err: &StoreError) -> Failure {
        if self.stop.load(Ordering::Acquire) {
            return failure("shutting_down", STOPPED);
        }
        tracing::error!(error = %err, "report: the ledger could not be read");
        failure("ledger_unavailable", "the ledger could not be read")
    }

    /// Runs the job to its end, which the board records.
    pub(super) fn run(self) {
        let span = tracing::info_span!("report", id = self.id, principal = %self.by.principal);
        let _entered = span.enter();
        let started = std::time::Instant::now();
        let ended = self.make();
        match &ended {
            Ok(made) => tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "report: entries {}..={} reported, report_issued at seq {}",
                made.first_seq,
                made.last_seq,
                made.issued_seq
            ),
            Err(failure) => {
                tracing::warn!(code = failure.code, "report: not made: {}", failure.message);
            }
        }
        self.board.end(self.id, ended);
    }

    fn make(&self) -> Result<Made, Failure> {
        let (pinned, verifier) = self.pin()?;
        let pinned = Arc::new(pinned);
        self.verify(&pinned, &verifier)?;
        let (report, first) = self.read(pinned)?;
        self.record(report, first)
    }

    /// The store at its latest checkpoint and the key that signed it (read
    /// before and after, so a rotation in between is seen and retried).
    fn pin(&self) -> Result<(Pinned, NoteVerifier), Failure> {
        for _ in 0..3 {
            let before = self.keys.get();
            let Some(pinned) =
                Pinned::at_latest(self.store.clone()).map_err(|err| self.unreadable(&err))?
            else {
                return Err(failure(
                    "empty_period",
                    "the log is empty: no entry lies in the period",
                ));
            };
            if self.keys.get().vkey() == before.vkey() {
                return Ok((pinned, before));
            }
        }
        Err(failure(
            "ledger_unavailable",
            "the signing key kept rotating while the report started",
        ))
    }

    /// The period's entries are reported only from a log that verifies.
    fn verify(&self, pinned: &Pinned, verifier: &NoteVerifier) -> Result<(), Failure> {
        let stop = || self.stop.load(Ordering::Acquire);
        let mut pace = Pace::new(REST_PER_BUSY);
        let limits = Limits {
            threads: Some(1),
            stop: Some(&self.stop),
        };
        let verified = verify_store_limited(pinned, verifier, &limits, &mut |done, total| {
            self.board.progress(self.id, Phase::Verifying, done, total);
            pace.rest(&stop);
        });
        match verified {
            Ok(_) => Ok(()),
            Err(VerifyError::Stopped) => Err(failure("shutting_down", STOPPED)),
            Err(VerifyError::Store(err)) => Err(self.unreadable(&err)),
            Err(err) => {
                tracing::error!(error = %err, "report: the ledger does not verify");
                Err(failure(
                    "ledger_does_not_verify",
                    format!("the ledger does not verify, so no report: {err}"),
                ))
            }
        }
    }

    /// The report of the period, read from the pinned store; the period's
    /// first seq.
    fn read(&self, pinned: Arc<Pinned>) -> Result<(serde_json::Value, u64), Failure> {
        let store = StoppingStore::new(pinned, self.stop.clone());
        let computed = report::from_store(
            &store,
            self.period.clone(),
            report::controls::ControlMap::shipped(),
            true,
            // The running gateway's store is shared: never reopened.
            false,
            &mut |done, total| self.board.progress(self.id, Phase::Reading, done, total),
        );
        computed.map_err(|err| match err {
            ReportError::EmptyPeriod { .. } => failure("empty_period", err.to_string()),
            ReportError::Store(err) => self.unreadable(&err),
            other => {
                tracing::error!(error = %other, "report: not computed");
                failure("report_failed", other.to_string())
            }
        })
    }

    /// Writes the files, appends `report_issued` and derives the OSCAL
    /// document from that entry's time.
    fn record(&self, report: serde_json::Value, first: u64) -> Result<Made, Failure> {
        self.board.progress(self.id, Phase::Recording, 0, 1);
        if self.stop.load(Ordering::Acquire) {
            return Err(failure("shutting_down", STOPPED));
        }
        let json = report::to_bytes(&report);
        let html = report::html::render(&report).into_bytes();
        let members = report::issued::members(&report, &json, &html, Some(&self.by));
        let appended = self
            .handle
            .block_on(self.ledger.append(EntryBody::Governance {
                kind: report::REPORT_ISSUED,
                members,
            }));
        let seq = match appended {
            Ok(ack) => ack.seq,
            Err(err) => {
                tracing::error!(error = %err, "report: report_issued not recorded");
                return Err(failure(
                    "ledger_unavailable",
                    "the ledger could not record the report_issued entry",
                ));
            }
        };
        let seq = seq.ok_or_else(|| failure("ledger_unavailable", "the ledger gave no seq"))?;
        let issued = self.issued_time(seq)?;
        let oscal = report::oscal::render(&json, &report, &issued);
        self.board.progress(self.id, Phase::Recording, 1, 1);
        let seq_of = |name: &str| report["scope"][name].as_u64().unwrap_or_default();
        Ok(Made {
            json: Bytes::from(json),
            html: Bytes::from(html),
            oscal: Bytes::from(oscal),
            first_seq: first,
            last_seq: seq_of("last_seq"),
            issued_seq: seq,
        })
    }

    /// The `time` of the entry at `seq`, read back as `verify --report`
    /// reads it from the bundle.
    fn issued_time(&self, seq: u64) -> Result<String, Failure> {
        let bytes = self
            .store
            .entry(seq)
            .map_err(|err| self.unreadable(&err))?
            .ok_or_else(|| {
                failure(
                    "ledger_unavailable",
                    "the report_issued entry is not stored",
                )
            })?;
        let entry: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|err| failure("ledger_unavailable", err.to_string()))?;
        entry["time"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| failure("ledger_unavailable", "the report_issued entry has no time"))
    }
}
