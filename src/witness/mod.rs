//! Witnessing (C2SP tlog-witness): the ledger's latest signed checkpoint
//! is sent to every configured witness with a consistency proof from the
//! size that witness last cosigned, on an interval and on demand, never on
//! the request path. A cosignature is kept only if it verifies under the
//! witness's configured key; the largest checkpoint cosigned by at least
//! `ledger.witness_threshold` witnesses is served (admin listener,
//! `GET /ledger/checkpoint/cosigned`) and kept on disk for bundles and
//! restarts.
//!
//! Uses the ledger's store (read-only), its formats and `config` values.

pub mod bundle;
mod client;
mod metrics;
mod routes;
mod state;

pub use routes::routes;

use crate::config::{WitnessConfig, Witnessing};
use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::store::{LedgerStore, StoreError, StoreNodes};
use crate::ledger::tree::{ProofError, consistency_proof};
use client::{Answer, WitnessClient};
use metrics::{Outcome, WitnessMetrics};
use serde::Serialize;
use state::{Record, Stored};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// The state file under `data_dir`.
pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("witnesses").join("state.json")
}

/// The cosigned checkpoint a stopped gateway kept in `data_dir` (not
/// checked here: verifiers check it), for export bundles.
pub fn stored_cosigned(data_dir: &Path) -> Result<Option<String>, WitnessError> {
    let path = state_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<Stored>(&text)
            .map(|stored| stored.cosigned)
            .map_err(|err| WitnessError::State(format!("{}: {err}", path.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(WitnessError::State(format!("{}: {err}", path.display()))),
    }
}

/// Why witnessing could not start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The state file cannot be read.
    #[error("witness state: {0}")]
    State(String),
    /// The metric families could not be registered.
    #[error("witness metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// How one submission to one witness went (the admin API's answer).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The witness's configured name.
    pub witness: String,
    /// `cosigned`, `unchanged`, `conflict`, `refused`, `unreachable`,
    /// `invalid_cosignature` or `failed`.
    pub result: &'static str,
    /// The checkpoint size submitted.
    pub size: u64,
    /// What went wrong, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A handle on witnessing; cheap to clone.
#[derive(Clone)]
pub struct Witnesses {
    shared: Arc<Shared>,
    requests: mpsc::Sender<oneshot::Sender<Vec<Report>>>,
}

/// The task that runs the rounds; hand it to [`Witnesses::run`].
pub struct WitnessTask {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<oneshot::Sender<Vec<Report>>>,
}

/// The key signing the log now (it changes with an online rotation).
type KeyInForce = Arc<dyn Fn() -> NoteVerifier + Send + Sync>;

struct Shared {
    config: Witnessing,
    store: Arc<dyn LedgerStore>,
    /// Read at each round: checkpoints after a rotation are signed by the
    /// new key, and the witnesses' cosignatures are over those.
    key: KeyInForce,
    client: WitnessClient,
    metrics: WitnessMetrics,
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    stored: Stored,
    /// The size each witness is known to hold (from its records or a 409).
    known: HashMap<String, u64>,
    /// The latest report per witness.
    last: HashMap<String, Report>,
}

impl Witnesses {
    /// Loads the kept state (blocking file read: call before serving) and
    /// builds the handle and its task. `None` without witnesses. `key`
    /// says which key signs the log now (it follows online rotations).
    pub fn start(
        config: &crate::config::Config,
        store: Arc<dyn LedgerStore>,
        key: impl Fn() -> NoteVerifier + Send + Sync + 'static,
        registry: &prometheus::Registry,
    ) -> Result<Option<(Witnesses, WitnessTask)>, WitnessError> {
        let witnessing = config.ledger.witnesses.clone();
        if witnessing.witnesses.is_empty() {
            return Ok(None);
        }
        let key: KeyInForce = Arc::new(key);
        let log = key();
        let path = state_path(&config.server.data_dir);
        let stored = Stored::load(
            &path,
            &config.ledger.origin,
            &witnessing.witnesses,
            &log,
            witnessing.threshold,
        )
        .map_err(|err| WitnessError::State(err.to_string()))?;
        let metrics = WitnessMetrics::register(registry)?;
        let mut known = HashMap::new();
        for (name, record) in &stored.witnesses {
            metrics.cosigned(name, record.size, record.time);
            known.insert(name.clone(), record.size);
        }
        if let Some(size) = stored.cosigned.as_deref().and_then(state::note_size) {
            metrics.served(size);
        }
        let shared = Arc::new(Shared {
            config: witnessing,
            store,
            key,
            client: WitnessClient::new(&config.upstream_tls.extra_roots),
            metrics,
            path,
            state: Mutex::new(State {
                stored,
                known,
                last: HashMap::new(),
            }),
        });
        // One on-demand round waits at most; more callers get 503 at once.
        let (tx, rx) = mpsc::channel(4);
        Ok(Some((
            Witnesses {
                shared: shared.clone(),
                requests: tx,
            },
            WitnessTask {
                shared,
                requests: rx,
            },
        )))
    }

    /// The served cosigned checkpoint: the log-signed note followed by the
    /// witnesses' cosignature lines.
    pub fn cosigned(&self) -> Option<String> {
        self.shared.lock().stored.cosigned.clone()
    }

    /// `note` with the cosignatures of the served cosigned checkpoint
    /// appended when that is the same checkpoint, else `note` as it is
    /// (for endpoints that serve the latest checkpoint, like a tiles
    /// `/checkpoint`).
    pub fn with_cosignatures(&self, note: &str) -> String {
        let state = self.shared.lock();
        let lines = state
            .stored
            .cosigned
            .as_deref()
            .and_then(|cosigned| state::cosignatures_on(cosigned, note));
        format!("{note}{}", lines.unwrap_or_default())
    }

    /// Asks the task for a round now (every witness, even one that holds
    /// the latest checkpoint) and waits for its reports. `None` if the
    /// task is not running or too many rounds are waiting. Cancel-safe:
    /// the round runs to its end without the caller.
    pub async fn submit_now(&self) -> Option<Vec<Report>> {
        let (tx, rx) = oneshot::channel();
        self.requests.try_send(tx).ok()?;
        rx.await.ok()
    }

    /// Each witness's state, for `GET /ledger/witnesses`.
    pub fn status(&self) -> serde_json::Value {
        let state = self.shared.lock();
        let witnesses: Vec<serde_json::Value> = self
            .shared
            .config
            .witnesses
            .iter()
            .map(|w| {
                let record = state.stored.witnesses.get(&w.name);
                serde_json::json!({
                    "name": w.name,
                    "vkey": w.key.vkey(),
                    "add_checkpoint": w.add_checkpoint.to_string(),
                    "cosigned_size": record.map(|r| r.size),
                    "cosigned_time": record.map(|r| r.time),
                    "last": state.last.get(&w.name),
                })
            })
            .collect();
        serde_json::json!({
            "threshold": self.shared.config.threshold,
            "interval_secs": self.shared.config.interval.as_secs(),
            "cosigned_size": state.stored.cosigned.as_deref().and_then(state::note_size),
            "witnesses": witnesses,
        })
    }
}

impl WitnessTask {
    /// Runs rounds every interval (sending only to witnesses that have not
    /// cosigned the latest checkpoint) and on demand, until `stop`.
    pub async fn run(mut self, stop: impl Future<Output = ()> + Send) {
        let mut stop = std::pin::pin!(stop);
        let mut ticks = tokio::time::interval(self.shared.config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reply = tokio::select! {
                () = &mut stop => return,
                _ = ticks.tick() => None,
                Some(reply) = self.requests.recv() => Some(reply),
            };
            let forced = reply.is_some();
            let reports = tokio::select! {
                () = &mut stop => return,
                reports = self.shared.clone().round(forced) => reports,
            };
            if let Some(reply) = reply {
                let _ = reply.send(reports);
            }
        }
    }
}

/// Blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| "the store read panicked".to_owned())?
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves whole values behind (every
        // update is one assignment), so the state is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One round: the latest checkpoint to every witness at once, then the
    /// served note recomputed and the state file rewritten.
    async fn round(self: Arc<Self>, forced: bool) -> Vec<Report> {
        let store = self.store.clone();
        let latest = blocking(move || store.latest_checkpoint().map_err(|e| e.to_string())).await;
        let note = match latest {
            Ok(Some((_, note))) => note,
            Ok(None) => return Vec::new(),
            Err(err) => {
                tracing::warn!(error = %err, "witnessing: the latest checkpoint cannot be read");
                return Vec::new();
            }
        };
        // The key in force now, not the one at startup: after a rotation
        // the latest checkpoint is signed by the new key.
        let log = (self.key)();
        let opened = log.open(&note).map(|body| (body, Checkpoint::parse(body)));
        let (body, size) = match opened {
            Ok((body, Ok(checkpoint))) => (body, checkpoint.size),
            _ => {
                tracing::error!("witnessing: the latest checkpoint does not verify; not sent");
                return Vec::new();
            }
        };
        let submissions = self
            .config
            .witnesses
            .iter()
            .map(|witness| self.submit(witness, &note, body, size, forced));
        let reports = futures_util::future::join_all(submissions).await;
        let changed = reports.iter().any(|r| r.result == "cosigned");
        let snapshot = {
            let mut state = self.lock();
            for report in &reports {
                state.last.insert(report.witness.clone(), report.clone());
            }
            if changed {
                state.stored.refresh_cosigned(self.config.threshold);
                if let Some(size) = state.stored.cosigned.as_deref().and_then(state::note_size) {
                    self.metrics.served(size);
                }
                Some(state.stored.clone())
            } else {
                None
            }
        };
        if let Some(snapshot) = snapshot {
            let path = self.path.clone();
            let saved = blocking(move || snapshot.save(&path).map_err(|e| e.to_string())).await;
            if let Err(err) = saved {
                tracing::error!(error = %err, "witnessing: cosignatures not written to disk");
            }
        }
        reports
    }

    /// Sends `note` (of `size`, its signed text `signed`) to one witness,
    /// following a 409 to the size it holds (twice at most); keeps a
    /// cosignature that verifies.
    async fn submit(
        &self,
        witness: &WitnessConfig,
        note: &str,
        signed: &str,
        size: u64,
        forced: bool,
    ) -> Report {
        let report = |outcome: Outcome, detail: Option<String>| {
            self.metrics.outcome(&witness.name, outcome);
            if let Some(detail) = &detail
                && outcome != Outcome::Cosigned
            {
                tracing::warn!(witness = %witness.name, size, %detail, "witness did not cosign");
            }
            Report {
                witness: witness.name.clone(),
                result: outcome.label(),
                size,
                detail,
            }
        };
        let (mut old, holds_it) = {
            let state = self.lock();
            let holds = state
                .stored
                .witnesses
                .get(&witness.name)
                .is_some_and(|record| record.note == note);
            (state.known.get(&witness.name).copied().unwrap_or(0), holds)
        };
        if holds_it && !forced {
            return report(Outcome::Unchanged, None);
        }
        for _ in 0..3 {
            if old > size {
                return report(
                    Outcome::Conflict,
                    Some(format!(
                        "the witness holds a tree of size {old} for this origin, larger than this log ({size})"
                    )),
                );
            }
            let proof = match self.proof(old, size).await {
                Ok(proof) => proof,
                Err(err) => return report(Outcome::Failed, Some(err)),
            };
            let body = client::request_body(old, &proof, note);
            let answer = self
                .client
                .add_checkpoint(&witness.add_checkpoint, body, witness.timeout)
                .await;
            match answer {
                Ok(Answer::Cosigned(text)) => {
                    let lines: Vec<&str> = text.lines().collect();
                    let Some((line, time)) = witness.key.find(signed, &lines) else {
                        return report(
                            Outcome::InvalidCosignature,
                            Some(format!(
                                "200 without a valid cosignature by {}",
                                witness.key.vkey()
                            )),
                        );
                    };
                    self.metrics.cosigned(&witness.name, size, time);
                    let mut state = self.lock();
                    state.known.insert(witness.name.clone(), size);
                    state.stored.witnesses.insert(
                        witness.name.clone(),
                        Record {
                            size,
                            note: note.to_owned(),
                            line: format!("{line}\n"),
                            time,
                        },
                    );
                    drop(state);
                    return report(Outcome::Cosigned, None);
                }
                Ok(Answer::KnownSize(known)) => {
                    self.lock().known.insert(witness.name.clone(), known);
                    if known == old {
                        // SPEC: 409 at the size it holds means the roots
                        // differ there: a split view.
                        return report(
                            Outcome::Conflict,
                            Some(format!(
                                "the witness holds a different tree at size {known} (409)"
                            )),
                        );
                    }
                    old = known;
                }
                Ok(Answer::Refused(status, text)) => {
                    let outcome = if status == http::StatusCode::CONFLICT {
                        Outcome::Conflict
                    } else {
                        Outcome::Refused
                    };
                    return report(outcome, Some(format!("{status}: {text}")));
                }
                Err(err) => return report(Outcome::Unreachable, Some(err.to_string())),
            }
        }
        report(
            Outcome::Conflict,
            Some("the witness's size kept changing (409 three times)".into()),
        )
    }

    /// The consistency proof from `old` to `size` (empty from 0 or to itself).
    async fn proof(&self, old: u64, size: u64) -> Result<Vec<crate::ledger::tree::Hash>, String> {
        if old == 0 || old == size {
            return Ok(Vec::new());
        }
        let store = self.store.clone();
        let proof = blocking(move || {
            consistency_proof(&StoreNodes(store.as_ref()), old, size).map_err(|err| match err {
                ProofError::Source(StoreError::Corrupt(what)) => format!("store: {what}"),
                ProofError::Source(err) => format!("store: {err}"),
                ProofError::Invalid(why) => why.to_owned(),
            })
        })
        .await?;
        if proof.len() > client::MAX_PROOF_LINES {
            return Err("consistency proof longer than 63 lines".to_owned());
        }
        Ok(proof)
    }
}
