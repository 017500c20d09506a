//! Fairness and drift KPIs over the rows a model serves: pure math and
//! sliding windows. No I/O, no clock, no task: the aggregator feeds
//! [`Row`]s into a [`FairnessWindow`] and a [`DriftWindow`] and reads their
//! snapshots.
//!
//! SPEC: the "KPI definitions" of `tests/data/README.md`, which come with
//! the German Credit data and its golden values
//! (`tests/data/german_credit_golden.json`). The rules are quoted in
//! `// SPEC:` comments beside the code that applies them. In short:
//!
//! - Decision: predicted positive iff `score >= threshold` (the caller
//!   decides; rows arrive with a [`Class`]); actual positive iff the label
//!   says so.
//! - Fairness per protected attribute (Fairlearn, `between_groups`), per
//!   group g with n rows: `selection_rate = (tp + fp) / n`,
//!   `tpr = tp / (tp + fn)`, `fpr = fp / (fp + tn)`; over the eligible
//!   groups E (n >= `min_group_size`): demographic parity difference
//!   `max_E sel - min_E sel` and ratio `min_E sel / max_E sel`, equal
//!   opportunity difference `max_E tpr - min_E tpr`, equalized odds
//!   difference `max(that, max_E fpr - min_E fpr)`; all four `None` when
//!   fewer than two groups are eligible. See [`evaluate`].
//! - Drift per feature against a reference sample R: numeric features are
//!   binned at R's deciles (numpy `linear` quantiles, duplicates dropped)
//!   for `PSI = sum (q' - p') ln(q' / p')` with proportions floored at
//!   `1e-4`, and the Jensen-Shannon distance (base 2, unsmoothed); KS is
//!   `max |F_R(e) - F_C(e)|` over R's percentiles e. Categorical features
//!   have one bucket per category of R plus `other`. See [`psi`],
//!   [`js_distance`], [`ks`], [`NumericReference`], [`CategoricalReference`].
//! - Windows: the KPIs over the last W rows, updated in O(1) per row (the
//!   leaving row's counts are subtracted, the entering row's added), plus
//!   cumulative counters that never decrease. Memory is bounded by W, the
//!   number of attributes and features, `max_groups` and the reference.
//!
//! Choices where the definitions are silent (listed here, not hidden):
//!
//! 1. Labels may be missing or arrive later ([`FairnessWindow::label`]).
//!    `selection_rate` counts every row of the group, labeled or not;
//!    `tpr` and `fpr` count labeled rows only. With every row labeled this
//!    is exactly the definition.
//! 2. An aggregate over a rate that is undefined for some eligible group
//!    (no actual positives, say) is taken over the groups where it is
//!    defined, and is `None` if fewer than two are; the equalized odds
//!    difference is `None` if either of its parts is.
//! 3. Drift over an empty current window is `None`; a feature value that
//!    is absent, NaN or of the other kind (a category for a numeric
//!    feature) is counted as missing and binned nowhere.
//! 4. Quantile edges drop any edge not above the one kept before it (the
//!    definition says "equal to the previous one"; they differ only if
//!    rounding made the quantiles step back by an ulp).
//! 5. A reference with no value, or a numeric one with a NaN or infinite
//!    value, is refused ([`KpiError`]).
//! 6. At most `max_groups` distinct values per attribute are tracked
//!    (first come, first kept); rows with further values are counted as
//!    overflow, so memory and metric labels stay bounded.

mod aggregator;
mod drift;
mod drift_window;
mod error;
mod extract;
mod fairness;
mod fairness_window;
mod feedback;
mod fleet;
mod history;
mod reference;
mod reference_keeper;
mod report;
mod ring;
mod selector;
mod snapshot;
mod snapshot_task;
mod upload;

#[cfg(test)]
mod tests;

pub use aggregator::{
    Feedback, FeedbackResult, KpiRecorder, KpiTask, Observation, ReferenceUpload, StartError, start,
};
pub use drift::{Ks, PSI_EPSILON, bin_index, js_distance, ks, psi, quantile, quantile_edges};
pub use drift_window::{DriftSnapshot, DriftWindow, FeatureSnapshot};
pub use error::KpiError;
pub use extract::{Exchange, Extracted, MAX_VALUE_BYTES, extract};
pub use fairness::{AttributeFairness, GroupCounts, GroupReport, evaluate};
pub use fairness_window::{
    AttributeSnapshot, FairnessSnapshot, FairnessSpec, FairnessWindow, Labeled, Unassigned,
};
pub use feedback::routes as feedback_routes;
pub use fleet::{
    FEED_QUEUE, FeedColumns, FeedEvent, FeedFormatError, FeedSender, KIND_LABEL, KIND_REFERENCE,
    KIND_ROW, REFERENCE_DECISION, SharedLabel, SharedReference, SharedRow, decode as decode_feed,
    encode_payload as encode_feed_payload, feed_channel,
};
pub use history::{Covered, KpiHistory};
pub use reference::{
    BinCounts, CategoricalReference, DriftKpis, KS_PARTS, NumericReference, OTHER_BUCKET,
    PSI_JS_PARTS, Reference,
};
pub use reference_keeper::{
    KeepError, MalformedUpload, REFERENCE_SET, ReferenceKeeper, UPLOAD_MEMBER, Upload,
};
pub use report::{
    AttributeReport, FairnessReport, FeatureJson, GroupJson, KpiReport, KsJson, ReferenceSource,
    ReferenceState, Settings, VersionDrift,
};
pub use ring::RowSeq;
pub use selector::{SelectError, Selector, SelectorError, Side};
pub use snapshot::{MAX_MEMBERS_BYTES, Trigger};
pub use snapshot_task::{KpiSnapshots, ServingChange, SnapshotHandle};
pub use upload::{
    MAX_REFERENCE_ROWS, ReferenceFiles, ReferenceFormat, StoredReference, UnusableReference,
    parse_reference,
};

/// A predicted or an actual class of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Positive: predicted as granted, or actually good.
    Positive,
    /// Negative.
    Negative,
}

/// One value of one drift feature in a [`Row`].
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    /// A number, for a numeric feature.
    Number(f64),
    /// A category, for a categorical feature.
    Category(String),
    /// The selector found nothing.
    Missing,
}

/// One row of a model's traffic, as the aggregator extracted it.
///
/// Positional: `groups` holds one value per protected attribute in the
/// order of [`FairnessSpec::attributes`], `features` one value per drift
/// feature in the order given to [`DriftWindow::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The row's group for each protected attribute (`None`: not found).
    pub groups: Vec<Option<String>>,
    /// The predicted outcome.
    pub predicted: Class,
    /// The ground truth, when already known.
    pub label: Option<Class>,
    /// The drift features' values.
    pub features: Vec<FeatureValue>,
}
