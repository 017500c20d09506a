//! Wiring of human oversight: the policy gate (its set recorded in the
//! ledger), the review queue restored from its files and the ledger, and
//! reloads on SIGHUP.

use super::AppError;
use crate::config::Config;
use crate::decision::DecisionId;
use crate::ledger::sequencer::Ledger;
use crate::ledger::store::LedgerStore;
use crate::metrics::Metrics;
use crate::proxy::Oversight;
use crate::registry::ApprovalPolicy;
use crate::review::{
    PolicyGate, PolicySet, RecordedChanges, ReviewFiles, ReviewMetrics, ReviewQueue, StartError,
    ledger_reviews, read_sources, recorded_changes,
};
use std::sync::Arc;

/// The gate and the queue, ready for the proxy and the admin API; and,
/// on a fleet replica under change control, the policy folder's files to
/// propose once it follows the fleet.
pub(super) async fn start(
    config: &Config,
    set: PolicySet,
    store: &Arc<dyn LedgerStore>,
    ledger: Ledger,
    metrics: &Metrics,
) -> Result<(Oversight, Option<Vec<(String, String)>>), AppError> {
    let review = &config.review;
    let review_metrics = ReviewMetrics::register(metrics.registry())?;
    review_metrics.expect_models(config.models.iter().map(|model| model.name.as_str()));
    // INVARIANT: a set was loaded, so the folder is configured.
    let dir = review.policies_dir.clone().unwrap_or_default();
    let mut held_folder = None;
    let gate = match &review.policy_approval {
        None => Arc::new(
            PolicyGate::start(
                &dir,
                set,
                review.on_error,
                ledger.clone(),
                review_metrics.clone(),
            )
            .await
            .map_err(AppError::Append)?,
        ),
        Some(level) => {
            // Under change control the folder is only proposed; the set in
            // force is the one the ledger says was activated.
            drop(set);
            let changes = recorded_changes(store.as_ref())
                .map_err(|err| AppError::PolicySets(err.to_string()))?;
            let mut folder = match read_sources(&dir) {
                Ok(files) => Some(files),
                Err(error) => {
                    tracing::error!(%error, "the policy folder cannot be read; nothing proposed");
                    None
                }
            };
            let approval =
                ApprovalPolicy::new(level.approvers, level.required_roles.iter().cloned());
            // A fleet replica proposes the folder once it follows the
            // fleet (another replica may have proposed the same set).
            if config.cluster.is_some() {
                held_folder = folder.take();
            }
            PolicyGate::start_governed(
                &dir,
                folder,
                approval,
                RecordedChanges {
                    changes,
                    store: store.clone(),
                },
                review.on_error,
                ledger.clone(),
                review_metrics.clone(),
            )
            .await
            .map_err(|err| match err {
                StartError::Ledger(err) => AppError::Append(err),
                StartError::Policy(err) => AppError::Policy(err),
            })?
        }
    };
    let files = ReviewFiles::open(&config.server.data_dir.join("reviews"))?;
    let recorded = ledger_reviews(store.as_ref())?;
    let queue = ReviewQueue::start(
        files,
        ledger,
        review.clone(),
        review_metrics,
        recorded,
        |id: &DecisionId| store.decision_seq(id.as_bytes()).ok().flatten(),
    )
    .await?;
    Ok((
        Oversight {
            gate,
            queue,
            max_held_bytes: review.max_held_bytes,
        },
        held_folder,
    ))
}
