//! Applying an event: the only way registry state changes, live and in
//! replay alike. Sets what the event says; never consults a policy and
//! never fails. An event that does not fit the state (only a damaged
//! ledger could hold one) changes nothing it cannot find.

use super::Registry;
use super::event::{Event, EventHead, Switch};
use super::record::{ApprovalRecord, HistoryRecord, ModelRecord, VersionRecord};
use super::snapshot::Snapshot;
use super::types::VersionState;
use std::sync::Arc;

impl Registry {
    /// Applies `event`, recorded in the ledger at `seq` and `time`, and
    /// publishes a new snapshot. `event` must come from [`Registry::decide`]
    /// on this state (or be its replay).
    pub fn apply(&mut self, event: &Event, seq: u64, time: &str) {
        self.apply_quietly(event, seq, time);
        let name = &event.head().model;
        if let Some(record) = self.models.get(name) {
            self.snapshot = Arc::new(self.snapshot.with_model(name, record, seq));
        }
    }

    /// Applies `event` without publishing a snapshot.
    pub(crate) fn apply_quietly(&mut self, event: &Event, seq: u64, time: &str) {
        self.last_seq = Some(seq);
        let head = event.head();
        let model = self.models.entry(head.model.clone()).or_default();
        let history = |state: VersionState| HistoryRecord {
            seq,
            kind: event.kind(),
            principal: head.principal.name.clone(),
            issuer: head.principal.issuer.clone(),
            reason: head.reason.clone(),
            time: time.to_owned(),
            state,
        };
        if let Some(spec) = event.spec() {
            model
                .versions
                .entry(head.version.clone())
                .or_insert_with(|| VersionRecord {
                    spec,
                    proposer: head.principal.name.clone(),
                    proposed_seq: seq,
                    proposed_time: time.to_owned(),
                    state: head.state,
                    approvals: Vec::new(),
                    approval_seq: None,
                    history: vec![history(head.state)],
                });
            return;
        }
        let Some(version) = model.versions.get_mut(&head.version) else {
            return;
        };
        version.state = head.state;
        version.history.push(history(head.state));
        match event {
            Event::Approved { .. } => {
                version.approvals.push(ApprovalRecord {
                    principal: head.principal.name.clone(),
                    roles: head.principal.roles.clone(),
                    issuer: head.principal.issuer.clone(),
                    seq,
                    time: time.to_owned(),
                });
                if head.state == VersionState::Approved {
                    version.approval_seq = Some(seq);
                }
            }
            Event::Activated { switch, .. } => {
                deactivate(model, head, switch, history(VersionState::Approved));
                model
                    .activation_history
                    .retain(|label| *label != head.version);
                if let Some(previous) = &switch.deactivated
                    && *previous != head.version
                {
                    model.activation_history.push(previous.clone());
                }
                model.active = Some(head.version.clone());
                model.revoked_active = None;
            }
            Event::RolledBack { switch, .. } => {
                deactivate(model, head, switch, history(VersionState::Approved));
                let stack = &mut model.activation_history;
                if let Some(at) = stack.iter().rposition(|label| *label == head.version) {
                    stack.truncate(at);
                }
                model.active = Some(head.version.clone());
                model.revoked_active = None;
            }
            Event::Rejected { .. } | Event::Retired { .. } | Event::Revoked { .. } => {
                if model.active.as_deref() == Some(head.version.as_str()) {
                    model.active = None;
                    if matches!(event, Event::Revoked { .. }) {
                        model.revoked_active = Some(head.version.clone());
                    }
                }
                model
                    .activation_history
                    .retain(|label| *label != head.version);
            }
            Event::Proposed { .. } => {}
        }
    }

    /// Rebuilds the published snapshot from scratch.
    pub(crate) fn publish(&mut self) {
        self.snapshot = Arc::new(Snapshot::build(&self.models, self.last_seq));
    }
}

/// The version that was active goes back to approved.
fn deactivate(model: &mut ModelRecord, head: &EventHead, switch: &Switch, entry: HistoryRecord) {
    let Some(previous) = &switch.deactivated else {
        return;
    };
    if *previous == head.version {
        return;
    }
    if let Some(record) = model.versions.get_mut(previous) {
        record.state = VersionState::Approved;
        record.history.push(entry);
    }
}
