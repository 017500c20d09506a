//! Which model versions the proxy may route to right now, and where.
//!
//! The table is immutable and replaced whole ([`Serving::publish`]) when
//! the registry changes, so a request reads one consistent view for its
//! whole life: a revocation or rollback takes effect for the next request,
//! and requests already in flight finish on the version they started with.

use super::error::ProxyError;
use crate::config::{Credential, ModelConfig, UpstreamHttp, UpstreamUrl};
use crate::registry::{Resolution, Snapshot};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// A version the gateway may route to.
#[derive(Debug, Clone)]
pub struct ServableVersion {
    /// Version label.
    pub version: String,
    /// Upstream base URL.
    pub upstream: UpstreamUrl,
    /// Model name the upstream knows, if it differs.
    pub upstream_model: Option<String>,
    /// Credential added to upstream requests.
    pub credential: Option<Credential>,
    /// The HTTP version spoken to the upstream.
    pub http: UpstreamHttp,
    /// Seq of the ledger entry that approved it (none before governance applies).
    pub approval_seq: Option<u64>,
    /// Its risk class as registered (`minimal`, `limited`, `high`).
    pub risk_class: &'static str,
}

/// Why a known version may not be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Proposed, rejected or retired: not (or no longer) approved.
    NotApproved {
        /// Its state, for the message.
        state: String,
    },
    /// Revoked.
    Revoked,
}

/// One model's versions.
#[derive(Debug, Clone, Default)]
pub struct ModelServing {
    /// Every known version: servable, or why not.
    pub versions: HashMap<String, Result<Arc<ServableVersion>, Refusal>>,
    /// The version that answers unversioned calls.
    pub active: Option<String>,
    /// The version that was active when it was revoked, while none is
    /// active: unversioned calls are told it was revoked.
    pub revoked_active: Option<String>,
}

/// What the proxy may serve, per model name.
#[derive(Debug, Clone, Default)]
pub struct ServingTable {
    /// By model name.
    pub models: HashMap<String, ModelServing>,
}

impl ServingTable {
    /// The table the registry allows: for each configured model, every
    /// version the snapshot knows, servable (with its approval) or
    /// refused with its state. Credentials come from the configuration:
    /// the version's own, else the model's.
    pub fn from_registry(models: &[ModelConfig], snapshot: &Snapshot) -> Self {
        let models = models
            .iter()
            .map(|model| {
                let versions = snapshot
                    .version_labels(&model.name)
                    .into_iter()
                    .map(|label| (label.to_owned(), servable(model, snapshot, label)))
                    .collect();
                let serving = ModelServing {
                    versions,
                    active: snapshot.active_version(&model.name).map(str::to_owned),
                    revoked_active: snapshot.revoked_active(&model.name).map(str::to_owned),
                };
                (model.name.clone(), serving)
            })
            .collect();
        Self { models }
    }

    /// The version serving a call to `model` that names `requested` (or no version).
    pub fn resolve(
        &self,
        model: &str,
        requested: Option<&str>,
    ) -> Result<Arc<ServableVersion>, ProxyError> {
        let serving = self
            .models
            .get(model)
            .ok_or_else(|| ProxyError::UnknownModel {
                name: model.to_owned(),
                served: None,
            })?;
        let Some(wanted) = requested.or(serving.active.as_deref()) else {
            return Err(match &serving.revoked_active {
                Some(version) => ProxyError::VersionRevoked {
                    model: model.to_owned(),
                    version: version.clone(),
                },
                None => ProxyError::NoActiveVersion(model.to_owned()),
            });
        };
        match serving.versions.get(wanted) {
            Some(Ok(version)) => Ok(version.clone()),
            Some(Err(Refusal::Revoked)) => Err(ProxyError::VersionRevoked {
                model: model.to_owned(),
                version: wanted.to_owned(),
            }),
            Some(Err(Refusal::NotApproved { state })) => Err(ProxyError::VersionNotApproved {
                model: model.to_owned(),
                version: wanted.to_owned(),
                state: state.clone(),
            }),
            None => Err(ProxyError::UnknownModelVersion {
                model: model.to_owned(),
                version: wanted.to_owned(),
            }),
        }
    }
}

/// One version as the registry allows it.
fn servable(
    model: &ModelConfig,
    snapshot: &Snapshot,
    label: &str,
) -> Result<Arc<ServableVersion>, Refusal> {
    match snapshot.resolve(&model.name, Some(label)) {
        Resolution::Serve {
            version,
            approval_seq,
            spec,
        } => {
            let upstream = UpstreamUrl::parse(&spec.upstream).map_err(|problem| {
                tracing::error!(model = %model.name, version, %problem, "approved version has an unusable upstream; not served");
                Refusal::NotApproved {
                    state: "approved with an unusable upstream".to_owned(),
                }
            })?;
            let declared = model.version(version);
            let credential = declared
                .and_then(|declared| declared.credential.clone())
                .or_else(|| model.credential.clone());
            let http = declared.map_or(model.http, |declared| declared.http);
            Ok(Arc::new(ServableVersion {
                version: version.to_owned(),
                upstream,
                upstream_model: spec.upstream_model.clone(),
                credential,
                http,
                approval_seq: Some(approval_seq),
                risk_class: spec.risk_class.as_str(),
            }))
        }
        Resolution::Revoked => Err(Refusal::Revoked),
        Resolution::NotApproved { state } => Err(Refusal::NotApproved {
            state: state
                .map_or("not active", |state| state.as_str())
                .to_owned(),
        }),
        Resolution::UnknownModel | Resolution::UnknownVersion => Err(Refusal::NotApproved {
            state: "unknown".to_owned(),
        }),
    }
}

/// The current table, replaced whole on every registry change.
#[derive(Debug, Default)]
pub struct Serving {
    current: RwLock<Arc<ServingTable>>,
    /// In a fleet: how current the table is with the fleet's approvals.
    freshness: Option<Arc<crate::registry::shared::Freshness>>,
}

impl Serving {
    /// Starts with `table`.
    pub fn new(table: ServingTable) -> Self {
        Self {
            current: RwLock::new(Arc::new(table)),
            freshness: None,
        }
    }

    /// A fleet replica's table: refused (fail closed) while `freshness`
    /// says it is older than the bounded staleness.
    pub fn following(mut self, freshness: Arc<crate::registry::shared::Freshness>) -> Self {
        self.freshness = Some(freshness);
        self
    }

    /// `Err` while a fleet replica's table may be out of date beyond its
    /// bound (or the replica lost its id).
    pub fn check_fresh(&self) -> Result<(), ProxyError> {
        match self.freshness.as_deref().and_then(|f| f.problem()) {
            None => Ok(()),
            Some(problem) => Err(ProxyError::ControlPlaneUnavailable(problem)),
        }
    }

    /// The table for one request.
    pub fn current(&self) -> Arc<ServingTable> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `table` the one every later request sees.
    pub fn publish(&self, table: ServingTable) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servable(version: &str, approval_seq: u64) -> Result<Arc<ServableVersion>, Refusal> {
        Ok(Arc::new(ServableVersion {
            version: version.into(),
            upstream: UpstreamUrl::parse("http://127.0.0.1:9").unwrap(),
            upstream_model: None,
            credential: None,
            http: UpstreamHttp::Http1,
            approval_seq: Some(approval_seq),
            risk_class: "high",
        }))
    }

    fn table(active: Option<&str>) -> ServingTable {
        let mut model = ModelServing {
            active: active.map(str::to_owned),
            ..ModelServing::default()
        };
        model.versions.insert("1".into(), servable("1", 4));
        model.versions.insert("2".into(), servable("2", 9));
        model.versions.insert(
            "3".into(),
            Err(Refusal::NotApproved {
                state: "proposed".into(),
            }),
        );
        model.versions.insert("4".into(), Err(Refusal::Revoked));
        let mut table = ServingTable::default();
        table.models.insert("m".into(), model);
        table
    }

    #[test]
    fn each_version_is_served_or_refused_with_its_code() {
        let table = table(Some("2"));
        let code = |requested: Option<&str>| match table.resolve("m", requested) {
            Ok(version) => format!("serve {} ({:?})", version.version, version.approval_seq),
            Err(err) => format!("{} {}", err.status().as_u16(), err.code()),
        };
        assert_eq!(code(None), "serve 2 (Some(9))");
        assert_eq!(code(Some("1")), "serve 1 (Some(4))");
        assert_eq!(code(Some("3")), "403 model_version_not_approved");
        assert_eq!(code(Some("4")), "403 model_version_revoked");
        assert_eq!(code(Some("5")), "404 unknown_model_version");
        let err = table.resolve("other", None).unwrap_err();
        assert_eq!(err.code(), "unknown_model");
        let none_active = super::tests::table(None);
        let err = none_active.resolve("m", None).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (403, "model_version_not_approved")
        );
        let mut revoked = super::tests::table(None);
        revoked.models.get_mut("m").unwrap().revoked_active = Some("4".into());
        let err = revoked.resolve("m", None).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (403, "model_version_revoked")
        );
        assert_eq!(
            code_of(&revoked, Some("1")),
            "served",
            "a named version still serves"
        );
    }

    fn code_of(table: &ServingTable, requested: Option<&str>) -> &'static str {
        match table.resolve("m", requested) {
            Ok(_) => "served",
            Err(err) => err.code(),
        }
    }

    #[test]
    fn a_published_table_is_seen_by_the_next_reader_only() {
        let serving = Serving::new(table(Some("1")));
        let before = serving.current();
        serving.publish(table(Some("2")));
        assert_eq!(before.resolve("m", None).unwrap().version, "1", "in flight");
        assert_eq!(serving.current().resolve("m", None).unwrap().version, "2");
    }
}
