//! Policy sets in a fleet (`[cluster]`): every change goes through the
//! fleet's control log (`crate::registry::shared`), and every replica
//! records and applies every change in the fleet's one order.
//!
//! A set is named by the seq of its proposal in each replica's own
//! ledger, so the same set has another number on each replica; in the
//! control log a change names sets by the control seq of their proposal,
//! which each replica maps to its own (from the `control_seq` its
//! proposal entries record).

use super::PolicyGate;
use super::changes::ChangeFailure;
use crate::ledger::store::LedgerStore;
use crate::registry::service::{RegistryService, ReplayError};
use crate::registry::shared::{
    CONTROL_SEQ_MEMBER, LogFuture, SharedDomain, SharedEvent, SharedLogError,
};
use crate::review::change::members::MalformedChange;
use crate::review::change::{CHANGE_KINDS, ChangeError, ChangeEvent};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Members that name a set by its proposal.
const SET_MEMBERS: [&str; 2] = ["proposal_seq", "deactivated"];

/// The gate's place in its fleet.
pub(super) struct FleetLink {
    /// Weak: the registry holds the gate (as its policy domain).
    registry: Weak<RegistryService>,
    /// Proposals by control seq: their seq in this replica's ledger.
    proposals: Mutex<BTreeMap<u64, u64>>,
}

/// The proposals of the ledger's policy-set entries that name their
/// control event: control seq -> seq.
pub fn recorded_proposals(store: &dyn LedgerStore) -> Result<BTreeMap<u64, u64>, ReplayError> {
    let mut proposals = BTreeMap::new();
    for seq in store.governance_seqs()? {
        let bad = |problem: String| ReplayError::Entry { seq, problem };
        let bytes = store.entry(seq)?.ok_or_else(|| bad("missing".to_owned()))?;
        let entry: Map<String, Value> =
            serde_json::from_slice(&bytes).map_err(|err| bad(err.to_string()))?;
        if entry.get("kind").and_then(Value::as_str) == Some(CHANGE_KINDS[0])
            && let Some(control_seq) = entry.get(CONTROL_SEQ_MEMBER).and_then(Value::as_u64)
        {
            proposals.insert(control_seq, seq);
        }
    }
    Ok(proposals)
}

impl PolicyGate {
    /// Makes policy-set changes go through `registry`'s control log;
    /// `proposals` as [`recorded_proposals`] read them. The domain to
    /// hand the registry ([`RegistryService::with_domain`]).
    pub fn join_fleet(
        self: &Arc<Self>,
        registry: &Arc<RegistryService>,
        proposals: BTreeMap<u64, u64>,
    ) {
        let _ = self.fleet.set(FleetLink {
            registry: Arc::downgrade(registry),
            proposals: Mutex::new(proposals),
        });
    }

    pub(super) fn fleet_registry(&self) -> Option<Arc<RegistryService>> {
        self.fleet.get()?.registry.upgrade()
    }

    fn proposals(&self) -> Option<std::sync::MutexGuard<'_, BTreeMap<u64, u64>>> {
        let link = self.fleet.get()?;
        Some(
            link.proposals
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The proposal recorded at `seq` is the fleet's `control_seq`-th event.
    pub(super) fn known_in_fleet(&self, control_seq: u64, seq: u64) {
        if let Some(mut proposals) = self.proposals() {
            proposals.insert(control_seq, seq);
        }
    }

    /// `members` as the control log holds them: sets named by the control
    /// seq of their proposal.
    pub(super) fn for_the_fleet(
        &self,
        mut members: Map<String, Value>,
    ) -> Result<Map<String, Value>, ChangeFailure> {
        let Some(proposals) = self.proposals() else {
            return Ok(members);
        };
        for name in SET_MEMBERS {
            let Some(local) = members.get(name).and_then(Value::as_u64) else {
                continue;
            };
            let control = proposals
                .iter()
                .find(|(_, seq)| **seq == local)
                .map(|(control, _)| *control)
                // A set proposed here before this replica joined the fleet.
                .ok_or(ChangeError::UnknownSet(local))?;
            members.insert(name.to_owned(), control.into());
        }
        Ok(members)
    }

    /// The event another replica appended, as this replica records it:
    /// sets named by their proposal here, the approval by this ledger's.
    fn as_recorded_here(
        &self,
        changes: &crate::review::change::PolicyChanges,
        shared: &SharedEvent,
    ) -> Result<ChangeEvent, ForeignChange> {
        let mut members = shared.members.clone();
        if let Some(proposals) = self.proposals() {
            for name in SET_MEMBERS {
                let Some(control) = members.get(name).and_then(Value::as_u64) else {
                    continue;
                };
                let local = proposals
                    .get(&control)
                    .ok_or(ForeignChange::UnknownProposal {
                        member: name,
                        control,
                    })?;
                members.insert(name.to_owned(), (*local).into());
            }
        }
        if members.contains_key("approval_seq") {
            let proposal = members.get("proposal_seq").and_then(Value::as_u64);
            let approval = proposal
                .and_then(|seq| changes.set(seq))
                .and_then(|set| set.approval_seq)
                .ok_or(ForeignChange::NotApprovedHere)?;
            members.insert("approval_seq".to_owned(), approval.into());
        }
        Ok(ChangeEvent::from_members(&shared.kind, &members)?)
    }
}

/// Why another replica's policy-set event cannot be recorded here.
#[derive(Debug, thiserror::Error)]
enum ForeignChange {
    /// It names a proposal by a control event that proposed no set here.
    #[error("{member} names control event {control}, which proposed no set here")]
    UnknownProposal {
        /// `proposal_seq` or `deactivated`.
        member: &'static str,
        /// The control event's seq.
        control: u64,
    },
    /// It switches to a set that has no approval in this ledger.
    #[error("the set switched to has no approval here")]
    NotApprovedHere,
    /// Its members do not decode.
    #[error(transparent)]
    Malformed(#[from] MalformedChange),
}

/// The gate as the registry's domain for policy-set control events.
pub struct PolicyDomain(pub Arc<PolicyGate>);

impl SharedDomain for PolicyDomain {
    fn kinds(&self) -> &'static [&'static str] {
        &CHANGE_KINDS
    }

    fn apply<'a>(&'a self, shared: &'a SharedEvent) -> LogFuture<'a, ()> {
        Box::pin(async move {
            let gate = &self.0;
            let mut changes = gate.changes.lock().await;
            let event = gate
                .as_recorded_here(&changes, shared)
                .map_err(|problem| SharedLogError(problem.into()))?;
            gate.record(&mut changes, event, Some(shared.control_seq))
                .await
                .map_err(|err| SharedLogError(Box::new(err)))?;
            Ok(())
        })
    }
}
