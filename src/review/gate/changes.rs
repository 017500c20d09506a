//! The gate under change control: proposals, approvals, activation and
//! rollback of policy sets, each recorded in the ledger before it changes
//! anything; the set in force is only ever one activated after approval.
//!
//! One lock (the gate's [`PolicyChanges`]) orders every change, so two
//! approvers approving at once are recorded one after the other and a
//! repeated call finds its own earlier entry. Calls run in their own task:
//! an entry once appended is always applied, even if the caller goes away.

use super::{LoadedPolicies, PolicyGate, ReloadError};
use crate::config::OnPolicyError;
use crate::decision::SinkError;
use crate::ledger::entry::{EntryBody, rfc3339_millis};
use crate::ledger::sequencer::Ledger;
use crate::ledger::store::{LedgerStore, StoreError};
use crate::registry::shared::CONTROL_SEQ_MEMBER;
use crate::registry::{ApprovalPolicy, Principal, Role};
use crate::review::change::{
    ChangeCommand, ChangeError, ChangeEvent, PolicyChanges, ProposedSet, file_hashes, set_sha256,
};
use crate::review::{PolicyError, PolicySet, ReviewMetrics};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Most bytes of an entry's members: the whole entry (with the ledger's
/// own members) must stay below 65,536 bytes to fit a C2SP entry bundle.
const MAX_ENTRY_MEMBERS_BYTES: usize = 60_000;

/// Who proposes the folder's set (at start, on SIGHUP, on a reload call).
pub const FOLDER_PRINCIPAL: &str = "govgate-config";

/// The set evaluated while no approved set is active: it denies every
/// request, so nothing unapproved ever judges (fail closed).
const NO_ACTIVE_SET: &str = "package govgate\n\n\
deny contains \"no approved policy set is active\" if {\n\ttrue\n}\n";

/// What a reload did.
#[derive(Debug, Clone)]
pub enum Reloaded {
    /// No change control: the folder's set is in force.
    Loaded(Arc<LoadedPolicies>),
    /// Change control: the folder's set was proposed (or already was).
    Proposed(ChangeDone),
}

/// What a carried-out change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeDone {
    /// Seq of the entry recording it; `None` for a repeat that changed nothing.
    pub entry_seq: Option<u64>,
    /// That entry's kind.
    pub kind: Option<&'static str>,
    /// The set acted on (its proposal seq).
    pub proposal_seq: Option<u64>,
}

/// Why a change was not carried out; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeFailure {
    /// `review.policy_approval = "none"`: sets load as they are.
    #[error(
        "policy sets are not under change control on this gateway (review.policy_approval = \"none\")"
    )]
    Off,
    /// Refused by the rules (the caller's doing).
    #[error(transparent)]
    Refused(#[from] ChangeError),
    /// The ledger could not record it.
    #[error("the ledger could not record the change: {0}")]
    Ledger(SinkError),
    /// In a fleet: the control log could not be read or written.
    #[error(transparent)]
    ControlPlane(#[from] crate::registry::service::ServiceError),
    /// The set's files could not be read back from the ledger.
    #[error(transparent)]
    Sources(#[from] SourcesError),
}

/// Why a set's files could not be read back from its proposal's entry.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// The store could not be read.
    #[error("the ledger could not be read: {0}")]
    Store(#[from] StoreError),
    /// The entry is not there (a damaged store).
    #[error("the proposal's entry {0} is missing from the ledger")]
    Missing(u64),
    /// The entry is not the set's proposal (a damaged store).
    #[error("entry {seq} is not the proposal of the set: {problem}")]
    NotTheProposal {
        /// The entry.
        seq: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// No change control: no set was proposed.
    #[error("policy sets are not under change control on this gateway")]
    Off,
    /// The blocking read was lost.
    #[error("reading the proposal failed: {0}")]
    Lost(String),
}

/// The ledger's history of policy sets ([`recorded_changes`]) and the
/// store it was read from, which holds the sets' texts.
pub struct RecordedChanges {
    /// Every set and which one is in force.
    pub changes: PolicyChanges,
    /// The ledger's store.
    pub store: Arc<dyn LedgerStore>,
}

/// The files of `set` with their texts, read back from its
/// `policy_set_proposed` entry in `store` (off the async workers; the
/// entry is parsed there too).
async fn proposed_sources(
    store: Arc<dyn LedgerStore>,
    set: ProposedSet,
) -> Result<Vec<(String, String)>, SourcesError> {
    tokio::task::spawn_blocking(move || {
        let seq = set.seq;
        let not_it = |problem: String| SourcesError::NotTheProposal { seq, problem };
        let bytes = store.entry(seq)?.ok_or(SourcesError::Missing(seq))?;
        let entry: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|err| not_it(err.to_string()))?;
        let kind = entry.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        match ChangeEvent::from_members(kind, &entry) {
            Ok(ChangeEvent::Proposed { files, .. }) => set
                .sources_from(files)
                .ok_or_else(|| not_it("its files are not the set's".to_owned())),
            Ok(_) => Err(not_it(format!("a {kind} entry"))),
            Err(err) => Err(not_it(err.to_string())),
        }
    })
    .await
    .unwrap_or_else(|err| Err(SourcesError::Lost(err.to_string())))
}

/// Why the gate could not start under change control.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The ledger could not record the start.
    #[error(transparent)]
    Ledger(SinkError),
    /// The built-in set did not compile (ours).
    #[error(transparent)]
    Policy(PolicyError),
}

impl PolicyGate {
    /// The gate under change control: `changes` is the ledger's history
    /// of policy sets; the active one (if any) is put in force from the
    /// text its proposal recorded, else the built-in set that denies
    /// everything. Records `policy_approval_configured`, then proposes
    /// `folder` (the folder's files, when they load) unless a set with the
    /// same files exists.
    pub async fn start_governed(
        dir: &Path,
        folder: Option<Vec<(String, String)>>,
        approval: ApprovalPolicy,
        recorded: RecordedChanges,
        on_error: OnPolicyError,
        ledger: Ledger,
        metrics: ReviewMetrics,
    ) -> Result<Arc<Self>, StartError> {
        let RecordedChanges { changes, store } = recorded;
        let active_set = changes
            .active()
            .and_then(|active| Some((active, changes.set(active.proposal_seq)?.clone())));
        let active = match active_set {
            Some((active, set)) => match proposed_sources(store.clone(), set).await {
                Ok(sources) => match compile(sources).await {
                    Ok(compiled) => Some((compiled, active)),
                    Err(error) => {
                        tracing::error!(%error, proposal_seq = active.proposal_seq, "the active policy set does not compile; every request is denied until another is activated");
                        None
                    }
                },
                Err(error) => {
                    tracing::error!(%error, proposal_seq = active.proposal_seq, "the active policy set's files cannot be read from the ledger; every request is denied until another is activated");
                    None
                }
            },
            None => None,
        };
        let mut members = serde_json::Map::new();
        members.insert("approvers".to_owned(), approval.approvers.into());
        members.insert(
            "required_roles".to_owned(),
            approval.required_roles.clone().into(),
        );
        members.insert(
            "active_seq".to_owned(),
            active
                .as_ref()
                .map(|(_, a)| a.activation_seq)
                .map_or(serde_json::Value::Null, Into::into),
        );
        let ack = ledger
            .append(EntryBody::Governance {
                kind: "policy_approval_configured",
                members,
            })
            .await
            .map_err(StartError::Ledger)?;
        let in_force = match active {
            Some((set, active)) => LoadedPolicies {
                set,
                set_seq: active.activation_seq,
                proposal_seq: Some(active.proposal_seq),
            },
            None => LoadedPolicies {
                set: denying_set().await.map_err(StartError::Policy)?,
                set_seq: ack.seq.unwrap_or_default(),
                proposal_seq: None,
            },
        };
        let gate = Arc::new(PolicyGate {
            dir: dir.to_path_buf(),
            current: RwLock::new(Arc::new(in_force)),
            on_error,
            ledger,
            metrics,
            reloading: tokio::sync::Mutex::new(()),
            switching: tokio::sync::RwLock::new(()),
            approval: Some(approval),
            changes: tokio::sync::Mutex::new(changes),
            store: Some(store),
            fleet: std::sync::OnceLock::new(),
            tasks: tokio_util::task::TaskTracker::new(),
            stopping: tokio_util::sync::CancellationToken::new(),
        });
        if let Some(files) = folder {
            gate.propose_at_start(files).await?;
        }
        Ok(gate)
    }

    /// The files of `set` with their texts, read back from its proposal's
    /// entry: the gateway keeps only their names and digests.
    pub async fn set_sources(
        &self,
        set: &ProposedSet,
    ) -> Result<Vec<(String, String)>, SourcesError> {
        let store = self.store.clone().ok_or(SourcesError::Off)?;
        proposed_sources(store, set.clone()).await
    }

    /// Proposes the folder's `files` as read at start, unless a set with
    /// the same files exists (a fleet replica: once it follows the fleet).
    pub async fn propose_at_start(&self, files: Vec<(String, String)>) -> Result<(), StartError> {
        let command = ChangeCommand::Propose {
            source: "folder",
            files,
            reason: Some("policy folder at start".to_owned()),
        };
        match self.run(command, &folder_principal()).await {
            Ok(done) => {
                tracing::info!(proposal_seq = ?done.proposal_seq, recorded = done.entry_seq.is_some(), "policy folder proposed at start")
            }
            Err(ChangeFailure::Ledger(err)) => return Err(StartError::Ledger(err)),
            Err(err) => tracing::error!(error = %err, "the policy folder was not proposed"),
        }
        Ok(())
    }

    /// The folder's served files as `(name, text)`, read off the async
    /// workers.
    pub async fn read_folder(&self) -> Result<Vec<(String, String)>, PolicyError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || super::super::engine::read_sources(&dir))
            .await
            .unwrap_or_else(|join| Err(join_error(&self.dir, join)))
    }

    /// Reads the folder and proposes its set (never activates it).
    pub(super) async fn propose_folder(&self) -> Result<ChangeDone, ReloadError> {
        let read = match self.read_folder().await {
            Ok(sources) => compile(sources.clone()).await.map(|_| sources),
            Err(err) => Err(err),
        };
        let kept_seq = self.current().set_seq;
        let files = read.map_err(|error| {
            tracing::error!(%error, kept_seq, "the policy folder does not load; nothing proposed");
            self.metrics.reload(false);
            ReloadError::Invalid { error, kept_seq }
        })?;
        let command = ChangeCommand::Propose {
            source: "folder",
            files,
            reason: Some("policy folder reloaded".to_owned()),
        };
        let done = self
            .run(command, &folder_principal())
            .await
            .map_err(|failure| {
                self.metrics.reload(false);
                match failure {
                    ChangeFailure::Ledger(err) => ReloadError::Ledger(err),
                    other => ReloadError::Refused(other.to_string()),
                }
            })?;
        self.metrics.reload(true);
        tracing::info!(proposal_seq = ?done.proposal_seq, recorded = done.entry_seq.is_some(), "policy folder proposed; the set in force stays until one is approved and activated");
        Ok(done)
    }

    /// Carries out `command` on behalf of `by`. Cancel-safe: the work runs
    /// in its own task.
    pub async fn change(
        self: &Arc<Self>,
        command: ChangeCommand,
        by: Principal,
    ) -> Result<ChangeDone, ChangeFailure> {
        let gate = Arc::clone(self);
        self.tasks
            .spawn(async move { gate.run(command, &by).await })
            .await
            .unwrap_or_else(|err| {
                Err(ChangeFailure::Ledger(SinkError::Unavailable(format!(
                    "the policy change task failed: {err}"
                ))))
            })
    }

    /// Reads the proposed sets under their lock.
    pub async fn read_changes<R>(&self, read: impl FnOnce(&PolicyChanges) -> R) -> R {
        read(&*self.changes.lock().await)
    }

    async fn run(
        &self,
        command: ChangeCommand,
        by: &Principal,
    ) -> Result<ChangeDone, ChangeFailure> {
        let Some(policy) = &self.approval else {
            return Err(ChangeFailure::Off);
        };
        // Proposed files must compile before anything is recorded; that
        // needs no lock.
        if let ChangeCommand::Propose { files, .. } = &command {
            crate::review::change::check_files(files)?;
            compile(files.clone())
                .await
                .map_err(|err| ChangeError::InvalidFiles(err.to_string()))?;
        }
        // In a fleet the change is appended to the fleet's control log
        // first; the turn holds every catch-up off until it is recorded.
        let registry = self.fleet_registry();
        let mut turn = match &registry {
            Some(registry) => registry.control_turn().await?,
            None => None,
        };
        loop {
            let mut changes = self.changes.lock().await;
            let Some(event) = changes.decide(&command, by, policy)? else {
                return Ok(ChangeDone {
                    entry_seq: None,
                    kind: None,
                    proposal_seq: target_of(&changes, &command),
                });
            };
            // Refused before it reaches the fleet's control log, where
            // every replica would fail to record it, again and again.
            entry_fits(&event.to_members())?;
            let control_seq = match turn.as_mut() {
                None => None,
                Some(turn) => {
                    let members = self.for_the_fleet(event.to_members())?;
                    match turn.append(event.kind(), &members).await? {
                        Some(control_seq) => Some(control_seq),
                        None => {
                            // Another change came first: apply it, decide again.
                            drop(changes);
                            turn.catch_up().await?;
                            continue;
                        }
                    }
                }
            };
            let done = self.record(&mut changes, event, control_seq).await?;
            if let (Some(turn), Some(control_seq)) = (turn.as_mut(), control_seq) {
                turn.applied(control_seq);
            }
            return Ok(done);
        }
    }

    /// Records `event` (the fleet's `control_seq`-th, in a fleet) in the
    /// ledger, applies it and, for a switch, puts its set in force.
    pub(super) async fn record(
        &self,
        changes: &mut PolicyChanges,
        event: ChangeEvent,
        control_seq: Option<u64>,
    ) -> Result<ChangeDone, ChangeFailure> {
        let mut members = event.to_members();
        entry_fits(&members)?;
        if let Some(control_seq) = control_seq {
            members.insert(CONTROL_SEQ_MEMBER.to_owned(), control_seq.into());
        }
        let switching = match &event {
            ChangeEvent::Activated { switch, .. } | ChangeEvent::RolledBack { switch, .. } => {
                let sources = match changes.set(switch.proposal_seq) {
                    Some(set) => self.set_sources(set).await?,
                    None => Vec::new(),
                };
                let set = compile(sources)
                    .await
                    .map_err(|err| ChangeError::InvalidFiles(err.to_string()))?;
                Some((set, switch.proposal_seq))
            }
            _ => None,
        };
        // Requests wait from before the entry is stamped until its set is
        // in force (see PolicyGate::for_request); only for a switch.
        let _switching = match switching {
            Some(_) => Some(self.switching.write().await),
            None => None,
        };
        let ack = self
            .ledger
            .append(EntryBody::Governance {
                kind: event.kind(),
                members,
            })
            .await
            .map_err(ChangeFailure::Ledger)?;
        let (Some(seq), Some(time)) = (ack.seq, ack.time) else {
            return Err(ChangeFailure::Ledger(SinkError::Unavailable(
                "the ledger did not say where it recorded the change".to_owned(),
            )));
        };
        changes.apply(&event, seq, &rfc3339_millis(time));
        let proposal_seq = match &event {
            ChangeEvent::Proposed { .. } => {
                if let Some(control_seq) = control_seq {
                    self.known_in_fleet(control_seq, seq);
                }
                Some(seq)
            }
            ChangeEvent::Approved { proposal_seq, .. } => Some(*proposal_seq),
            ChangeEvent::Activated { switch, .. } | ChangeEvent::RolledBack { switch, .. } => {
                Some(switch.proposal_seq)
            }
        };
        if let Some((set, proposal_seq)) = switching {
            tracing::info!(
                set_seq = seq,
                proposal_seq,
                kind = event.kind(),
                "policy set in force changed"
            );
            self.put_in_force(Arc::new(LoadedPolicies {
                set,
                set_seq: seq,
                proposal_seq: Some(proposal_seq),
            }));
        }
        Ok(ChangeDone {
            entry_seq: Some(seq),
            kind: Some(event.kind()),
            proposal_seq,
        })
    }
}

/// Why the policy sets could not be rebuilt from the ledger: the same
/// two causes as for the registry's rebuild.
pub use crate::registry::service::ReplayError;

/// The policy sets as the ledger's policy-set entries leave them. Runs at
/// start, before the gate serves (reads every governance entry once).
pub fn recorded_changes(
    store: &dyn crate::ledger::store::LedgerStore,
) -> Result<PolicyChanges, ReplayError> {
    let mut changes = PolicyChanges::default();
    for seq in store.governance_seqs()? {
        let bad = |problem: String| ReplayError::Entry { seq, problem };
        let bytes = store.entry(seq)?.ok_or_else(|| bad("missing".to_owned()))?;
        let entry: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|err| bad(err.to_string()))?;
        let kind = entry.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if !crate::review::change::CHANGE_KINDS.contains(&kind) {
            continue;
        }
        let time = entry.get("time").and_then(|t| t.as_str()).unwrap_or("");
        let event = ChangeEvent::from_members(kind, &entry).map_err(|err| bad(err.to_string()))?;
        changes.apply(&event, seq, time);
    }
    Ok(changes)
}

/// The set a command that changed nothing is about.
/// Refuses a change whose ledger entry would be too large: escaped text
/// (tabs, quotes, control characters) can outgrow the raw bytes that
/// `check_files` bounds.
fn entry_fits(members: &serde_json::Map<String, serde_json::Value>) -> Result<(), ChangeError> {
    let size = serde_json::to_vec(members).map_or(0, |bytes| bytes.len());
    if size > MAX_ENTRY_MEMBERS_BYTES {
        return Err(ChangeError::InvalidFiles(format!(
            "the proposal's ledger entry would hold {size} bytes; at most {MAX_ENTRY_MEMBERS_BYTES} fit"
        )));
    }
    Ok(())
}

fn target_of(changes: &PolicyChanges, command: &ChangeCommand) -> Option<u64> {
    match command {
        ChangeCommand::Propose { files, .. } => {
            let digest = set_sha256(&file_hashes(files));
            changes
                .sets()
                .values()
                .find(|set| set.set_sha256 == digest)
                .map(|set| set.seq)
        }
        ChangeCommand::Approve { proposal_seq, .. }
        | ChangeCommand::Activate { proposal_seq, .. } => Some(*proposal_seq),
        ChangeCommand::RollBack { .. } => changes.active().map(|a| a.proposal_seq),
    }
}

fn folder_principal() -> Principal {
    Principal::new(FOLDER_PRINCIPAL, vec![Role::Proposer])
}

fn join_error(dir: &Path, join: tokio::task::JoinError) -> PolicyError {
    PolicyError::Read {
        path: dir.to_path_buf(),
        source: std::io::Error::other(join.to_string()),
    }
}

/// Compiles `sources` off the async workers (regorus parsing and the
/// trial evaluations are CPU work).
async fn compile(sources: Vec<(String, String)>) -> Result<PolicySet, PolicyError> {
    tokio::task::spawn_blocking(move || PolicySet::from_sources(&sources))
        .await
        .unwrap_or_else(|join| Err(join_error(&PathBuf::from("(policy set)"), join)))
}

/// The built-in set that denies every request.
async fn denying_set() -> Result<PolicySet, PolicyError> {
    let sources = vec![(
        "govgate_no_active_set.rego".to_owned(),
        NO_ACTIVE_SET.to_owned(),
    )];
    compile(sources).await
}

#[cfg(test)]
#[path = "sources_tests.rs"]
mod sources_tests;

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_built_in_set_denies_both_stages() {
        use crate::review::{PolicyInput, Stage};
        let set = super::denying_set().await.unwrap();
        let input = PolicyInput::request("m", "v", "high", "c", "00", serde_json::Value::Null);
        let verdict = set.evaluate(&input).unwrap();
        assert_eq!(verdict.action.as_str(), "deny");
        assert!(set.judges(Stage::Request));
    }
}
