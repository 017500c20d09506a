//! Payload retention on a running gateway (`[models.retention]
//! payloads`): every `retention.every_secs`, for each model with a
//! setting, the decisions recorded longer ago than it keeps payloads lose
//! them, through the online erasure's path (a `payload_erased` entry per
//! payload record first, reason `retention: ...`), and the run is recorded
//! as a `retention_run` entry when it erased anything. Entries and proofs
//! stay: only the payloads go.
//!
//! Each model's look starts where its last ended (`through_seq` of the
//! last `retention_run`, read at start), so a run reads only what
//! expired since; a run erases at most [`PER_RUN`] decisions per model and
//! the next follows at once when more are left.

use super::erasure::Eraser;
use crate::config::{Config, PayloadRetention};
use crate::ledger::entry::EntryBody;
use crate::ledger::erase::expired;
use crate::ledger::export::UtcTime;
use crate::ledger::sequencer::Ledger;
use crate::ledger::store::{LedgerStore, StoreError};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most decisions of one model a run erases.
const PER_RUN: usize = 10_000;
/// The pause before the next run when a run left decisions for later.
const MORE_AFTER: Duration = Duration::from_secs(1);
/// The entry kind recording a run.
pub(super) const RUN_KIND: &str = "retention_run";

/// The retention task's parts.
pub(super) struct Retention {
    eraser: Arc<Eraser>,
    store: Arc<dyn LedgerStore>,
    ledger: Ledger,
    every: Duration,
    /// Models with a setting, in config order.
    models: Vec<(String, PayloadRetention)>,
    /// Where each model's next look starts.
    marks: std::sync::Mutex<HashMap<String, u64>>,
    erased: IntCounterVec,
    last_run: IntGauge,
}

/// What one run did.
#[derive(Debug, Default)]
struct RunOutcome {
    /// Payload records erased, all models together.
    erased: u64,
    /// A model has more expired decisions than one run takes.
    more: bool,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("reading the ledger: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Erase(String),
}

impl Retention {
    /// The task's parts, or `None` when no model keeps payloads for a
    /// limited time. Reads the last `retention_run` entry for where each
    /// model's look starts.
    pub(super) fn new(
        config: &Config,
        eraser: Arc<Eraser>,
        store: Arc<dyn LedgerStore>,
        ledger: Ledger,
        registry: &Registry,
    ) -> Result<Option<Retention>, super::AppError> {
        let models: Vec<(String, PayloadRetention)> = config
            .models
            .iter()
            .filter_map(|m| Some((m.name.clone(), m.retention.clone()?)))
            .collect();
        if models.is_empty() {
            return Ok(None);
        }
        let erased = IntCounterVec::new(
            Opts::new(
                "govgate_retention_payloads_erased_total",
                "Payload records erased by payload retention, by model",
            ),
            &["model"],
        )?;
        let last_run = IntGauge::new(
            "govgate_retention_last_run_timestamp_seconds",
            "When the last payload retention run finished (Unix seconds)",
        )?;
        registry.register(Box::new(erased.clone()))?;
        registry.register(Box::new(last_run.clone()))?;
        let marks = last_marks(store.as_ref())?;
        Ok(Some(Retention {
            eraser,
            store,
            ledger,
            every: config.retention.every,
            models,
            marks: std::sync::Mutex::new(marks),
            erased,
            last_run,
        }))
    }

    /// Runs until `stop`: a run now, then one every interval (sooner when
    /// a run left expired decisions). A run in progress stops after its
    /// group once the gateway stops (the eraser is told first).
    pub(super) async fn run(self: Arc<Self>, stop: impl Future<Output = ()> + Send) {
        let mut stop = std::pin::pin!(stop);
        let mut pause = Duration::ZERO;
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
            let this = self.clone();
            let runtime = tokio::runtime::Handle::current();
            let outcome = tokio::task::spawn_blocking(move || this.run_once(&runtime)).await;
            pause = match outcome {
                Ok(Ok(outcome)) if outcome.more => MORE_AFTER,
                Ok(Ok(_)) => self.every,
                Ok(Err(_)) if self.eraser.stopping() => {
                    tracing::info!(
                        "payload retention run stopped with the gateway; the next run goes on"
                    );
                    self.every
                }
                Ok(Err(err)) => {
                    tracing::error!(error = %err, "payload retention run failed; tried again later");
                    self.every
                }
                Err(_) => {
                    tracing::error!("the payload retention thread panicked");
                    self.every
                }
            };
        }
    }

    /// One run, on a blocking thread.
    fn run_once(&self, runtime: &tokio::runtime::Handle) -> Result<RunOutcome, RunError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let mut outcome = RunOutcome::default();
        let mut run_models = Vec::new();
        for (model, retention) in &self.models {
            let from = self.mark(model);
            let cutoff_ms = now_ms.saturating_sub(retention.keep.as_millis() as u64);
            let found = expired(
                self.store.as_ref(),
                model,
                from,
                UtcTime::from_unix_ms(cutoff_ms),
                PER_RUN,
            )?;
            let reason = format!(
                "retention: {model} keeps payloads {} (models.retention.payloads)",
                retention.written
            );
            let erased = self
                .eraser
                .erase_expired(runtime, &found.decisions, &reason)
                .map_err(|failure| RunError::Erase(failure.message))?;
            self.erased.with_label_values(&[model]).inc_by(erased);
            self.set_mark(model, found.next_seq);
            outcome.more |= found.more;
            if erased > 0 {
                tracing::info!(
                    model,
                    erased,
                    through_seq = found.next_seq,
                    "payload retention"
                );
            }
            outcome.erased += erased;
            run_models.push(json!({
                "model": model,
                "payloads": retention.written,
                "cutoff": crate::review::rfc3339(cutoff_ms),
                "erased": erased,
                "through_seq": found.next_seq,
            }));
        }
        if outcome.erased > 0 {
            let mut members = serde_json::Map::new();
            members.insert("models".into(), Value::Array(run_models));
            members.insert("more".into(), json!(outcome.more));
            runtime
                .block_on(self.ledger.append(EntryBody::Governance {
                    kind: RUN_KIND,
                    members,
                }))
                .map_err(|err| RunError::Erase(format!("retention_run not recorded: {err}")))?;
        }
        self.last_run.set((now_ms / 1000) as i64);
        Ok(outcome)
    }

    fn mark(&self, model: &str) -> u64 {
        let marks = self
            .marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        marks.get(model).copied().unwrap_or(0)
    }

    fn set_mark(&self, model: &str, seq: u64) {
        self.marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(model.to_owned(), seq);
    }
}

/// `"kind":"retention_run"` as canonical bytes spell it.
const MARK: &[u8] = br#""kind":"retention_run""#;

/// Each model's `through_seq` in the last `retention_run` entry (the
/// governance index holds it, newest last); none before the first run.
fn last_marks(store: &dyn LedgerStore) -> Result<HashMap<String, u64>, StoreError> {
    let mut marks = HashMap::new();
    for seq in store.governance_seqs()?.into_iter().rev() {
        let Some(bytes) = store.entry(seq)? else {
            continue;
        };
        // Canonical bytes spell the kind exactly so; only the match is parsed.
        if !bytes.windows(MARK.len()).any(|w| w == MARK) {
            continue;
        }
        let Ok(entry) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        // A run names every model with a setting: the latest says it all.
        for model in entry["models"].as_array().into_iter().flatten() {
            if let (Some(name), Some(through)) =
                (model["model"].as_str(), model["through_seq"].as_u64())
            {
                marks.insert(name.to_owned(), through);
            }
        }
        break;
    }
    Ok(marks)
}
