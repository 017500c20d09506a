//! The task that writes `kpi_snapshot` ledger entries: for every model
//! with `[models.kpi]`, every `snapshot_every_secs` (skipped while the
//! figures are unchanged since the model's last snapshot), whenever the
//! model's serving version changes (citing the registry entry's seq), and
//! once more at a clean stop. The figures are the aggregator's report,
//! answered in turn after every exchange handed over before; a replica
//! of a fleet adds the fleet's report of the model (`fleet`).
//!
//! The task is owned by the app and stopped after the in-flight requests
//! drained, before `gateway_stopped`. A snapshot that cannot be written is
//! logged and counted (`govgate_kpi_snapshot_failures_total`); the gateway
//! goes on serving.

use super::aggregator::KpiRecorder;
use super::history::KpiHistory;
use super::snapshot::{self, MAX_MEMBERS_BYTES, Trigger};
use crate::config::ModelConfig;
use crate::ledger::entry::EntryBody;
use crate::ledger::sequencer::Ledger;
use prometheus::{IntCounterVec, Opts, Registry};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Serving-version changes waiting for the task; registry changes are
/// rare, so a full queue means the task is stuck (counted, not waited for).
const QUEUE: usize = 256;

/// A model's serving version as the registry leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingChange {
    /// The model.
    pub model: String,
    /// The version serving now (`None`: none, e.g. after a revocation).
    pub serving: Option<String>,
    /// The version that served before.
    pub previous: Option<String>,
    /// Seq of the registry entry that changed it; `None` for the state at
    /// start (no snapshot is written for it).
    pub cause_seq: Option<u64>,
}

/// Each KPI model's serving version.
type ServingVersions = HashMap<String, Option<String>>;

#[derive(Clone)]
struct Failures(IntCounterVec);

impl Failures {
    fn count(&self, model: &str, reason: &str) {
        self.0.with_label_values(&[model, reason]).inc();
    }
}

/// Tells the task about registry changes; cheap to clone.
#[derive(Clone)]
pub struct SnapshotHandle {
    tx: mpsc::Sender<ServingChange>,
    models: Arc<[String]>,
    /// Each model's serving version as last seen; `None` before the first
    /// registry snapshot.
    seen: Arc<Mutex<Option<ServingVersions>>>,
    failures: Failures,
}

impl std::fmt::Debug for SnapshotHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotHandle").finish_non_exhaustive()
    }
}

impl SnapshotHandle {
    /// Called with every registry snapshot: `active` answers a model's
    /// serving version in it, `cause_seq` is the seq of the entry applied
    /// last. Queues a snapshot for each KPI model whose serving version
    /// changed; the first call only records where they stand. Never waits.
    pub fn registry_changed<'a>(
        &self,
        active: impl Fn(&str) -> Option<&'a str>,
        cause_seq: Option<u64>,
    ) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let first = seen.is_none();
        let seen = seen.get_or_insert_with(HashMap::new);
        for model in self.models.iter() {
            let serving = active(model).map(str::to_owned);
            let previous = seen.insert(model.clone(), serving.clone()).flatten();
            if !first && previous == serving {
                continue;
            }
            let change = ServingChange {
                model: model.clone(),
                serving,
                previous,
                cause_seq: if first { None } else { cause_seq },
            };
            if self.tx.try_send(change).is_err() {
                tracing::error!(%model, "KPI snapshot of a version change not queued");
                self.failures.count(model, "queue_full");
            }
        }
    }
}

/// The snapshot task, before it runs.
pub struct KpiSnapshots {
    recorder: KpiRecorder,
    ledger: Ledger,
    /// Per KPI model, in name order: its `snapshot_every_secs`.
    every: Vec<(String, Option<Duration>)>,
    rx: mpsc::Receiver<ServingChange>,
    written: IntCounterVec,
    failures: Failures,
    history: KpiHistory,
    /// A replica of a fleet: each snapshot carries the fleet's figures too.
    fleet: bool,
}

impl KpiSnapshots {
    /// Each snapshot carries the fleet's figures too (`fleet`), the
    /// fleet's windows of the model as this replica folded them.
    pub fn with_fleet(mut self) -> Self {
        self.fleet = true;
        self
    }

    /// The snapshots this task writes, kept for charts.
    pub fn history(&self) -> KpiHistory {
        self.history.clone()
    }

    /// The task for every model of `models` with `[models.kpi]`, and the
    /// handle the registry's changes go through. Registers its metrics.
    pub fn new(
        recorder: KpiRecorder,
        ledger: Ledger,
        models: &[ModelConfig],
        registry: &Registry,
    ) -> Result<(Self, SnapshotHandle), prometheus::Error> {
        let mut every: Vec<(String, Option<Duration>)> = models
            .iter()
            .filter_map(|m| Some((m.name.clone(), m.kpi.as_ref()?.snapshot_every)))
            .collect();
        every.sort();
        let written = IntCounterVec::new(
            Opts::new(
                "govgate_kpi_snapshots_total",
                "kpi_snapshot ledger entries written, by trigger: interval, version_change, stop.",
            ),
            &["model", "trigger"],
        )?;
        registry.register(Box::new(written.clone()))?;
        let failures = IntCounterVec::new(
            Opts::new(
                "govgate_kpi_snapshot_failures_total",
                "kpi_snapshot entries not written, by reason: ledger (the append failed), aggregator (no report), queue_full (a version change not queued).",
            ),
            &["model", "reason"],
        )?;
        registry.register(Box::new(failures.clone()))?;
        for (model, _) in &every {
            for trigger in ["interval", "version_change", "stop"] {
                written.with_label_values(&[model, trigger]).inc_by(0);
            }
            for reason in ["ledger", "aggregator", "queue_full"] {
                failures.with_label_values(&[model, reason]).inc_by(0);
            }
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let failures = Failures(failures);
        let handle = SnapshotHandle {
            tx,
            models: every.iter().map(|(m, _)| m.clone()).collect(),
            seen: Arc::new(Mutex::new(None)),
            failures: failures.clone(),
        };
        Ok((
            KpiSnapshots {
                recorder,
                ledger,
                every,
                rx,
                written,
                failures,
                history: KpiHistory::default(),
                fleet: false,
            },
            handle,
        ))
    }

    /// Writes snapshots until `stop` resolves, then one `stop` snapshot per
    /// model, and returns. A snapshot being written when `stop` resolves
    /// is finished first.
    pub async fn run(mut self, stop: impl Future<Output = ()> + Send) {
        let mut stop = std::pin::pin!(stop);
        let mut state = State::default();
        let start = Instant::now();
        let mut due: HashMap<String, Instant> = self
            .every
            .iter()
            .filter_map(|(model, every)| Some((model.clone(), start + (*every)?)))
            .collect();
        let mut changes_open = true;
        loop {
            let next = due.values().min().copied();
            let timer = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut stop => break,
                change = self.rx.recv(), if changes_open => {
                    let Some(change) = change else {
                        changes_open = false;
                        continue;
                    };
                    let trigger = change.cause_seq.map(|cause_seq| Trigger::VersionChange {
                        cause_seq,
                        previous: change.previous.clone(),
                    });
                    state.serving.insert(change.model.clone(), change.serving);
                    if let Some(trigger) = trigger {
                        self.write(&mut state, &change.model, trigger).await;
                    }
                }
                () = timer => {
                    let now = Instant::now();
                    for (model, every) in &self.every {
                        let Some(every) = every else { continue };
                        if due.get(model).is_some_and(|at| *at <= now) {
                            self.write(&mut state, model, Trigger::Interval).await;
                            due.insert(model.clone(), Instant::now() + *every);
                        }
                    }
                }
            }
        }
        // Version changes queued before the stop are written first.
        while let Ok(change) = self.rx.try_recv() {
            let model = change.model.clone();
            state.serving.insert(model.clone(), change.serving);
            if let Some(cause_seq) = change.cause_seq {
                let trigger = Trigger::VersionChange {
                    cause_seq,
                    previous: change.previous,
                };
                self.write(&mut state, &model, trigger).await;
            }
        }
        let models: Vec<String> = self.every.iter().map(|(m, _)| m.clone()).collect();
        for model in models {
            self.write(&mut state, &model, Trigger::Stop).await;
        }
    }

    /// Writes one model's snapshot; an interval snapshot only if the
    /// figures changed since the model's last one.
    async fn write(&self, state: &mut State, model: &str, trigger: Trigger) {
        let Some(report) = self.recorder.report(model).await else {
            tracing::error!(%model, "KPI snapshot not written: the aggregator gave no report");
            self.failures.count(model, "aggregator");
            return;
        };
        let fleet = if self.fleet {
            self.recorder.fleet_report(model).await
        } else {
            None
        };
        let serving = state.serving.get(model).cloned().flatten();
        let every = self
            .every
            .iter()
            .find(|(m, _)| m == model)
            .and_then(|(_, every)| *every);
        let name = trigger.as_str();
        let interval = trigger == Trigger::Interval;
        // Serialising and bounding a large report is CPU work: off the
        // async workers.
        let built = tokio::task::spawn_blocking(move || {
            snapshot::members_with_fleet(
                &report,
                fleet.as_ref(),
                &trigger,
                serving.as_deref(),
                every,
                MAX_MEMBERS_BYTES,
            )
        })
        .await;
        let Ok(members) = built else {
            tracing::error!(%model, "KPI snapshot not written: building it failed");
            self.failures.count(model, "aggregator");
            return;
        };
        let figures = snapshot::figures(&members).map(|part| part.cloned());
        if interval && state.last.get(model) == Some(&figures) {
            return;
        }
        let entry = EntryBody::Governance {
            kind: "kpi_snapshot",
            members: members.clone(),
        };
        match self.ledger.append(entry).await {
            Ok(ack) => {
                if let (Some(seq), Some(time)) = (ack.seq, ack.time) {
                    let time = crate::ledger::entry::rfc3339_millis(time);
                    self.history.push(model, seq, time, &members);
                }
                self.written.with_label_values(&[model, name]).inc();
                state.last.insert(model.to_owned(), figures);
            }
            Err(err) => {
                tracing::error!(%model, trigger = name, error = %err, "KPI snapshot not recorded in the ledger");
                self.failures.count(model, "ledger");
            }
        }
    }
}

/// What the task remembers between snapshots.
#[derive(Default)]
struct State {
    /// Each model's serving version.
    serving: ServingVersions,
    /// Each model's figures in its last snapshot.
    last: HashMap<String, [Option<Value>; 3]>,
}

#[cfg(test)]
mod tests;
