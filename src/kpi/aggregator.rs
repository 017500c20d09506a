//! The KPI aggregator: one thread that turns served exchanges into rows,
//! keeps each model's fairness window and each version's drift window,
//! joins ground-truth labels to the rows they belong to, and publishes the
//! KPIs as Prometheus gauges.
//!
//! The request path only hands over an [`Observation`] (cheap clones of
//! the bodies) through a bounded channel: when it is full the observation
//! is dropped and counted, never waited for. Parsing, selectors and math
//! run here.

mod fleet;
mod metrics;
#[cfg(test)]
mod thread_tests;

use super::extract::{Exchange, extract};
use super::fairness_window::{FairnessSpec, FairnessWindow, Labeled};
use super::fleet::{FeedEvent, FeedSender, SharedLabel, SharedRow};
use super::reference::{CategoricalReference, NumericReference, Reference};
use super::report::{self, KpiReport, ReferenceSource, ReferenceState};
use super::ring::RowSeq;
use super::upload::UnusableReference;
use super::{Class, DriftWindow, FeatureValue, Row};
use crate::config::{FeatureKind, KpiConfig, ModelConfig};
use bytes::Bytes;
use metrics::KpiMetrics;
use prometheus::{IntCounter, IntCounterVec, Registry};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Observations waiting for the aggregator; beyond this they are dropped.
const QUEUE: usize = 4096;

/// Versions of a model whose drift is kept (each a window and a
/// reference): a model retrained daily would otherwise keep every version
/// it ever served.
const MAX_DRIFT_VERSIONS: usize = 16;

/// One served exchange of a model with KPIs.
#[derive(Debug)]
pub struct Observation {
    /// The model.
    pub model: String,
    /// The version that answered.
    pub version: String,
    /// The decision, 32 hex digits.
    pub decision_id: String,
    /// The request body as forwarded.
    pub request: Bytes,
    /// The response body as released.
    pub response: Bytes,
    /// The request's `x-govgate-attr-*` headers (lower-case name, value).
    pub headers: Vec<(String, String)>,
}

/// One ground-truth label for one row of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// The decision.
    pub decision_id: String,
    /// The row's index within its request.
    pub row: usize,
    /// Whether the actual outcome was positive.
    pub label: bool,
}

/// What became of one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackResult {
    /// Joined to its row and counted.
    Applied,
    /// The row already had a label.
    AlreadyLabeled,
    /// No such decision (unknown, not a KPI model's, or beyond retention).
    UnknownDecision,
    /// The decision has no such row.
    UnknownRow,
}

impl FeedbackResult {
    /// The name in answers, the ledger and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackResult::Applied => "applied",
            FeedbackResult::AlreadyLabeled => "already_labeled",
            FeedbackResult::UnknownDecision => "unknown_decision",
            FeedbackResult::UnknownRow => "unknown_row",
        }
    }
}

/// Whose rows a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// This replica's (a single gateway's).
    Replica,
    /// The fleet's.
    Fleet,
}

enum Message {
    Observe(Observation),
    Reference {
        model: String,
        version: String,
        rows: Vec<Vec<FeatureValue>>,
        upload: ReferenceUpload,
        reply: oneshot::Sender<Result<(), UnusableReference>>,
    },
    Feedback(
        Vec<Feedback>,
        oneshot::Sender<Vec<(Option<String>, FeedbackResult)>>,
    ),
    Report(String, Scope, oneshot::Sender<Option<KpiReport>>),
    /// Events of the fleet's feed, in its order; answered once folded.
    Fold(Vec<FeedEvent>, oneshot::Sender<()>),
    /// Wakes the thread to see that it is stopping.
    Stop,
}

/// Why the KPI aggregator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its metric families could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Its thread could not be started.
    #[error("cannot start the KPI aggregator's thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Which upload a version's drift reference is: named in the KPI report
/// and in `kpi_snapshot` entries, so a reader finds its
/// `kpi_reference_set` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceUpload {
    /// SHA-256 (hex) of the uploaded bytes, as `kpi_reference_set` records.
    pub sha256: String,
    /// Seq of its `kpi_reference_set` entry, when this run recorded it
    /// (`None` for a reference restored from its file at start).
    pub seq: Option<u64>,
}

/// The request path's handle; cheap to clone.
#[derive(Clone)]
pub struct KpiRecorder {
    tx: mpsc::Sender<Message>,
    models: std::sync::Arc<[String]>,
    dropped: IntCounter,
    unread: IntCounterVec,
}

impl std::fmt::Debug for KpiRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KpiRecorder").finish_non_exhaustive()
    }
}

impl KpiRecorder {
    /// Hands an exchange over without waiting; a full queue drops it (counted).
    pub fn observe(&self, observation: Observation) {
        if self.tx.try_send(Message::Observe(observation)).is_err() {
            self.dropped.inc();
        }
    }

    /// Counts an answer of `model` the KPIs could not read: `event_stream`
    /// (not one JSON document), `too_large` (beyond the buffering limit),
    /// `over_budget`, or `grpc_undecodable` (no `ModelInferResponse`).
    pub fn count_unread(&self, model: &str, reason: &'static str) {
        self.unread.with_label_values(&[model, reason]).inc();
    }

    /// Makes `rows` (feature values in the configured order) the drift
    /// reference of `model` `version`, replacing what it had; its window
    /// starts empty. `upload` names the upload.
    pub async fn set_reference(
        &self,
        model: &str,
        version: &str,
        rows: Vec<Vec<FeatureValue>>,
        upload: ReferenceUpload,
    ) -> Result<(), UnusableReference> {
        let (reply, answer) = oneshot::channel();
        let message = Message::Reference {
            model: model.to_owned(),
            version: version.to_owned(),
            rows,
            upload,
            reply,
        };
        if self.tx.send(message).await.is_err() {
            return Err(UnusableReference::AggregatorStopped);
        }
        answer
            .await
            .unwrap_or(Err(UnusableReference::AggregatorStopped))
    }

    /// Joins labels to their rows; answers each label's result and model.
    pub async fn feedback(&self, items: Vec<Feedback>) -> Vec<(Option<String>, FeedbackResult)> {
        let n = items.len();
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Message::Feedback(items, tx)).await.is_err() {
            return vec![(None, FeedbackResult::UnknownDecision); n];
        }
        rx.await
            .unwrap_or_else(|_| vec![(None, FeedbackResult::UnknownDecision); n])
    }
}

impl KpiRecorder {
    /// The KPIs of `model` now, with the counts behind them (`None`: the
    /// model has no `[models.kpi]`, or the aggregator stopped). Answered
    /// in turn after every exchange handed over before.
    pub async fn report(&self, model: &str) -> Option<KpiReport> {
        self.report_of(model, Scope::Replica).await
    }

    /// The fleet's KPIs of `model` (`[cluster]`): its windows over every
    /// replica's rows, as far as this replica folded the fleet's feed.
    /// `None` also without a fleet.
    pub async fn fleet_report(&self, model: &str) -> Option<KpiReport> {
        self.report_of(model, Scope::Fleet).await
    }

    async fn report_of(&self, model: &str, scope: Scope) -> Option<KpiReport> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Message::Report(model.to_owned(), scope, reply))
            .await
            .ok()?;
        answer.await.ok().flatten()
    }

    /// Folds `events` of the fleet's feed (in feed order) into the fleet's
    /// windows; resolves once the fleet gauges show them. `false` if the
    /// aggregator stopped. Without a fleet the events are ignored.
    pub async fn fold(&self, events: Vec<FeedEvent>) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Message::Fold(events, reply)).await.is_err() {
            return false;
        }
        answer.await.is_ok()
    }

    /// The models with `[models.kpi]`, in name order.
    pub fn models(&self) -> &[String] {
        &self.models
    }
}

/// A version's drift: collecting its reference, then windowed.
enum Drift {
    Collecting(Vec<Vec<FeatureValue>>),
    Active {
        window: Box<DriftWindow>,
        /// Rows the reference was built from.
        reference_rows: u64,
        source: ReferenceSource,
        /// The upload, when the reference is one.
        upload: Option<ReferenceUpload>,
    },
    /// The reference could not be built (no usable value of any feature).
    Off {
        source: ReferenceSource,
    },
}

/// What a decision's rows need for a late label.
struct Recent {
    rows: Vec<RecentRow>,
}

/// One remembered row: its index in the request, its seq in the fairness
/// window, its groups and prediction.
type RecentRow = (usize, RowSeq, Vec<Option<String>>, Class);

/// The groups and prediction of a row a label was applied to.
type LabeledRow = (Vec<Option<String>>, Class);

struct ModelKpi {
    config: KpiConfig,
    /// Group values used as counter labels, per attribute (capped at
    /// `max_groups`; later values count as `_other`).
    group_labels: Vec<BTreeSet<String>>,
    fairness: FairnessWindow,
    drift: HashMap<String, Drift>,
    /// The versions in `drift`, the one fed longest ago first.
    drift_order: VecDeque<String>,
    /// Versions whose drift was dropped for newer ones: their gauges go
    /// at the next publish.
    drift_dropped: Vec<String>,
    recent: HashMap<String, Recent>,
    /// The decisions in `recent`, oldest first.
    order: VecDeque<String>,
    recent_rows: usize,
    published_groups: BTreeSet<(String, String)>,
}

impl ModelKpi {
    fn new(config: KpiConfig) -> Option<Self> {
        let fairness = FairnessWindow::new(FairnessSpec {
            attributes: config.attributes.iter().map(|a| a.name.clone()).collect(),
            window: config.window,
            min_group_size: config.min_group_size,
            max_groups: config.max_groups,
        })
        .ok()?;
        Some(Self {
            group_labels: vec![BTreeSet::new(); config.attributes.len()],
            config,
            fairness,
            drift: HashMap::new(),
            drift_order: VecDeque::new(),
            drift_dropped: Vec::new(),
            recent: HashMap::new(),
            order: VecDeque::new(),
            recent_rows: 0,
            published_groups: BTreeSet::new(),
        })
    }

    /// The counter label of `group` for attribute `i`.
    fn group_label(&mut self, i: usize, group: Option<&str>) -> String {
        let Some(group) = group else {
            return "_missing".to_owned();
        };
        let seen = &mut self.group_labels[i];
        if seen.contains(group) || seen.len() < self.config.max_groups {
            seen.insert(group.to_owned());
            group.to_owned()
        } else {
            "_other".to_owned()
        }
    }

    /// Labels are joined for the rows of the last `2 x window` rows'
    /// decisions (and at most `2 x window` decisions). An answer without a
    /// row is not kept: there is nothing to label.
    fn remember(&mut self, decision_id: String, rows: Vec<RecentRow>) {
        if rows.is_empty() {
            return;
        }
        self.recent_rows += rows.len();
        match self.recent.get_mut(&decision_id) {
            // More rows of a decision: the fleet's feed may hand them over
            // in two pages, with other replicas' rows between them.
            Some(recent) => recent.rows.extend(rows),
            None => {
                self.recent.insert(decision_id.clone(), Recent { rows });
                self.order.push_back(decision_id);
            }
        }
        let limit = 2 * self.config.window;
        while self.recent_rows > limit || self.order.len() > limit {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.recent.remove(&old) {
                self.recent_rows -= gone.rows.len();
            }
        }
    }

    /// Feeds one answer's rows into the windows and keeps what their
    /// labels need. The same for this replica's rows and the fleet's.
    fn push_rows(&mut self, version: &str, decision_id: String, rows: &[(usize, Row)]) {
        let mut remembered = Vec::with_capacity(rows.len());
        for (index, row) in rows {
            if let Ok(seq) = self.fairness.push(row) {
                remembered.push((*index, seq, row.groups.clone(), row.predicted));
            }
            self.push_drift(version, row);
        }
        self.remember(decision_id, remembered);
    }

    /// Where a label for row `index` of `decision_id` would go: `None`
    /// if the decision is not remembered.
    fn find_row(&self, decision_id: &str, index: usize) -> Option<Option<&RecentRow>> {
        let recent = self.recent.get(decision_id)?;
        Some(recent.rows.iter().find(|(i, ..)| *i == index))
    }

    /// Joins a label to its row of a remembered decision: the result, and
    /// the row's groups and prediction when it was applied.
    fn join_label(
        &mut self,
        decision_id: &str,
        index: usize,
        label: Class,
    ) -> (FeedbackResult, Option<LabeledRow>) {
        let Some(found) = self.find_row(decision_id, index) else {
            return (FeedbackResult::UnknownDecision, None);
        };
        let Some((_, seq, groups, predicted)) = found else {
            return (FeedbackResult::UnknownRow, None);
        };
        let (seq, groups, predicted) = (*seq, groups.clone(), *predicted);
        let result = match self.fairness.label(seq, label) {
            Labeled::Applied => FeedbackResult::Applied,
            Labeled::AlreadyLabeled => FeedbackResult::AlreadyLabeled,
            Labeled::Evicted => {
                let _ = self.fairness.record_late_label(&groups, predicted, label);
                FeedbackResult::Applied
            }
            Labeled::Unknown => FeedbackResult::UnknownRow,
        };
        let applied = (result == FeedbackResult::Applied).then_some((groups, predicted));
        (result, applied)
    }

    /// Makes `rows` the drift reference of `version` (an upload), its
    /// window empty. The same for this replica's windows and the fleet's.
    fn set_reference(
        &mut self,
        version: &str,
        rows: &[Vec<FeatureValue>],
        upload: ReferenceUpload,
    ) -> Result<(), UnusableReference> {
        match build_drift(&self.config, rows, ReferenceSource::Upload) {
            Drift::Off { .. } => Err(no_usable_value()),
            mut drift => {
                if let Drift::Active { upload: named, .. } = &mut drift {
                    *named = Some(upload);
                }
                self.keep_drift(version, drift);
                Ok(())
            }
        }
    }

    fn push_drift(&mut self, version: &str, row: &Row) {
        let reference_rows = self.config.reference_rows;
        if self.drift.contains_key(version) {
            self.fed_last(version);
        } else {
            self.keep_drift(version, Drift::Collecting(Vec::new()));
        }
        let Some(drift) = self.drift.get_mut(version) else {
            return;
        };
        match drift {
            Drift::Collecting(rows) => {
                rows.push(row.features.clone());
                if rows.len() >= reference_rows {
                    *drift = build_drift(&self.config, rows, ReferenceSource::FirstRows);
                }
            }
            Drift::Active { window, .. } => {
                let _ = window.push(row);
            }
            Drift::Off { .. } => {}
        }
    }

    /// Makes `drift` the state of `version`, the one fed last; beyond
    /// [`MAX_DRIFT_VERSIONS`] the version fed longest ago is dropped (a
    /// version that comes back collects its first rows again).
    fn keep_drift(&mut self, version: &str, drift: Drift) {
        self.drift.insert(version.to_owned(), drift);
        self.fed_last(version);
        while self.drift_order.len() > MAX_DRIFT_VERSIONS {
            let Some(oldest) = self.drift_order.pop_front() else {
                break;
            };
            self.drift.remove(&oldest);
            self.drift_dropped.push(oldest);
        }
    }

    /// Moves `version` to the back of `drift_order` (the one fed last).
    fn fed_last(&mut self, version: &str) {
        if self.drift_order.back().map(String::as_str) != Some(version) {
            self.drift_order.retain(|v| v != version);
            self.drift_order.push_back(version.to_owned());
        }
    }
}

/// Whether `rows` make a drift reference under `config` (every feature
/// has a usable value): checked before an upload is recorded.
pub(super) fn check_reference(
    config: &KpiConfig,
    rows: &[Vec<FeatureValue>],
) -> Result<(), UnusableReference> {
    match build_drift(config, rows, ReferenceSource::Upload) {
        Drift::Off { .. } => Err(no_usable_value()),
        _ => Ok(()),
    }
}

fn no_usable_value() -> UnusableReference {
    UnusableReference::Invalid("the reference has no usable value for some feature".to_owned())
}

/// The reference from the first rows, and the window that follows it.
fn build_drift(config: &KpiConfig, rows: &[Vec<FeatureValue>], source: ReferenceSource) -> Drift {
    let mut features = Vec::new();
    for (i, field) in config.features.iter().enumerate() {
        let reference = match field.kind {
            FeatureKind::Numeric => {
                let values: Vec<f64> = rows
                    .iter()
                    .filter_map(|row| match row.get(i) {
                        Some(FeatureValue::Number(x)) => Some(*x),
                        _ => None,
                    })
                    .collect();
                NumericReference::new(&values).map(Reference::Numeric)
            }
            FeatureKind::Categorical => {
                let values: Vec<&str> = rows
                    .iter()
                    .filter_map(|row| match row.get(i) {
                        Some(FeatureValue::Category(c)) => Some(c.as_str()),
                        _ => None,
                    })
                    .collect();
                CategoricalReference::new(&values).map(Reference::Categorical)
            }
        };
        match reference {
            Ok(reference) => features.push((field.name.clone(), reference)),
            Err(err) => {
                tracing::warn!(feature = %field.name, error = %err, "no drift reference for this feature")
            }
        }
    }
    // Rows carry every configured feature; the window needs them all.
    if features.len() != config.features.len() {
        return Drift::Off { source };
    }
    match DriftWindow::new(features, config.window) {
        Ok(window) => Drift::Active {
            window: Box::new(window),
            reference_rows: rows.len() as u64,
            source,
            upload: None,
        },
        Err(err) => {
            tracing::warn!(error = %err, "drift window not built");
            Drift::Off { source }
        }
    }
}

struct Aggregator {
    models: HashMap<String, ModelKpi>,
    metrics: KpiMetrics,
    /// The fleet's windows, with `[cluster]`.
    fleet: Option<fleet::Fleet>,
}

impl Aggregator {
    /// Feeds one answer's rows; returns the model and how many rows, to
    /// be counted once the gauges show them.
    fn observe(&mut self, observation: Observation) -> Option<(String, u64)> {
        let model = self.models.get_mut(&observation.model)?;
        let extracted = extract(
            &model.config,
            &Exchange {
                request: &observation.request,
                response: &observation.response,
                headers: &observation.headers,
            },
        );
        for miss in &extracted.misses {
            self.metrics
                .misses
                .with_label_values(&[&observation.model, miss])
                .inc();
        }
        model.push_rows(
            &observation.version,
            observation.decision_id.clone(),
            &extracted.rows,
        );
        for (_, row) in &extracted.rows {
            for (i, group) in row.groups.iter().enumerate() {
                let label = model.group_label(i, group.as_deref());
                let attribute = model.config.attributes[i].name.as_str();
                self.metrics
                    .outcomes
                    .with_label_values(&[
                        &observation.model,
                        attribute,
                        &label,
                        class_name(row.predicted),
                    ])
                    .inc();
            }
        }
        let count = extracted.rows.len() as u64;
        if let Some(fleet) = &self.fleet {
            // Shared in extraction order: a decision's rows stay together.
            for (index, row) in extracted.rows {
                fleet.sender.send(FeedEvent::Row(SharedRow {
                    model: observation.model.clone(),
                    version: observation.version.clone(),
                    decision_id: observation.decision_id.clone(),
                    index,
                    row,
                }));
            }
        }
        Some((observation.model, count))
    }

    /// Makes `rows` the drift reference of model `name` `version` (a
    /// sort of up to [`super::MAX_REFERENCE_ROWS`] values per feature, on
    /// this thread).
    fn set_reference(
        &mut self,
        name: &str,
        version: &str,
        rows: &[Vec<FeatureValue>],
        upload: ReferenceUpload,
    ) -> Result<(), UnusableReference> {
        self.models
            .get_mut(name)
            .ok_or_else(|| UnusableReference::NoKpis(name.to_owned()))?
            .set_reference(version, rows, upload)
    }

    /// Turns messages into windows and gauges until `stopping` (or until
    /// every sender is gone). A batch is what was queued when it began:
    /// its gauges are published once, at its end.
    fn run(mut self, mut rx: mpsc::Receiver<Message>, stopping: &AtomicBool) {
        while let Some(first) = rx.blocking_recv() {
            if stopping.load(Ordering::Acquire) {
                break;
            }
            // Rows per model fed in this batch.
            let mut dirty: std::collections::BTreeMap<String, u64> = Default::default();
            let mut next = Some(first);
            // Drain what is queued, then publish once per batch.
            while let Some(message) = next.take() {
                match message {
                    Message::Observe(observation) => {
                        if let Some((model, rows)) = self.observe(observation) {
                            *dirty.entry(model).or_default() += rows;
                        }
                    }
                    Message::Reference {
                        model,
                        version,
                        rows,
                        upload,
                        reply,
                    } => {
                        let set = self.set_reference(&model, &version, &rows, upload);
                        if set.is_ok() {
                            self.publish(&model);
                        }
                        let _ = reply.send(set);
                    }
                    Message::Feedback(items, reply) => {
                        let (results, touched) = self.feedback(items);
                        for name in &touched {
                            self.publish(name);
                        }
                        // Counted after the gauges show the labels.
                        for (model, result) in &results {
                            if let Some(model) = model {
                                self.metrics
                                    .feedback
                                    .with_label_values(&[model, result.as_str()])
                                    .inc();
                            }
                        }
                        let _ = reply.send(results);
                    }
                    Message::Report(model, scope, reply) => {
                        let _ = reply.send(self.report(&model, scope));
                    }
                    Message::Fold(events, reply) => {
                        if let Some(fleet) = &mut self.fleet {
                            fleet.fold(events);
                        }
                        let _ = reply.send(());
                    }
                    Message::Stop => {}
                }
                if !stopping.load(Ordering::Acquire) {
                    next = rx.try_recv().ok();
                }
            }
            // The row counter moves after the gauges, so a reader that
            // sees N rows counted sees the KPIs of those N rows.
            for (name, rows) in dirty {
                self.publish(&name);
                self.metrics.rows.with_label_values(&[&name]).inc_by(rows);
            }
        }
    }

    fn feedback(
        &mut self,
        items: Vec<Feedback>,
    ) -> (Vec<(Option<String>, FeedbackResult)>, BTreeSet<String>) {
        let mut touched = BTreeSet::new();
        let results = items
            .into_iter()
            .map(|item| {
                let label = if item.label {
                    Class::Positive
                } else {
                    Class::Negative
                };
                let found = self
                    .models
                    .iter_mut()
                    .find(|(_, model)| model.recent.contains_key(&item.decision_id));
                let Some((name, model)) = found else {
                    // Perhaps a decision another replica of the fleet served.
                    return match &self.fleet {
                        Some(fleet) => fleet.accept_label(&item),
                        None => (None, FeedbackResult::UnknownDecision),
                    };
                };
                let (result, applied) = model.join_label(&item.decision_id, item.row, label);
                if let Some((groups, predicted)) = applied {
                    for (i, group) in groups.iter().enumerate() {
                        let group = model.group_label(i, group.as_deref());
                        let attribute = model.config.attributes[i].name.as_str();
                        self.metrics
                            .labels
                            .with_label_values(&[
                                name,
                                attribute,
                                &group,
                                class_name(predicted),
                                class_name(label),
                            ])
                            .inc();
                    }
                    if let Some(fleet) = &self.fleet {
                        fleet.sender.send(FeedEvent::Label(SharedLabel {
                            model: name.clone(),
                            decision_id: item.decision_id.clone(),
                            index: item.row,
                            label: item.label,
                        }));
                    }
                }
                touched.insert(name.clone());
                (Some(name.clone()), result)
            })
            .collect();
        (results, touched)
    }

    /// Sets every gauge of `name` from its windows' snapshots.
    fn publish(&mut self, name: &str) {
        if let Some(model) = self.models.get_mut(name) {
            self.metrics.gauges.publish(name, model);
        }
    }

    /// The KPIs of `name` with their counts. O(attributes x groups +
    /// versions x features x bins), like [`Self::publish`].
    fn report(&self, name: &str, scope: Scope) -> Option<KpiReport> {
        let model = match scope {
            Scope::Replica => self.models.get(name)?,
            Scope::Fleet => self.fleet.as_ref()?.model(name)?,
        };
        Some(model_report(name, model))
    }
}

/// The KPIs of model `name` from its windows, with their counts.
fn model_report(name: &str, model: &ModelKpi) -> KpiReport {
    let mut versions: Vec<&String> = model.drift.keys().collect();
    versions.sort();
    let drift = versions
        .into_iter()
        .filter_map(|version| {
            Some(match model.drift.get(version)? {
                Drift::Collecting(rows) => report::without_window(
                    version,
                    ReferenceState::Collecting,
                    ReferenceSource::FirstRows,
                    rows.len() as u64,
                ),
                Drift::Off { source } => {
                    report::without_window(version, ReferenceState::Unavailable, *source, 0)
                }
                Drift::Active {
                    window,
                    reference_rows,
                    source,
                    upload,
                } => {
                    let mut drift =
                        report::with_window(version, *source, *reference_rows, &window.snapshot());
                    if let Some(upload) = upload {
                        drift.reference_sha256 = Some(upload.sha256.clone());
                        drift.reference_seq = upload.seq;
                    }
                    drift
                }
            })
        })
        .collect();
    KpiReport {
        model: name.to_owned(),
        settings: report::settings(&model.config),
        fairness: report::fairness(&model.fairness.snapshot()),
        drift,
    }
}

fn class_name(class: Class) -> &'static str {
    match class {
        Class::Positive => "positive",
        Class::Negative => "negative",
    }
}

/// Starts the aggregator for every model with `[models.kpi]`; `None`
/// when no model has one.
///
/// With `fleet` (a replica of a fleet, `[cluster]`) it also shares every
/// row and label through it, and keeps the fleet's windows, fed by
/// [`KpiRecorder::fold`], with their own gauges (`govgate_fleet_kpi_*`).
pub fn start(
    models: &[ModelConfig],
    registry: &Registry,
    fleet: Option<FeedSender>,
) -> Result<Option<(KpiRecorder, KpiTask)>, StartError> {
    let configured: HashMap<String, ModelKpi> = models
        .iter()
        .filter_map(|model| Some((model.name.clone(), ModelKpi::new(model.kpi.clone()?)?)))
        .collect();
    if configured.is_empty() {
        return Ok(None);
    }
    let metrics = KpiMetrics::register(registry)?;
    let dropped = IntCounter::new(
        "govgate_kpi_dropped_total",
        "Exchanges not fed to the KPIs because the aggregator's queue was full.",
    )?;
    registry.register(Box::new(dropped.clone()))?;
    let unread = IntCounterVec::new(
        prometheus::Opts::new(
            "govgate_kpi_unread_answers_total",
            "Streamed answers of a KPI model not fed to the KPIs, by reason: event_stream (not one JSON document) or too_large (beyond limits.max_buffered_response_bytes).",
        ),
        &["model", "reason"],
    )?;
    registry.register(Box::new(unread.clone()))?;
    for name in configured.keys() {
        metrics.rows.with_label_values(&[name]).inc_by(0);
        for reason in ["event_stream", "too_large"] {
            unread.with_label_values(&[name, reason]).inc_by(0);
        }
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut names: Vec<String> = configured.keys().cloned().collect();
    names.sort();
    let fleet = match fleet {
        Some(sender) => Some(fleet::Fleet::new(models, registry, sender)?),
        None => None,
    };
    let aggregator = Aggregator {
        models: configured,
        metrics,
        fleet,
    };
    let stopping = Arc::new(AtomicBool::new(false));
    let thread = {
        let stopping = Arc::clone(&stopping);
        std::thread::Builder::new()
            .name("govgate-kpi".to_owned())
            .spawn(move || aggregator.run(rx, &stopping))?
    };
    let task = KpiTask {
        stopping,
        wake: tx.clone(),
        thread,
    };
    let recorder = KpiRecorder {
        tx,
        models: names.into(),
        dropped,
        unread,
    };
    Ok(Some((recorder, task)))
}

/// The aggregator's thread: it holds the windows, so it runs until the
/// gateway stops (the recorders' handles may outlive the requests). A
/// thread of its own, not a task: parsing the bodies and building a
/// reference of up to [`super::MAX_REFERENCE_ROWS`] rows would hold an
/// async worker, and the requests waiting on it, for as long.
#[derive(Debug)]
pub struct KpiTask {
    stopping: Arc<AtomicBool>,
    /// Wakes the thread if its queue is empty.
    wake: mpsc::Sender<Message>,
    thread: std::thread::JoinHandle<()>,
}

impl KpiTask {
    /// Stops it once the batch in hand is done: what is still queued is
    /// not fed (the gateway is stopping; nothing of it is kept anyway).
    pub async fn stop(self) {
        self.stopping.store(true, Ordering::Release);
        // A full queue wakes the thread as well.
        let _ = self.wake.try_send(Message::Stop);
        let thread = self.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => {}
            _ => tracing::error!("the KPI aggregator panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(window: usize) -> ModelKpi {
        ModelKpi::new(KpiConfig {
            window,
            reference_rows: 1,
            ..crate::kpi::tests::score_kpi()
        })
        .unwrap()
    }

    /// A positive row without groups, label or features.
    fn blank_row() -> Row {
        Row {
            groups: Vec::new(),
            predicted: Class::Positive,
            label: None,
            features: Vec::new(),
        }
    }

    #[test]
    fn decisions_kept_for_labels_are_bounded() {
        let mut kpi = model(5);
        for i in 0..1000 {
            // Answers without a row are not kept at all.
            kpi.remember(format!("empty{i}"), Vec::new());
        }
        assert!(kpi.recent.is_empty() && kpi.order.is_empty());
        let row = blank_row();
        for i in 0..1000 {
            let seq = kpi.fairness.push(&row).unwrap();
            kpi.remember(format!("d{i}"), vec![(0, seq, Vec::new(), Class::Positive)]);
        }
        assert_eq!(kpi.recent.len(), 10, "2 x window rows");
        assert_eq!(kpi.recent_rows, 10);
        assert!(kpi.recent.contains_key("d999") && !kpi.recent.contains_key("d989"));
    }

    /// The fleet's feed may hand a decision's rows over in two pages with
    /// another replica's rows between them: the second part joins the
    /// first instead of replacing it.
    #[test]
    fn a_decisions_rows_split_around_anothers_are_all_kept() {
        let mut kpi = model(50);
        let row = blank_row();
        let mut rows = |indexes: &[usize]| -> Vec<RecentRow> {
            indexes
                .iter()
                .map(|i| {
                    (
                        *i,
                        kpi.fairness.push(&row).unwrap(),
                        Vec::new(),
                        Class::Positive,
                    )
                })
                .collect()
        };
        let (a_first, b_rows, a_rest) = (rows(&[0, 1]), rows(&[0]), rows(&[2]));
        kpi.remember("a".to_owned(), a_first);
        kpi.remember("b".to_owned(), b_rows);
        kpi.remember("a".to_owned(), a_rest);
        for index in 0..3 {
            assert!(
                matches!(kpi.find_row("a", index), Some(Some(_))),
                "row {index} of a"
            );
        }
        assert!(matches!(kpi.find_row("b", 0), Some(Some(_))));
        assert_eq!(kpi.recent_rows, 4);
    }

    #[test]
    fn the_drift_of_at_most_sixteen_versions_is_kept_the_one_fed_longest_ago_dropped() {
        let mut kpi = model(5);
        let row = blank_row();
        for v in 0..20 {
            kpi.push_drift(&format!("v{v}"), &row);
        }
        assert_eq!(kpi.drift.len(), MAX_DRIFT_VERSIONS);
        assert_eq!(kpi.drift_dropped, ["v0", "v1", "v2", "v3"]);
        // v4 is the oldest now; fed again it is the newest, and v5 goes.
        kpi.push_drift("v4", &row);
        kpi.push_drift("v20", &row);
        assert!(kpi.drift.contains_key("v4") && !kpi.drift.contains_key("v5"));
        assert_eq!(kpi.drift_order.len(), MAX_DRIFT_VERSIONS);
        assert_eq!(kpi.drift_order.back().map(String::as_str), Some("v20"));
    }
}
