//! [`PolicyGate`]: the policy set in force, evaluated on the request path,
//! and its reloads. Each set that loads is recorded in the ledger
//! (`policy_set_loaded`, with every file's SHA-256) before it applies, and
//! decisions name that entry's seq; a set that does not load leaves the
//! one in force untouched.
//!
//! Under change control (`review.policy_approval` configured) a set loaded
//! from the folder is only proposed; the gate evaluates the set activated
//! through approval (changes.rs), and decisions name that activation.

use super::document::InputDocument;
use super::engine::PolicySet;
use super::error::PolicyError;
use super::input::Stage;
use super::metrics::ReviewMetrics;
use super::verdict::{Action, ReasonSets, Verdict};
use crate::config::OnPolicyError;
use crate::decision::{SinkError, StageVerdict};
use crate::ledger::entry::EntryBody;
use crate::ledger::sequencer::Ledger;
use crate::registry::ApprovalPolicy;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod changes;
mod fleet;

pub use changes::{
    ChangeDone, ChangeFailure, FOLDER_PRINCIPAL, RecordedChanges, Reloaded, ReplayError,
    SourcesError, StartError, recorded_changes,
};
pub use fleet::{PolicyDomain, recorded_proposals};

/// A loaded set and the seq of the entry that recorded it.
#[derive(Debug)]
pub struct LoadedPolicies {
    /// The policies.
    pub set: PolicySet,
    /// Seq of the entry that put it in force: its `policy_set_loaded`
    /// entry, or under change control its `policy_set_activated` or
    /// `policy_set_rolled_back` entry (`policy_approval_configured` for
    /// the built-in set that denies everything while none is active).
    pub set_seq: u64,
    /// The set's proposal seq, under change control.
    pub proposal_seq: Option<u64>,
}

/// One stage's outcome: what to do, and what the ledger records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// What the gateway does.
    pub action: Action,
    /// The winning action's reasons (for a failed evaluation, one
    /// reason saying so).
    pub reasons: Vec<String>,
    /// The verdict as recorded in the decision.
    pub record: StageVerdict,
}

/// Why a reload left the set in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new files do not load (the message names file and line).
    #[error("{error}; policy set {kept_seq} stays in force")]
    Invalid {
        /// What is wrong.
        error: PolicyError,
        /// Seq of the set that stays.
        kept_seq: u64,
    },
    /// The ledger could not record the new set, so it does not apply.
    #[error("the ledger could not record the new policy set ({0}); the old set stays in force")]
    Ledger(SinkError),
    /// Under change control: the folder's set could not be proposed.
    #[error("the policy folder was not proposed: {0}")]
    Refused(String),
}

/// The policy set in force; shared by every request.
pub struct PolicyGate {
    dir: PathBuf,
    current: RwLock<Arc<LoadedPolicies>>,
    on_error: OnPolicyError,
    ledger: Ledger,
    metrics: ReviewMetrics,
    reloading: tokio::sync::Mutex<()>,
    /// Held for writing from just before a change's entry is stamped until
    /// its set is in force, and for reading while a request takes its set:
    /// a request that got the replaced set was received before the entry's
    /// time, which is what the verifiers accept a replaced set for.
    switching: tokio::sync::RwLock<()>,
    /// `None`: no change control (`policy_approval = "none"`).
    approval: Option<ApprovalPolicy>,
    /// The proposed sets; also the lock that orders every change.
    changes: tokio::sync::Mutex<super::change::PolicyChanges>,
    /// Under change control: the ledger's store, which holds the sets'
    /// texts (`policy_set_proposed` entries).
    store: Option<Arc<dyn crate::ledger::store::LedgerStore>>,
    /// In a fleet: the control log the changes go through (`fleet.rs`).
    fleet: std::sync::OnceLock<fleet::FleetLink>,
    /// Changes (and the SIGHUP reloads) run as tasks of their own;
    /// `drained` waits for them at shutdown.
    tasks: TaskTracker,
    /// Cancelled when the gateway stops: no reload starts after it.
    stopping: CancellationToken,
}

impl std::fmt::Debug for PolicyGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyGate")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The `policy_set_loaded` entry: every policy file and its SHA-256, and
/// `approval: "none"`, saying no change control applies (the set is in
/// force as loaded).
pub fn policy_set_entry(policies: &PolicySet) -> EntryBody {
    let files: Vec<serde_json::Value> = policies
        .content_hashes()
        .into_iter()
        .map(|(file, sha256)| serde_json::json!({ "file": file, "sha256": sha256 }))
        .collect();
    let mut members = serde_json::Map::new();
    members.insert("files".to_owned(), serde_json::Value::Array(files));
    members.insert("approval".to_owned(), serde_json::Value::from("none"));
    EntryBody::Governance {
        kind: "policy_set_loaded",
        members,
    }
}

impl PolicyGate {
    /// Reloads the policies on every SIGHUP until [`PolicyGate::stop`]
    /// (under change control: proposes them); a set that does not load is
    /// logged and the one in force stays. Holds the gate weakly: the gate
    /// holds a ledger handle, and the ledger closes only once every handle
    /// is gone.
    pub fn reload_on_sighup(self: &Arc<Self>) {
        let gate = Arc::downgrade(self);
        let stopping = self.stopping.clone();
        #[cfg(unix)]
        self.tasks.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                tracing::error!("cannot listen for SIGHUP; reload policies through the admin API");
                return;
            };
            loop {
                tokio::select! {
                    hangup = hangups.recv() => if hangup.is_none() { return },
                    () = stopping.cancelled() => return,
                }
                let Some(gate) = gate.upgrade() else { return };
                tracing::info!("SIGHUP: reloading policies (under change control: proposing them)");
                // Success and failure are both logged by the gate.
                let _ = gate.reload().await;
            }
        });
        #[cfg(not(unix))]
        let _ = (gate, stopping);
    }

    /// No SIGHUP reload starts from now on (the gateway is stopping).
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// Waits for the changes and the reload under way (their entries
    /// belong before `gateway_stopped`).
    pub async fn drained(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Records `set` (loaded from `dir` before the ledger opened) and puts it in force.
    pub async fn start(
        dir: &Path,
        set: PolicySet,
        on_error: OnPolicyError,
        ledger: Ledger,
        metrics: ReviewMetrics,
    ) -> Result<Self, SinkError> {
        let ack = ledger.append(policy_set_entry(&set)).await?;
        Ok(Self {
            dir: dir.to_path_buf(),
            current: RwLock::new(Arc::new(LoadedPolicies {
                set,
                set_seq: ack.seq.unwrap_or_default(),
                proposal_seq: None,
            })),
            on_error,
            ledger,
            metrics,
            reloading: tokio::sync::Mutex::new(()),
            switching: tokio::sync::RwLock::new(()),
            approval: None,
            changes: tokio::sync::Mutex::default(),
            store: None,
            fleet: std::sync::OnceLock::new(),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
        })
    }

    /// The approval policy of policy sets; `None` without change control.
    pub fn approval(&self) -> Option<&ApprovalPolicy> {
        self.approval.as_ref()
    }

    fn put_in_force(&self, loaded: Arc<LoadedPolicies>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
    }

    /// The folder the policies are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The set in force for a request that was received before this call:
    /// waits out a change being recorded (one ledger append), so the set
    /// is the new one once its entry is stamped.
    pub async fn for_request(&self) -> Arc<LoadedPolicies> {
        let _settled = self.switching.read().await;
        self.current()
    }

    /// The set in force; a request uses one set for both its stages.
    pub fn current(&self) -> Arc<LoadedPolicies> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Evaluates `document` with `policies`; a failed evaluation is logged,
    /// counted and decided by the configured default.
    pub fn evaluate(&self, policies: &LoadedPolicies, document: &InputDocument) -> Evaluation {
        let input = document.input();
        let stage = input.stage.as_str();
        match policies.set.evaluate_document(document) {
            Ok(verdict) => self.counted(&input.model, stage, verdict),
            Err(err) => {
                let action = match self.on_error {
                    OnPolicyError::Deny => Action::Deny,
                    OnPolicyError::Hold => Action::Hold,
                    OnPolicyError::Allow => Action::Allow,
                };
                tracing::error!(decision_id = %input.decision_id, stage, error = %err, default = action.as_str(), "policy evaluation failed; the configured default applies");
                self.metrics.eval_error(stage, action.as_str());
                let reason = format!("policy evaluation failed at the {stage} stage");
                self.metrics.verdict(
                    &input.model,
                    stage,
                    action.as_str(),
                    std::slice::from_ref(&reason),
                );
                Evaluation {
                    action,
                    reasons: vec![reason],
                    record: StageVerdict {
                        action: action.as_str(),
                        deny: Vec::new(),
                        hold: Vec::new(),
                        flag: Vec::new(),
                        error: Some(err.to_string()),
                    },
                }
            }
        }
    }

    /// The outcome of a stage the set in force has no rule for
    /// ([`PolicySet::judges`] is false): allow with empty sets, exactly
    /// what evaluating would give and record, counted the same way, with
    /// no input document built and nothing evaluated.
    pub fn unjudged(&self, model: &str, stage: Stage) -> Evaluation {
        self.counted(
            model,
            stage.as_str(),
            Verdict::from_sets(ReasonSets::default()),
        )
    }

    /// A verdict reached (evaluated or known without evaluating), counted.
    fn counted(&self, model: &str, stage: &str, verdict: Verdict) -> Evaluation {
        self.metrics
            .verdict(model, stage, verdict.action.as_str(), &verdict.reasons);
        evaluation(verdict)
    }

    /// Loads the folder again. If it loads, records it and puts it in
    /// force (under change control: proposes it, [`Reloaded::Proposed`]);
    /// otherwise the set in force stays and the error says why. One
    /// reload at a time.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        if self.approval.is_some() {
            return self.propose_folder().await.map(Reloaded::Proposed);
        }
        self.load_in_force().await.map(Reloaded::Loaded)
    }

    async fn load_in_force(&self) -> Result<Arc<LoadedPolicies>, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let dir = self.dir.clone();
        let loaded = tokio::task::spawn_blocking(move || PolicySet::load(&dir))
            .await
            .unwrap_or_else(|join| {
                Err(PolicyError::Read {
                    path: self.dir.clone(),
                    source: std::io::Error::other(join.to_string()),
                })
            });
        let set = match loaded {
            Ok(set) => set,
            Err(error) => {
                let kept_seq = self.current().set_seq;
                tracing::error!(%error, kept_seq, "policy reload failed; the set in force stays");
                self.metrics.reload(false);
                return Err(ReloadError::Invalid { error, kept_seq });
            }
        };
        let _switching = self.switching.write().await;
        let ack = self
            .ledger
            .append(policy_set_entry(&set))
            .await
            .map_err(|err| {
                self.metrics.reload(false);
                ReloadError::Ledger(err)
            })?;
        let loaded = Arc::new(LoadedPolicies {
            set,
            set_seq: ack.seq.unwrap_or_default(),
            proposal_seq: None,
        });
        self.put_in_force(loaded.clone());
        self.metrics.reload(true);
        tracing::info!(set_seq = loaded.set_seq, files = ?loaded.set.content_hashes(), "policies reloaded");
        Ok(loaded)
    }
}

/// What the gateway does and records for `verdict`.
pub(super) fn evaluation(verdict: Verdict) -> Evaluation {
    let sorted = |set: &std::collections::BTreeSet<String>| set.iter().cloned().collect();
    Evaluation {
        action: verdict.action,
        record: StageVerdict {
            action: verdict.action.as_str(),
            deny: sorted(&verdict.all.deny),
            hold: sorted(&verdict.all.hold),
            flag: sorted(&verdict.all.flag),
            error: None,
        },
        reasons: verdict.reasons,
    }
}
