//! A model's KPIs as counts and values, for `GET /admin/kpis/{model}`: the
//! fairness window per attribute and group (confusion counts, selections,
//! eligibility, rates and aggregates) and each version's drift (reference
//! state, bin counts of reference and window, PSI, JS, KS), so a person
//! can recompute every figure by hand.
//!
//! Built by the aggregator from its windows' snapshots, so its size is
//! bounded as they are: attributes x `max_groups` groups, features x (at
//! most 10 PSI/JS bins, or the reference's categories + 1, and 100 KS
//! bins), one entry per version the gateway served since it started.

use serde::Serialize;

use super::drift_window::DriftSnapshot;
use super::fairness_window::FairnessSnapshot;
use super::reference::{OTHER_BUCKET, Reference};
use crate::config::KpiConfig;

/// One model's KPIs now.
#[derive(Debug, Clone, Serialize)]
pub struct KpiReport {
    /// The model.
    pub model: String,
    /// Its `[models.kpi]` settings.
    pub settings: Settings,
    /// Fairness over the model's window (all versions together).
    pub fairness: FairnessReport,
    /// Drift per version, in version order.
    pub drift: Vec<VersionDrift>,
}

/// The settings that shape the figures.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Rows in each window.
    pub window: usize,
    /// Rows a group needs to be eligible.
    pub min_group_size: u64,
    /// Groups tracked per attribute.
    pub max_groups: usize,
    /// Rows of a version's reference when none is uploaded.
    pub reference_rows: usize,
}

/// The fairness window.
#[derive(Debug, Clone, Serialize)]
pub struct FairnessReport {
    /// Rows in the window now.
    pub rows_in_window: u64,
    /// Rows fed since the gateway started.
    pub rows_total: u64,
    /// Per protected attribute, in the configured order.
    pub attributes: Vec<AttributeReport>,
}

/// One protected attribute over the window.
#[derive(Debug, Clone, Serialize)]
pub struct AttributeReport {
    /// The attribute.
    pub name: String,
    /// Every group with a row in the window, in byte order.
    pub groups: Vec<GroupJson>,
    /// Rows in the window without a value for the attribute.
    pub missing_rows: u64,
    /// Rows in the window whose value came after `max_groups` values.
    pub overflow_rows: u64,
    /// Over the eligible groups; `null` when undefined.
    pub demographic_parity_difference: Option<f64>,
    /// Over the eligible groups; `null` when undefined.
    pub demographic_parity_ratio: Option<f64>,
    /// Over the eligible groups; `null` when undefined.
    pub equal_opportunity_difference: Option<f64>,
    /// Over the eligible groups; `null` when undefined.
    pub equalized_odds_difference: Option<f64>,
}

/// One group's counts and rates in the window.
#[derive(Debug, Clone, Serialize)]
pub struct GroupJson {
    /// The attribute's value.
    pub group: String,
    /// Rows (labeled or not).
    pub rows: u64,
    /// Rows predicted positive.
    pub selected: u64,
    /// Labeled rows (`tp + fp + tn + fn`).
    pub labeled: u64,
    /// Predicted positive, actually positive.
    pub tp: u64,
    /// Predicted positive, actually negative.
    pub fp: u64,
    /// Predicted negative, actually negative.
    pub tn: u64,
    /// Predicted negative, actually positive.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// `rows >= min_group_size`: takes part in the aggregates.
    pub eligible: bool,
    /// `selected / rows`.
    pub selection_rate: Option<f64>,
    /// `tp / (tp + fn)`; `null` without an actual positive.
    pub tpr: Option<f64>,
    /// `fp / (fp + tn)`; `null` without an actual negative.
    pub fpr: Option<f64>,
}

/// Where a version's drift reference stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceState {
    /// Its first `reference_rows` rows are being collected.
    Collecting,
    /// Built: the window is compared with it.
    Ready,
    /// No usable value of some feature: no drift for this version.
    Unavailable,
}

/// Where a version's reference came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSource {
    /// The first rows the version served.
    FirstRows,
    /// An upload (`PUT .../kpi-reference`).
    Upload,
}

/// One version's drift.
#[derive(Debug, Clone, Serialize)]
pub struct VersionDrift {
    /// The version label.
    pub version: String,
    /// The reference's state.
    pub reference_state: ReferenceState,
    /// Where it comes from.
    pub reference_source: ReferenceSource,
    /// Rows in the reference (collected so far, while collecting).
    pub reference_rows: u64,
    /// An uploaded reference: SHA-256 of the upload, as its
    /// `kpi_reference_set` entry records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_sha256: Option<String>,
    /// An uploaded reference: seq of its `kpi_reference_set` entry, when
    /// recorded since the gateway started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_seq: Option<u64>,
    /// Rows in the drift window now (0 until the reference is ready).
    pub rows_in_window: u64,
    /// Rows fed to the drift window since the reference was ready.
    pub rows_total: u64,
    /// Per feature, in the configured order (empty unless ready).
    pub features: Vec<FeatureJson>,
}

/// One feature's bins and drift.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureJson {
    /// The feature.
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// Numeric: the PSI/JS bin edges (the reference's deciles); bin `i`
    /// holds the values above edge `i - 1` and at most edge `i`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<f64>>,
    /// Categorical: the bucket names, the reference's categories in byte
    /// order and `other` last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<String>>,
    /// Reference values per bin.
    pub reference_counts: Vec<u64>,
    /// Window values per bin.
    pub window_counts: Vec<u64>,
    /// Window rows without a usable value.
    pub window_missing: u64,
    /// Population stability index; `null` while the window is empty.
    pub psi: Option<f64>,
    /// Jensen-Shannon distance, base 2.
    pub js_distance: Option<f64>,
    /// Numeric: KS statistic at the reference's percentiles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<KsJson>,
}

/// The KS statistic and the counts it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct KsJson {
    /// `max |F_R(e) - F_C(e)|` over the edges; `null` while the window is empty.
    pub statistic: Option<f64>,
    /// The first edge where the maximum is reached.
    pub at_edge: Option<f64>,
    /// The reference's percentiles, duplicates dropped.
    pub edges: Vec<f64>,
    /// Reference values per KS bin (`edges.len() + 1` bins).
    pub reference_counts: Vec<u64>,
    /// Window values per KS bin.
    pub window_counts: Vec<u64>,
}

/// The settings as reported.
pub(super) fn settings(config: &KpiConfig) -> Settings {
    Settings {
        window: config.window,
        min_group_size: config.min_group_size,
        max_groups: config.max_groups,
        reference_rows: config.reference_rows,
    }
}

/// The fairness part, from the window's snapshot.
pub(super) fn fairness(snapshot: &FairnessSnapshot) -> FairnessReport {
    let attributes = snapshot
        .attributes
        .iter()
        .map(|attribute| {
            let w = &attribute.window;
            let groups = w
                .groups
                .iter()
                .map(|(group, report)| {
                    let c = report.counts;
                    GroupJson {
                        group: group.clone(),
                        rows: c.rows,
                        selected: c.selected,
                        labeled: c.true_positives
                            + c.false_positives
                            + c.true_negatives
                            + c.false_negatives,
                        tp: c.true_positives,
                        fp: c.false_positives,
                        tn: c.true_negatives,
                        fn_: c.false_negatives,
                        eligible: report.eligible,
                        selection_rate: report.selection_rate,
                        tpr: report.tpr,
                        fpr: report.fpr,
                    }
                })
                .collect();
            AttributeReport {
                name: attribute.name.clone(),
                groups,
                missing_rows: attribute.window_unassigned.missing,
                overflow_rows: attribute.window_unassigned.overflow,
                demographic_parity_difference: w.demographic_parity_difference,
                demographic_parity_ratio: w.demographic_parity_ratio,
                equal_opportunity_difference: w.equal_opportunity_difference,
                equalized_odds_difference: w.equalized_odds_difference,
            }
        })
        .collect();
    FairnessReport {
        rows_in_window: snapshot.rows_in_window,
        rows_total: snapshot.rows_total,
        attributes,
    }
}

/// A version whose reference is not built (yet, or at all).
pub(super) fn without_window(
    version: &str,
    state: ReferenceState,
    source: ReferenceSource,
    reference_rows: u64,
) -> VersionDrift {
    VersionDrift {
        version: version.to_owned(),
        reference_state: state,
        reference_source: source,
        reference_rows,
        reference_sha256: None,
        reference_seq: None,
        rows_in_window: 0,
        rows_total: 0,
        features: Vec::new(),
    }
}

/// A version with its reference and window, from the window's snapshot.
pub(super) fn with_window(
    version: &str,
    source: ReferenceSource,
    reference_rows: u64,
    snapshot: &DriftSnapshot,
) -> VersionDrift {
    let features: Vec<FeatureJson> = snapshot
        .features
        .iter()
        .map(|feature| {
            let reference = feature.reference.counts();
            let kpis = feature.kpis;
            let (kind, edges, buckets, ks) = match feature.reference.as_ref() {
                Reference::Numeric(r) => (
                    "numeric",
                    Some(r.edges().to_vec()),
                    None,
                    Some(KsJson {
                        statistic: kpis.and_then(|k| k.ks).map(|k| k.statistic),
                        at_edge: kpis.and_then(|k| k.ks).and_then(|k| k.at_edge),
                        edges: r.ks_edges().to_vec(),
                        reference_counts: reference.ks_bins.clone(),
                        window_counts: feature.window.ks_bins.clone(),
                    }),
                ),
                Reference::Categorical(r) => {
                    let mut names = r.categories().to_vec();
                    names.push(OTHER_BUCKET.to_owned());
                    ("categorical", None, Some(names), None)
                }
            };
            FeatureJson {
                name: feature.name.clone(),
                kind,
                edges,
                buckets,
                reference_counts: reference.bins.clone(),
                window_counts: feature.window.bins.clone(),
                window_missing: feature.window_missing,
                psi: kpis.map(|k| k.psi),
                js_distance: kpis.map(|k| k.js),
                ks,
            }
        })
        .collect();
    VersionDrift {
        version: version.to_owned(),
        reference_state: ReferenceState::Ready,
        reference_source: source,
        reference_rows,
        reference_sha256: None,
        reference_seq: None,
        rows_in_window: snapshot.rows_in_window,
        rows_total: snapshot.rows_total,
        features,
    }
}
