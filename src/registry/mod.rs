//! The model-version registry: versions, their approval states and the
//! four-eyes rules, as a deterministic state machine; publishes read-only
//! snapshots for the proxy.
//!
//! Two phases, so that nothing changes before the ledger holds it:
//! [`Registry::decide`] checks a [`Command`] and returns the [`Event`] to
//! record (or `None` for a repeat that changes nothing); once the ledger
//! made that entry durable at some seq, [`Registry::apply`] changes the
//! state and publishes a new [`Snapshot`]. [`Registry::replay`] rebuilds
//! the same state from the ledger's registry entries.
//!
//! - [`types`]: roles, principals, states, specs;
//! - [`policy`]: approval policies and the four-eyes rule;
//! - [`command`], [`event`] (and their ledger members), [`record`];
//! - [`snapshot`]: what the proxy resolves requests against;
//! - [`service`]: the registry at run time, recording every event in the
//!   ledger before applying it;
//! - [`shared`]: the control log a fleet's replicas share.
//!
//! Everything but `service` is pure logic: no I/O, no clock (callers pass
//! seq and time), no config.

mod apply;
pub mod command;
mod decide;
pub mod error;
pub mod event;
mod members;
pub mod policy;
pub mod record;
pub mod service;
pub mod shared;
pub mod snapshot;
pub mod types;

#[cfg(test)]
pub(crate) mod tests;

pub use command::Command;
pub use decide::roles_allow;
pub use error::RegistryError;
pub use event::{ApprovalMark, EVENT_KINDS, Event, EventHead, ProposalDetail, Switch};
pub use policy::{ApprovalPolicy, Outstanding, PolicySet, outstanding};
pub use record::{ApprovalRecord, HistoryRecord, ModelRecord, VersionRecord};
pub use snapshot::{Resolution, Snapshot};
pub use types::{Action, Principal, RiskClass, Role, VersionSpec, VersionState};

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every configured model, its versions and who may serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registry {
    models: BTreeMap<String, ModelRecord>,
    last_seq: Option<u64>,
    #[serde(skip)]
    snapshot: Arc<Snapshot>,
}

impl Registry {
    /// An empty registry for the configured models.
    pub fn new<S: Into<String>>(models: impl IntoIterator<Item = S>) -> Self {
        let mut registry = Registry {
            models: models
                .into_iter()
                .map(|name| (name.into(), ModelRecord::default()))
                .collect(),
            last_seq: None,
            snapshot: Arc::default(),
        };
        registry.publish();
        registry
    }

    /// The registry for the configured models after `events` (the
    /// ledger's registry entries in seq order, with their seq and time).
    /// Equals the state reached by applying the same events live.
    ///
    /// A model that is no longer configured but has events keeps its
    /// record, so that no history is lost; the proxy only routes
    /// configured models.
    pub fn replay<S: Into<String>>(
        models: impl IntoIterator<Item = S>,
        events: impl IntoIterator<Item = (u64, String, Event)>,
    ) -> Self {
        let mut registry = Registry::new(models);
        for (seq, time, event) in events {
            registry.apply_quietly(&event, seq, &time);
        }
        registry.publish();
        registry
    }

    /// All models by name.
    pub fn models(&self) -> &BTreeMap<String, ModelRecord> {
        &self.models
    }

    /// One model.
    pub fn model(&self, model: &str) -> Option<&ModelRecord> {
        self.models.get(model)
    }

    /// One version of a model.
    pub fn version(&self, model: &str, version: &str) -> Option<&VersionRecord> {
        self.models.get(model)?.versions.get(version)
    }

    /// Seq of the last event applied.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The current read-only view; cheap (an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot)
    }

    /// [`Snapshot::resolve`] on the current state.
    pub fn resolve(&self, model: &str, requested: Option<&str>) -> Resolution<'_> {
        self.snapshot.resolve(model, requested)
    }
}
