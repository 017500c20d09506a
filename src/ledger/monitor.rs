//! Continuous verification of the running gateway's own log: a background
//! task that re-checks the store every `ledger.verify_every_secs`,
//! incrementally from the last verified checkpoint ([`incremental`]), and
//! fully on the first round, every `ledger.verify_full_every_secs` (old
//! entries damaged underneath are found only so), after a failure and on
//! demand ([`Monitor::request_full`]).
//!
//! The checking runs on a blocking thread, one thread at a time, paced to
//! `ledger.verify_cpu_share` of one core: after each chunk it sleeps
//! `(1 - share) / share` times as long as the chunk took, so the request
//! path keeps its throughput and latency. The pacing holds only while the
//! log grows (requests are being recorded): on an idle gateway a round runs
//! at the speed of one core. Each completed round that checked
//! something new is recorded as a `ledger_verified` entry (so at most one
//! per round; an idle log adds none), its result is on
//! `GET /admin/ledger/verification` and in the metrics, and a failure
//! sets `govgate_ledger_verification_failed` (the shipped critical alert).

mod incremental;
#[cfg(test)]
mod pace_tests;

use super::checkpoint::NoteVerifier;
use super::entry::{EntryBody, rfc3339_millis};
pub use super::pace::CpuShare;
use super::pace::{Clock, Pace};
use super::sequencer::Ledger;
use super::store::LedgerStore;
use super::verify::{Limits, VerifyError, verify_store_limited};
use incremental::Anchor;
use prometheus::{Gauge, IntCounterVec, IntGauge, Opts, Registry};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Entries an incremental round checks between rests.
const CHUNK: u64 = 1024;

/// How a round checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The whole log, everything `govgate verify` checks.
    Full,
    /// The entries and checkpoints since the last verified checkpoint.
    Incremental,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }
}

/// A round in progress.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Running {
    /// Its number (rounds are numbered from 1 since the gateway started).
    pub run: u64,
    /// How it checks.
    pub mode: Mode,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Entries checked so far.
    pub checked: u64,
    /// Entries it will check.
    pub total: u64,
}

/// A completed round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Its number.
    pub run: u64,
    /// How it checked.
    pub mode: Mode,
    /// First seq checked.
    pub from_seq: u64,
    /// Checkpoint size checked up to (for a failure: what was verified
    /// before, unchanged).
    pub to_size: u64,
    /// `ok`, `failed` (the log does not verify) or `error` (the store
    /// could not be read: nothing concluded).
    pub result: &'static str,
    /// On `failed`: the first bad seq.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad_seq: Option<u64>,
    /// On `failed` or `error`: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it ended (RFC 3339).
    pub finished_at: String,
    /// How long it took.
    pub seconds: f64,
    /// The seq of its `ledger_verified` entry, when one was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_seq: Option<u64>,
}

/// What the admin API shows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    /// Seconds between background rounds; `None`: only on demand.
    pub every_secs: Option<u64>,
    /// The share of one core a round takes while requests are served.
    pub cpu_share: f64,
    /// Rounds started since the gateway started.
    pub runs_started: u64,
    /// Whether a full round was asked for and has not started yet.
    pub full_pending: bool,
    /// The round in progress.
    pub running: Option<Running>,
    /// The last completed round.
    pub last: Option<Outcome>,
    /// The last completed full round.
    pub last_full: Option<Outcome>,
    /// Entries verified (the size of the last verified checkpoint).
    pub verified_size: u64,
}

/// The metric families of continuous verification.
#[derive(Clone)]
struct MonitorMetrics {
    verified_size: IntGauge,
    finished: Gauge,
    failed: IntGauge,
    rounds: IntCounterVec,
}

impl MonitorMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            verified_size: IntGauge::new(
                "govgate_ledger_verified_size",
                "Entries the running gateway has verified (size of the last verified checkpoint).",
            )?,
            finished: Gauge::new(
                "govgate_ledger_verification_timestamp_seconds",
                "Unix time the last verification round ended (any result).",
            )?,
            failed: IntGauge::new(
                "govgate_ledger_verification_failed",
                "1 when the last verification round found the log does not verify, else 0.",
            )?,
            rounds: IntCounterVec::new(
                Opts::new(
                    "govgate_ledger_verifications_total",
                    "Verification rounds of the running gateway, by mode and result.",
                ),
                &["mode", "result"],
            )?,
        };
        registry.register(Box::new(metrics.verified_size.clone()))?;
        registry.register(Box::new(metrics.finished.clone()))?;
        registry.register(Box::new(metrics.failed.clone()))?;
        registry.register(Box::new(metrics.rounds.clone()))?;
        for mode in [Mode::Full, Mode::Incremental] {
            for result in ["ok", "failed", "error"] {
                metrics.rounds.with_label_values(&[mode.name(), result]);
            }
        }
        Ok(metrics)
    }
}

struct Shared {
    status: Mutex<Status>,
    wake: tokio::sync::Notify,
    metrics: MonitorMetrics,
    every: Option<Duration>,
    full_every: Option<Duration>,
    share: CpuShare,
}

/// The handle on continuous verification: status, requests for a round.
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
}

impl Monitor {
    /// A monitor running a round every `every` (`None`: only on demand),
    /// a full one when `full_every` has passed since the last full one,
    /// each taking `share` of one core while the log grows, its metric
    /// families registered in `registry`. Nothing runs until
    /// [`Monitor::run`].
    pub fn new(
        every: Option<Duration>,
        full_every: Option<Duration>,
        share: CpuShare,
        registry: &Registry,
    ) -> Result<Monitor, prometheus::Error> {
        let metrics = MonitorMetrics::register(registry)?;
        Ok(Monitor {
            shared: Arc::new(Shared {
                status: Mutex::new(Status {
                    every_secs: every.map(|every| every.as_secs()),
                    cpu_share: share.get(),
                    ..Status::default()
                }),
                wake: tokio::sync::Notify::new(),
                metrics,
                every,
                full_every,
                share,
            }),
        })
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.lock().clone()
    }

    /// Asks for a full round; returns its number (the next round to start,
    /// after the one running if any).
    pub fn request_full(&self) -> u64 {
        let run = {
            let mut status = self.lock();
            status.full_pending = true;
            status.runs_started + 1
        };
        self.shared.wake.notify_one();
        run
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs rounds until `stop` resolves: a round in progress is stopped
    /// at its next chunk (nothing recorded) and waited for. `ledger` is
    /// where outcomes are recorded; the task holds it until it returns.
    pub async fn run(
        self,
        store: Arc<dyn LedgerStore>,
        ledger: Ledger,
        stop: impl Future<Output = ()> + Send,
    ) {
        let mut stop = std::pin::pin!(stop);
        let mut ticks = self.shared.every.map(|every| {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        let mut anchor: Option<Anchor> = None;
        // The failure last recorded: the same failure found again is not
        // recorded again (the metric and the alert stay on).
        let mut recorded_failure: Option<(u64, String)> = None;
        let mut last_full: Option<Instant> = None;
        loop {
            let tick = async {
                match ticks.as_mut() {
                    Some(ticks) => {
                        ticks.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut stop => return,
                () = tick => {}
                () = self.shared.wake.notified() => {}
            }
            let (run, mode) = {
                let mut status = self.lock();
                status.runs_started += 1;
                let full_due = match (last_full, self.shared.full_every) {
                    (Some(at), Some(every)) => at.elapsed() >= every,
                    _ => false,
                };
                let mode = if status.full_pending || anchor.is_none() || full_due {
                    Mode::Full
                } else {
                    Mode::Incremental
                };
                status.full_pending = false;
                status.running = Some(Running {
                    run: status.runs_started,
                    mode,
                    started_at: rfc3339_millis(SystemTime::now()),
                    checked: 0,
                    total: 0,
                });
                (status.runs_started, mode)
            };
            if mode == Mode::Full {
                last_full = Some(Instant::now());
            }
            // The key in force now; a rotation during the round makes its
            // conclusion void (the log it saw and the key may not match).
            let verifier = ledger.key_in_force();
            let halt = Arc::new(AtomicBool::new(false));
            let job = {
                let (store, verifier, halt, monitor) =
                    (store.clone(), verifier.clone(), halt.clone(), self.clone());
                let previous = anchor.clone();
                tokio::task::spawn_blocking(move || {
                    let mut pace = Pace::sharing(monitor.shared.share);
                    let mut grows = growth(store.as_ref());
                    let round = Round {
                        store: store.as_ref(),
                        verifier: &verifier,
                        halt: &halt,
                        monitor: &monitor,
                    };
                    round.run(mode, previous, &mut pace, &mut grows)
                })
            };
            let mut job = std::pin::pin!(job);
            let finished = tokio::select! {
                finished = &mut job => finished,
                () = &mut stop => {
                    halt.store(true, Ordering::Release);
                    let _ = job.await;
                    return;
                }
            };
            let Ok(mut finished) = finished else {
                tracing::error!("the ledger verification thread panicked");
                self.lock().running = None;
                continue;
            };
            if ledger.key_in_force().vkey() != verifier.vkey() {
                finished.result = Err(VerifyError::Store(super::store::StoreError::Engine(
                    "the signing key rotated during the round; verified again next round"
                        .to_owned(),
                )));
                finished.anchor = None;
                anchor = None;
            }
            let mut outcome = finished.outcome(run, mode);
            let body = match &finished.result {
                Ok(covered) => {
                    anchor = finished.anchor.clone();
                    recorded_failure = None;
                    // An idle log: nothing new but our own entries.
                    (mode == Mode::Full || *covered > 0).then(|| outcome.body(None))
                }
                Err(VerifyError::Bad { seq, reason }) => {
                    // Verified again from scratch next round.
                    anchor = None;
                    let failure = (*seq, reason.clone());
                    tracing::error!(
                        bad_seq = seq,
                        %reason,
                        "CRITICAL: the ledger does not verify"
                    );
                    (recorded_failure.as_ref() != Some(&failure)).then(|| {
                        recorded_failure = Some(failure.clone());
                        outcome.body(Some(failure))
                    })
                }
                Err(err) => {
                    tracing::warn!(error = %err, "ledger verification could not complete");
                    None
                }
            };
            if let Some(body) = body {
                tokio::select! {
                    acked = ledger.append(body) => match acked {
                        Ok(ack) => outcome.recorded_seq = ack.seq,
                        Err(err) => tracing::warn!(error = %err, "ledger_verified not recorded"),
                    },
                    () = &mut stop => {
                        self.finish(outcome);
                        return;
                    }
                }
            }
            self.finish(outcome);
        }
    }

    /// Publishes a completed round.
    fn finish(&self, outcome: Outcome) {
        let metrics = &self.shared.metrics;
        metrics
            .rounds
            .with_label_values(&[outcome.mode.name(), outcome.result])
            .inc();
        metrics.finished.set(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64()),
        );
        match outcome.result {
            "ok" => {
                metrics.failed.set(0);
                metrics
                    .verified_size
                    .set(i64::try_from(outcome.to_size).unwrap_or(i64::MAX));
            }
            "failed" => metrics.failed.set(1),
            _ => {}
        }
        let mut status = self.lock();
        status.running = None;
        if outcome.result == "ok" {
            status.verified_size = outcome.to_size;
        }
        if outcome.mode == Mode::Full {
            status.last_full = Some(outcome.clone());
        }
        status.last = Some(outcome);
    }

    /// Progress of the round in progress.
    fn progress(&self, checked: u64, total: u64) {
        if let Some(running) = self.lock().running.as_mut() {
            running.checked = checked;
            running.total = total;
        }
    }
}

/// What a round found.
struct Finished {
    /// Entries of other kinds than `ledger_verified` checked, or the problem.
    result: Result<u64, VerifyError>,
    from_seq: u64,
    /// The state after the round, on success.
    anchor: Option<Anchor>,
    seconds: f64,
}

impl Finished {
    fn outcome(&self, run: u64, mode: Mode) -> Outcome {
        let to_size = self.anchor.as_ref().map_or(self.from_seq, |a| a.size);
        let (result, bad_seq, reason) = match &self.result {
            Ok(_) => ("ok", None, None),
            Err(VerifyError::Bad { seq, reason }) => ("failed", Some(*seq), Some(reason.clone())),
            Err(err) => ("error", None, Some(err.to_string())),
        };
        Outcome {
            run,
            mode,
            from_seq: self.from_seq,
            to_size,
            result,
            bad_seq,
            reason,
            finished_at: rfc3339_millis(SystemTime::now()),
            seconds: self.seconds,
            recorded_seq: None,
        }
    }
}

impl Outcome {
    fn body(&self, failure: Option<(u64, String)>) -> EntryBody {
        EntryBody::LedgerVerified {
            mode: self.mode.name(),
            from_seq: self.from_seq,
            to_size: self.to_size,
            result: self.result,
            failure,
        }
    }
}

/// Whether the log grew since the last call: requests are being recorded,
/// so the gateway is under load and a round keeps to its share.
fn growth(store: &dyn LedgerStore) -> impl FnMut() -> bool + '_ {
    let mut seen = store.size().ok();
    move || {
        let now = store.size().ok();
        // A store that cannot say counts as loaded: pacing is the safe side.
        let grew = now.is_none() || now != seen;
        seen = now;
        grew
    }
}

/// What one round reads and reports to.
struct Round<'r> {
    store: &'r dyn LedgerStore,
    verifier: &'r NoteVerifier,
    halt: &'r AtomicBool,
    monitor: &'r Monitor,
}

impl Round<'_> {
    /// One round, on a blocking thread: after each chunk it reports its
    /// progress and rests on `pace` when `loaded` says the gateway is busy.
    fn run<C: Clock>(
        &self,
        mode: Mode,
        previous: Option<Anchor>,
        pace: &mut Pace<C>,
        loaded: &mut dyn FnMut() -> bool,
    ) -> Finished {
        let Round {
            store,
            verifier,
            halt,
            monitor,
        } = *self;
        let started = Instant::now();
        let mut rest = |checked: u64, total: u64| {
            monitor.progress(checked, total);
            pace.rest_if(loaded(), &|| halt.load(Ordering::Acquire));
        };
        let (from_seq, result, anchor) = match (mode, previous) {
            (Mode::Incremental, Some(mut anchor)) => {
                let from = anchor.size;
                match anchor.advance(store, CHUNK, halt, &mut rest) {
                    Ok(covered) => (from, Ok(covered.others), Some(anchor)),
                    Err(err) => (from, Err(err), None),
                }
            }
            _ => {
                let limits = Limits {
                    threads: Some(1),
                    stop: Some(halt),
                };
                let verified = verify_store_limited(store, verifier, &limits, &mut rest).and_then(
                    |verified| {
                        let anchor = Anchor::after_full(
                            store,
                            verified.latest_checkpoint_size,
                            verifier.clone(),
                        )?;
                        Ok((verified.entries, anchor))
                    },
                );
                match verified {
                    Ok((entries, anchor)) => (0, Ok(entries), Some(anchor)),
                    Err(err) => (0, Err(err), None),
                }
            }
        };
        Finished {
            result,
            from_seq,
            anchor,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}
