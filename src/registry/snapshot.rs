//! The read-only view the proxy consults on every request: which version
//! of a model may serve, and which approval entry allows it.
//!
//! A [`Snapshot`] is immutable and shared behind an `Arc`; the registry
//! builds a new one after each applied event (rebuilding only the model
//! that changed), so a rollback or revocation takes effect for the next
//! request that takes the new snapshot.

use super::record::ModelRecord;
use super::types::{VersionSpec, VersionState};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the proxy should do with a request for a model (and version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// Serve with this version; decisions cite `approval_seq`.
    Serve {
        /// The version label.
        version: &'a str,
        /// Seq of the approval entry that allows the version.
        approval_seq: u64,
        /// Upstream and artifact of the version.
        spec: &'a VersionSpec,
    },
    /// Refuse (403 `model_version_not_approved`): the version is proposed,
    /// rejected or retired, or (`state: None`) the model has no active
    /// version for an unversioned call.
    NotApproved {
        /// The requested version's state; `None` when no version is active.
        state: Option<VersionState>,
    },
    /// Refuse (403 `model_version_revoked`).
    Revoked,
    /// The model is not in the registry (404).
    UnknownModel,
    /// The model has no such version (404).
    UnknownVersion,
}

/// One version as the proxy needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VersionView {
    state: VersionState,
    approval_seq: Option<u64>,
    spec: VersionSpec,
}

/// One model as the proxy needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ModelView {
    active: Option<String>,
    /// Set while the model has no active version because it was revoked.
    revoked_active: Option<String>,
    versions: HashMap<String, VersionView>,
}

impl ModelView {
    pub(crate) fn of(record: &ModelRecord) -> Self {
        ModelView {
            active: record.active.clone(),
            revoked_active: record.revoked_active.clone(),
            versions: record
                .versions
                .iter()
                .map(|(label, version)| {
                    let view = VersionView {
                        state: version.state,
                        approval_seq: version.approval_seq,
                        spec: version.spec.clone(),
                    };
                    (label.clone(), view)
                })
                .collect(),
        }
    }
}

/// An immutable registry view: cheap to share, read without locks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    models: HashMap<String, Arc<ModelView>>,
    last_seq: Option<u64>,
}

impl Snapshot {
    /// A snapshot of all models.
    pub(crate) fn build(models: &BTreeMap<String, ModelRecord>, last_seq: Option<u64>) -> Self {
        Snapshot {
            models: models
                .iter()
                .map(|(name, record)| (name.clone(), Arc::new(ModelView::of(record))))
                .collect(),
            last_seq,
        }
    }

    /// This snapshot with one model rebuilt.
    pub(crate) fn with_model(&self, name: &str, record: &ModelRecord, last_seq: u64) -> Self {
        let mut models = self.models.clone();
        models.insert(name.to_owned(), Arc::new(ModelView::of(record)));
        Snapshot {
            models,
            last_seq: Some(last_seq),
        }
    }

    /// Seq of the last event applied (`None` for a registry without events).
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Names of the models, in no particular order.
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// The active version of a model, if any.
    pub fn active_version(&self, model: &str) -> Option<&str> {
        self.models.get(model)?.active.as_deref()
    }

    /// The version that was active when it was revoked, while no other
    /// has been activated since.
    pub fn revoked_active(&self, model: &str) -> Option<&str> {
        self.models.get(model)?.revoked_active.as_deref()
    }

    /// The version labels of a model (empty for an unknown model).
    pub fn version_labels(&self, model: &str) -> Vec<&str> {
        self.models
            .get(model)
            .map(|view| view.versions.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Which version serves a request for `model`, explicitly `requested`
    /// or (when `None`) the active one. Fails closed: a version without an
    /// approval seq is never served.
    pub fn resolve(&self, model: &str, requested: Option<&str>) -> Resolution<'_> {
        let Some(view) = self.models.get(model) else {
            return Resolution::UnknownModel;
        };
        let (label, version) = match requested {
            Some(label) => match view.versions.get_key_value(label) {
                Some((label, version)) => (label, version),
                None => return Resolution::UnknownVersion,
            },
            None => match view
                .active
                .as_ref()
                .and_then(|label| Some((label, view.versions.get(label)?)))
            {
                Some(found) => found,
                None if view.revoked_active.is_some() => return Resolution::Revoked,
                None => return Resolution::NotApproved { state: None },
            },
        };
        match (version.state, version.approval_seq) {
            (VersionState::Revoked, _) => Resolution::Revoked,
            (state, Some(approval_seq)) if state.is_servable() => Resolution::Serve {
                version: label,
                approval_seq,
                spec: &version.spec,
            },
            (state, _) => Resolution::NotApproved { state: Some(state) },
        }
    }
}
