//! The registry at run time: commands are taken one at a time, each
//! resulting event is made durable in the ledger first and only then
//! applied, and every change publishes a new snapshot.
//!
//! One lock around decide, append and apply makes concurrent calls
//! linearizable: two approvers approving at once are ordered, each sees
//! the other's effect, and a repeated call finds its own earlier event and
//! changes nothing (no second entry). A failed append changes nothing.

use super::{Command, Event, PolicySet, Principal, Registry, RegistryError, Snapshot};
use crate::decision::SinkError;
use crate::ledger::entry::{EntryBody, rfc3339_millis};
use crate::ledger::sequencer::Ledger;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

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
}

/// What a carried-out command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// Seq of the entry recording it; `None` when it repeated an earlier
    /// call and changed nothing.
    pub entry_seq: Option<u64>,
    /// The event, if one was recorded.
    pub event: Option<Event>,
}

/// The registry behind its lock, with the ledger it records into.
pub struct RegistryService {
    registry: Mutex<Registry>,
    ledger: Ledger,
    policies: HashMap<String, PolicySet>,
    default_policy: PolicySet,
    on_change: OnChange,
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
            registry: Mutex::new(registry),
            ledger,
            policies,
            default_policy,
            on_change,
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
        tokio::spawn(async move { service.run(command, &by).await })
            .await
            .unwrap_or_else(|err| {
                Err(ServiceError::Ledger(SinkError::Unavailable(format!(
                    "the registry task failed: {err}"
                ))))
            })
    }

    async fn run(&self, command: Command, by: &Principal) -> Result<Done, ServiceError> {
        let mut registry = self.registry.lock().await;
        let policy = self.policy(command.model());
        let Some(event) = registry.decide(&command, by, policy)? else {
            return Ok(Done {
                entry_seq: None,
                event: None,
            });
        };
        let ack = self
            .ledger
            .append(EntryBody::Governance {
                kind: event.kind(),
                members: event.to_members(),
            })
            .await
            .map_err(ServiceError::Ledger)?;
        let (Some(seq), Some(time)) = (ack.seq, ack.time) else {
            return Err(ServiceError::Ledger(SinkError::Unavailable(
                "the ledger did not say where it recorded the change".to_owned(),
            )));
        };
        registry.apply(&event, seq, &rfc3339_millis(time));
        (self.on_change)(registry.snapshot());
        Ok(Done {
            entry_seq: Some(seq),
            event: Some(event),
        })
    }

    /// Reads the registry under its lock.
    pub async fn read<R>(&self, read: impl FnOnce(&Registry) -> R) -> R {
        read(&*self.registry.lock().await)
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
