//! Drift references in a fleet: an upload (`PUT
//! /admin/models/{model}/versions/{version}/kpi-reference`) to any replica
//! is a control event (`kpi_reference_set`, the upload in it), which every
//! replica applies in the fleet's one order: it stores the upload,
//! records the entry citing the control seq and takes the reference into
//! its own windows. The first replica to apply it also puts it in the KPI
//! feed's order, where the fleet's windows take it (docs/kpis.md "Fleet
//! KPIs").

use super::ClusterError;
use super::kpi_feed::{ReferenceEntry, publish_reference};
use super::session::Session;
use crate::config::ClusterConfig;
use crate::kpi::{
    FeatureValue, FeedEvent, KeepError, REFERENCE_SET, ReferenceKeeper, SharedReference,
    UPLOAD_MEMBER, Upload,
};
use crate::ledger::entry::EntryBody;
use crate::ledger::sequencer::Ledger;
use crate::registry::shared::{
    CONTROL_SEQ_MEMBER, LogFuture, SharedDomain, SharedEvent, SharedLogError,
};
use serde_json::{Map, Value};

/// Why a replica could not apply a reference's control event.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The event does not carry an upload this gateway reads.
    #[error("control event {control_seq}: {problem}")]
    Malformed {
        /// Its control seq.
        control_seq: u64,
        /// What is wrong.
        problem: String,
    },
    /// The KPI feed could not be written.
    #[error("the fleet's KPI feed: {0}")]
    Feed(#[from] ClusterError),
    /// Stored or recorded here it was not.
    #[error(transparent)]
    Keep(#[from] KeepError),
}

/// The control-log domain of drift references.
pub struct ReferenceDomain {
    replica_id: String,
    session: Session,
    keeper: ReferenceKeeper,
}

impl ReferenceDomain {
    /// Applies references with `keeper`, writing the feed of the fleet
    /// `config` names.
    pub fn new(config: &ClusterConfig, keeper: ReferenceKeeper) -> Self {
        Self {
            replica_id: config.replica_id.clone(),
            session: Session::new(config.url.clone()),
            keeper,
        }
    }

    /// The keeper it applies references with.
    pub fn keeper(&self) -> &ReferenceKeeper {
        &self.keeper
    }

    /// Applies `event`, carrying `upload` with its `rows` as
    /// [`ReferenceKeeper::parse`] read them: in the KPI feed first
    /// (written once by whichever replica comes first), then stored,
    /// recorded and in this replica's windows. The entry's seq.
    pub async fn apply_upload(
        &self,
        event: &SharedEvent,
        upload: &Upload,
        rows: Vec<Vec<FeatureValue>>,
    ) -> Result<Option<u64>, ReferenceError> {
        let control_seq = event.control_seq;
        let reference = FeedEvent::Reference(SharedReference {
            model: upload.model.clone(),
            version: upload.version.clone(),
            control_seq,
            sha256: upload.sha256(),
            rows,
        });
        // Up to a million rows: written out off the async workers.
        let (rows, payload) = tokio::task::spawn_blocking(move || {
            let payload = crate::kpi::encode_feed_payload(&reference);
            let FeedEvent::Reference(SharedReference { rows, .. }) = reference else {
                unreachable!("built as a reference above")
            };
            (rows, payload)
        })
        .await
        .map_err(|err| KeepError::Join(err.to_string()))?;
        let entry = ReferenceEntry {
            model: upload.model.clone(),
            version: upload.version.clone(),
            control_seq: i64::try_from(control_seq).unwrap_or(i64::MAX),
            payload,
        };
        let replica_id = self.replica_id.clone();
        self.session
            .run(move |client| Box::pin(publish_reference(client, entry, replica_id)))
            .await?;
        Ok(self.keeper.keep(upload, rows, recorded(event)).await?)
    }

    /// Applies another replica's event (or this one's, not applied at once).
    async fn apply_event(&self, event: &SharedEvent) -> Result<(), ReferenceError> {
        let malformed = |problem: String| ReferenceError::Malformed {
            control_seq: event.control_seq,
            problem,
        };
        let upload =
            Upload::from_members(&event.members).map_err(|err| malformed(err.to_string()))?;
        match self.keeper.parse(&upload).await {
            Ok(rows) => {
                self.apply_upload(event, &upload, rows).await?;
            }
            Err(problem) => {
                // Recorded all the same: every replica's log has every
                // control event. Its windows keep what they had.
                tracing::error!(model = %upload.model, version = %upload.version, control_seq = event.control_seq, %problem, "a drift reference uploaded elsewhere in the fleet does not fit this replica's [models.kpi]: give every replica the same KPI settings");
                self.keeper.record(recorded(event)).await?;
            }
        }
        Ok(())
    }
}

/// The entry members of `event`: as the deciding replica recorded them,
/// without the upload (the entry keeps its digest), with the control seq.
fn recorded(event: &SharedEvent) -> Map<String, Value> {
    let mut members = event.members.clone();
    members.remove(UPLOAD_MEMBER);
    members.insert(CONTROL_SEQ_MEMBER.to_owned(), event.control_seq.into());
    members
}

impl SharedDomain for ReferenceDomain {
    fn kinds(&self) -> &'static [&'static str] {
        &[REFERENCE_SET]
    }

    fn apply<'a>(&'a self, event: &'a SharedEvent) -> LogFuture<'a, ()> {
        Box::pin(async move {
            self.apply_event(event)
                .await
                .map_err(|err| SharedLogError(Box::new(err)))
        })
    }
}

/// The control-log domain of drift references on a replica without
/// `[models.kpi]` (its configuration not updated yet, in a rolling
/// change): other replicas' uploads are recorded, as every replica's log
/// has every control event, and not used; the replica keeps following
/// the control log rather than stopping at the first upload.
pub struct UnusedReferences {
    ledger: Ledger,
}

impl UnusedReferences {
    /// Records uploads in `ledger`.
    pub fn new(ledger: Ledger) -> Self {
        Self { ledger }
    }
}

impl SharedDomain for UnusedReferences {
    fn kinds(&self) -> &'static [&'static str] {
        &[REFERENCE_SET]
    }

    fn apply<'a>(&'a self, event: &'a SharedEvent) -> LogFuture<'a, ()> {
        Box::pin(async move {
            tracing::warn!(
                control_seq = event.control_seq,
                "a drift reference uploaded elsewhere in the fleet is recorded but not used here: this replica has no [models.kpi]; give every replica the same KPI settings"
            );
            self.ledger
                .append(EntryBody::Governance {
                    kind: REFERENCE_SET,
                    members: recorded(event),
                })
                .await
                .map(|_| ())
                .map_err(|err| {
                    SharedLogError(Box::new(ReferenceError::Keep(KeepError::Ledger(err))))
                })
        })
    }
}
