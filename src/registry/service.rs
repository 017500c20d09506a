//! The registry at run time: commands are taken one at a time, each
//! resulting event is made durable in the ledger first and only then
//! applied, and every change publishes a new snapshot.
//!
//! One lock around decide, append and apply makes concurrent calls
//! linearizable: two approvers approving at once are ordered, each sees
//! the other's effect, and a repeated call finds its own earlier event and
//! changes nothing (no second entry). A failed append changes nothing.
//!
//! In a fleet (`with_shared_log`) an event is first appended to the
//! control log every replica follows (`shared`), then recorded here like
//! every replica records it.

use super::shared::{CONTROL_SEQ_MEMBER, SharedDomain, SharedEvent, SharedLog, SharedLogError};
use super::{Command, Event, PolicySet, Principal, Registry, RegistryError, Snapshot};
use crate::decision::SinkError;
use crate::ledger::entry::{EntryBody, rfc3339_millis};
use crate::ledger::sequencer::Ledger;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_util::task::TaskTracker;

/// Called with every new snapshot (the app rebuilds the proxy's table).
pub type OnChange = Box<dyn Fn(Arc<Snapshot>) + Send + Sync>;

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The registry refused it (the caller's doing).
    #[error(transparent)]
    Refused(#[from] RegistryError),
    /// The ledger could not record it; nothing changed.
    #[error("the ledger could not record the change: {0}")]
    Ledger(SinkError),
    /// The fleet's control log could not be read or written.
    #[error(transparent)]
    ControlPlane(#[from] SharedLogError),
    /// Other replicas' changes kept coming first.
    #[error("other replicas' changes came first {0} times in a row; try again")]
    Contended(usize),
    /// A control event does not decode: this replica cannot follow the
    /// fleet past it.
    #[error("control event {control_seq}: {problem}")]
    ControlEvent {
        /// Its control seq.
        control_seq: u64,
        /// What is wrong.
        problem: String,
    },
}

/// How often a fleet replica decides a command again because another
/// replica's change came first, before it gives up.
const MAX_CONTENDED: usize = 16;

/// What a carried-out command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// Seq of the entry recording it; `None` when it repeated an earlier
    /// call and changed nothing.
    pub entry_seq: Option<u64>,
    /// The event, if one was recorded.
    pub event: Option<Event>,
}

/// What the lock guards: the registry, and in a fleet the last control
/// event it applied.
struct Guarded {
    registry: Registry,
    control_seq: u64,
}

/// The registry behind its lock, with the ledger it records into.
pub struct RegistryService {
    registry: Mutex<Guarded>,
    ledger: Ledger,
    shared: Option<Arc<dyn SharedLog>>,
    /// Apply the control events that are not the registry's, each its
    /// own kinds.
    domains: Vec<Arc<dyn SharedDomain>>,
    /// Kinds this replica's configuration does not apply, each with what
    /// to change: a control event of one stops the catch-up, named.
    refused: Vec<(&'static [&'static str], &'static str)>,
    policies: HashMap<String, PolicySet>,
    default_policy: PolicySet,
    on_change: OnChange,
    /// Commands (and the admin API's KPI uploads) run as tasks of their
    /// own; `drained` waits for them at shutdown.
    tasks: TaskTracker,
}

impl RegistryService {
    /// Serves `registry` (replayed from the ledger), recording into `ledger`.
    pub fn new(
        registry: Registry,
        ledger: Ledger,
        default_policy: PolicySet,
        policies: HashMap<String, PolicySet>,
        on_change: OnChange,
    ) -> Self {
        on_change(registry.snapshot());
        Self {
            registry: Mutex::new(Guarded {
                registry,
                control_seq: 0,
            }),
            ledger,
            shared: None,
            domains: Vec::new(),
            refused: Vec::new(),
            policies,
            default_policy,
            on_change,
            tasks: TaskTracker::new(),
        }
    }

    /// Carries out `command` on behalf of `by`. Cancel-safe: the work runs
    /// in its own task, so an entry once appended is always applied, even
    /// if the caller goes away.
    pub async fn execute(
        self: &Arc<Self>,
        command: Command,
        by: Principal,
    ) -> Result<Done, ServiceError> {
        let service = Arc::clone(self);
        self.tasks
            .spawn(async move { service.run(command, &by).await })
            .await
            .unwrap_or_else(|err| {
                Err(ServiceError::Ledger(SinkError::Unavailable(format!(
                    "the registry task failed: {err}"
                ))))
            })
    }

    /// Runs `work` as a task that the caller going away does not cancel
    /// and that shutdown waits for ([`RegistryService::drained`]): for
    /// admin commands whose entries must be applied once appended.
    pub fn spawn_command<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.tasks.spawn(work)
    }

    /// Waits for the commands under way (their entries belong before
    /// `gateway_stopped`).
    pub async fn drained(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Follows the fleet's control log `shared`, whose events up to
    /// `control_seq` this registry has applied (replayed from the ledger,
    /// [`last_control_seq`]).
    pub fn with_shared_log(mut self, shared: Arc<dyn SharedLog>, control_seq: u64) -> Self {
        self.shared = Some(shared);
        self.registry.get_mut().control_seq = control_seq;
        self
    }

    /// Hands the control events of `domain`'s kinds to it (one domain per
    /// kind; several domains may be given).
    pub fn with_domain(mut self, domain: Arc<dyn SharedDomain>) -> Self {
        self.domains.push(domain);
        self
    }

    /// Refuses control events of `kinds`, which this replica's
    /// configuration leaves out while another replica's has them: the
    /// catch-up stops at the first, saying `why` (what to change).
    pub fn with_refused_kinds(mut self, kinds: &'static [&'static str], why: &'static str) -> Self {
        self.refused.push((kinds, why));
        self
    }

    /// The fleet's control log to append a change of another domain to,
    /// with every event before it applied; none outside a fleet. Holds the
    /// registry's lock (and so every catch-up) until dropped: the caller
    /// takes its own domain's lock only after this.
    pub async fn control_turn(&self) -> Result<Option<ControlTurn<'_>>, ServiceError> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let mut guarded = self.registry.lock().await;
        self.catch_up(&mut guarded, shared.as_ref()).await?;
        Ok(Some(ControlTurn {
            service: self,
            shared: shared.as_ref(),
            guarded,
        }))
    }

    async fn run(&self, command: Command, by: &Principal) -> Result<Done, ServiceError> {
        let mut guarded = self.registry.lock().await;
        let policy = self.policy(command.model());
        let Some(shared) = &self.shared else {
            let Some(event) = guarded.registry.decide(&command, by, policy)? else {
                return Ok(Done::nothing());
            };
            let seq = self.record(&mut guarded, &event, None).await?;
            return Ok(Done::recorded(seq, event));
        };
        for _ in 0..MAX_CONTENDED {
            self.catch_up(&mut guarded, shared.as_ref()).await?;
            let Some(event) = guarded.registry.decide(&command, by, policy)? else {
                return Ok(Done::nothing());
            };
            let members = event.to_members();
            let after = guarded.control_seq;
            if let Some(control_seq) = shared.append(after, event.kind(), &members).await? {
                // Appended: the fleet has it. Recorded here at once (were
                // this to fail, the next catch-up records it).
                let seq = self.record(&mut guarded, &event, Some(control_seq)).await?;
                return Ok(Done::recorded(seq, event));
            }
        }
        Err(ServiceError::Contended(MAX_CONTENDED))
    }

    /// Records `event` (the control log's `control_seq`-th, in a fleet) in
    /// the ledger, then applies it: the entry's seq.
    async fn record(
        &self,
        guarded: &mut Guarded,
        event: &Event,
        control_seq: Option<u64>,
    ) -> Result<u64, ServiceError> {
        let mut members = event.to_members();
        if let Some(control_seq) = control_seq {
            members.insert(CONTROL_SEQ_MEMBER.to_owned(), control_seq.into());
        }
        let ack = self
            .ledger
            .append(EntryBody::Governance {
                kind: event.kind(),
                members,
            })
            .await
            .map_err(ServiceError::Ledger)?;
        let (Some(seq), Some(time)) = (ack.seq, ack.time) else {
            return Err(ServiceError::Ledger(SinkError::Unavailable(
                "the ledger did not say where it recorded the change".to_owned(),
            )));
        };
        guarded.registry.apply(event, seq, &rfc3339_millis(time));
        if let Some(control_seq) = control_seq {
            guarded.control_seq = control_seq;
        }
        (self.on_change)(guarded.registry.snapshot());
        Ok(seq)
    }

    /// Records and applies every control event this replica has not: what
    /// other replicas changed. `Ok` once the log was read to its end.
    pub async fn follow(&self) -> Result<(), ServiceError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let mut guarded = self.registry.lock().await;
        self.catch_up(&mut guarded, shared.as_ref()).await
    }

    async fn catch_up(
        &self,
        guarded: &mut Guarded,
        shared: &dyn SharedLog,
    ) -> Result<(), ServiceError> {
        loop {
            let page = shared.since(guarded.control_seq).await?;
            if page.is_empty() {
                return Ok(());
            }
            for shared_event in page {
                if !Event::is_kind(&shared_event.kind) {
                    self.apply_elsewhere(&shared_event).await?;
                    guarded.control_seq = shared_event.control_seq;
                    continue;
                }
                let event = localize(&guarded.registry, &shared_event)?;
                self.record(guarded, &event, Some(shared_event.control_seq))
                    .await?;
            }
        }
    }

    /// Hands a control event of another kind to its domain.
    async fn apply_elsewhere(&self, event: &SharedEvent) -> Result<(), ServiceError> {
        let owner = self
            .domains
            .iter()
            .find(|domain| domain.kinds().contains(&event.kind.as_str()));
        if let Some(domain) = owner {
            return Ok(domain.apply(event).await?);
        }
        let refused = self
            .refused
            .iter()
            .find(|(kinds, _)| kinds.contains(&event.kind.as_str()));
        let problem = match refused {
            Some((_, why)) => format!("kind `{}`: {why}", event.kind),
            None => format!(
                "kind `{}` is not one this gateway applies (a newer gateway wrote it?)",
                event.kind
            ),
        };
        Err(ServiceError::ControlEvent {
            control_seq: event.control_seq,
            problem,
        })
    }

    /// The last control event applied (0: none, or not in a fleet).
    pub async fn control_seq(&self) -> u64 {
        self.registry.lock().await.control_seq
    }

    /// Reads the registry under its lock.
    pub async fn read<R>(&self, read: impl FnOnce(&Registry) -> R) -> R {
        read(&self.registry.lock().await.registry)
    }

    /// The policy a model's versions of `risk` are approved under now.
    pub fn approval_policy(&self, model: &str, risk: super::RiskClass) -> &super::ApprovalPolicy {
        self.policy(model).for_risk(risk)
    }

    /// The policy a model's versions are approved under.
    fn policy(&self, model: &str) -> &PolicySet {
        self.policies.get(model).unwrap_or(&self.default_policy)
    }
}

/// A turn at the fleet's control log ([`RegistryService::control_turn`]).
pub struct ControlTurn<'s> {
    service: &'s RegistryService,
    shared: &'s dyn SharedLog,
    guarded: tokio::sync::MutexGuard<'s, Guarded>,
}

impl ControlTurn<'_> {
    /// Appends `kind` with `members` unless another event came first: its
    /// control seq, to record in the caller's domain and then pass to
    /// [`ControlTurn::applied`] (until then the next catch-up hands it to
    /// the domain, so a failed record is made good). `None`: call
    /// [`ControlTurn::catch_up`] and decide again.
    pub async fn append(
        &mut self,
        kind: &str,
        members: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<u64>, ServiceError> {
        Ok(self
            .shared
            .append(self.guarded.control_seq, kind, members)
            .await?)
    }

    /// The event appended at `control_seq` is recorded and applied.
    pub fn applied(&mut self, control_seq: u64) {
        self.guarded.control_seq = control_seq;
    }

    /// Applies the events that came first (the caller holds no domain lock).
    pub async fn catch_up(&mut self) -> Result<(), ServiceError> {
        self.service.catch_up(&mut self.guarded, self.shared).await
    }
}

impl Done {
    fn nothing() -> Self {
        Done {
            entry_seq: None,
            event: None,
        }
    }

    fn recorded(seq: u64, event: Event) -> Self {
        Done {
            entry_seq: Some(seq),
            event: Some(event),
        }
    }
}

/// The event a control event records, as this replica applies it: an
/// activation or rollback names the approval entry of this replica's
/// ledger (the deciding replica named its own).
fn localize(registry: &Registry, shared: &SharedEvent) -> Result<Event, ServiceError> {
    let bad = |problem: String| ServiceError::ControlEvent {
        control_seq: shared.control_seq,
        problem,
    };
    let mut event =
        Event::from_members(&shared.kind, &shared.members).map_err(|err| bad(err.to_string()))?;
    if let Event::Activated { head, switch } | Event::RolledBack { head, switch } = &mut event {
        let approval = registry
            .version(&head.model, &head.version)
            .and_then(|record| record.approval_seq);
        switch.approval_seq = approval.ok_or_else(|| {
            bad(format!(
                "version {} of {} has no approval here to activate",
                head.version, head.model
            ))
        })?;
    }
    Ok(event)
}

/// Why the registry (or the policy sets, `review::gate`) could not be
/// rebuilt from the ledger.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::ledger::store::StoreError),
    /// A registry or policy-set entry does not decode.
    #[error("ledger entry {seq}: {problem}")]
    Entry {
        /// Its seq.
        seq: u64,
        /// What is wrong.
        problem: String,
    },
}

/// The registry of `models` as the ledger's registry entries leave it.
pub fn replay_from_store(
    store: &dyn crate::ledger::store::LedgerStore,
    models: impl IntoIterator<Item = String>,
) -> Result<Registry, ReplayError> {
    let mut events = Vec::new();
    for seq in store.governance_seqs()? {
        let bytes = store.entry(seq)?.ok_or_else(|| ReplayError::Entry {
            seq,
            problem: "missing".to_owned(),
        })?;
        let bad = |problem: String| ReplayError::Entry { seq, problem };
        let entry: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|err| bad(err.to_string()))?;
        let kind = entry.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if !Event::is_kind(kind) {
            continue;
        }
        let time = entry
            .get("time")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned();
        let event = Event::from_members(kind, &entry).map_err(|err| bad(err.to_string()))?;
        events.push((seq, time, event));
    }
    Ok(Registry::replay(models, events))
}

/// The last control event the ledger's registry entries record (0: none).
pub fn last_control_seq(store: &dyn crate::ledger::store::LedgerStore) -> Result<u64, ReplayError> {
    let mut last = 0;
    for seq in store.governance_seqs()?.into_iter().rev() {
        let Some(bytes) = store.entry(seq)? else {
            continue;
        };
        let entry: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
            .map_err(|err| ReplayError::Entry {
                seq,
                problem: err.to_string(),
            })?;
        if let Some(control_seq) = entry.get(CONTROL_SEQ_MEMBER).and_then(|v| v.as_u64()) {
            last = control_seq;
            break;
        }
    }
    Ok(last)
}
