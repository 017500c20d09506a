//! The Prometheus families of the KPIs: the gauges of a set of windows
//! (registered twice in a fleet: `govgate_kpi_*` for this replica's rows,
//! `govgate_fleet_kpi_*` for the fleet's) and this replica's counters.

use super::{Drift, ModelKpi};
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use std::collections::BTreeSet;

/// The gauges of one set of windows, under one name prefix.
#[derive(Clone)]
pub(super) struct KpiGauges {
    selection_rate: GaugeVec,
    tpr: GaugeVec,
    fpr: GaugeVec,
    group_rows: GaugeVec,
    dp_difference: GaugeVec,
    dp_ratio: GaugeVec,
    eo_difference: GaugeVec,
    eodds_difference: GaugeVec,
    psi: GaugeVec,
    js: GaugeVec,
    ks: GaugeVec,
}

/// This replica's families: its windows' gauges and its counters.
#[derive(Clone)]
pub(super) struct KpiMetrics {
    pub(super) gauges: KpiGauges,
    pub(super) rows: IntCounterVec,
    pub(super) outcomes: IntCounterVec,
    pub(super) labels: IntCounterVec,
    pub(super) misses: IntCounterVec,
    pub(super) feedback: IntCounterVec,
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<GaugeVec, prometheus::Error> {
    let family = GaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(family.clone()))?;
    Ok(family)
}

pub(super) fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let family = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(family.clone()))?;
    Ok(family)
}

impl KpiGauges {
    /// Registers the gauges named `{prefix}selection_rate`, ...; `scope`
    /// opens each help text (whose rows the window holds).
    pub(super) fn register(
        registry: &Registry,
        prefix: &str,
        scope: &str,
    ) -> Result<Self, prometheus::Error> {
        let group = ["model", "attribute", "group"];
        let attribute = ["model", "attribute"];
        let feature = ["model", "version", "feature"];
        let g = |name: &str, help: &str, labels: &[&str]| {
            gauge(
                registry,
                &format!("{prefix}{name}"),
                &format!("{scope}{help}"),
                labels,
            )
        };
        Ok(Self {
            selection_rate: g(
                "selection_rate",
                "Share of the group's rows in the window predicted positive.",
                &group,
            )?,
            tpr: g(
                "tpr",
                "True positive rate of the group's labeled rows in the window.",
                &group,
            )?,
            fpr: g(
                "fpr",
                "False positive rate of the group's labeled rows in the window.",
                &group,
            )?,
            group_rows: g("group_rows", "Rows of the group in the window.", &group)?,
            dp_difference: g(
                "demographic_parity_difference",
                "Max minus min selection rate over eligible groups (absent with fewer than two).",
                &attribute,
            )?,
            dp_ratio: g(
                "demographic_parity_ratio",
                "Min over max selection rate over eligible groups (absent with fewer than two).",
                &attribute,
            )?,
            eo_difference: g(
                "equal_opportunity_difference",
                "Max minus min TPR over eligible groups.",
                &attribute,
            )?,
            eodds_difference: g(
                "equalized_odds_difference",
                "The larger of the TPR and FPR spreads over eligible groups.",
                &attribute,
            )?,
            psi: g(
                "psi",
                "Population stability index of the window against the version's reference.",
                &feature,
            )?,
            js: g(
                "js_distance",
                "Jensen-Shannon distance (base 2) of the window against the reference.",
                &feature,
            )?,
            ks: g(
                "ks",
                "Kolmogorov-Smirnov statistic at the reference's percentiles (numeric features).",
                &feature,
            )?,
        })
    }

    /// Sets every gauge of model `name` from its windows' snapshots.
    /// O(attributes x groups + versions x features x bins).
    pub(super) fn publish(&self, name: &str, model: &mut ModelKpi) {
        let snapshot = model.fairness.snapshot();
        let mut groups_now = BTreeSet::new();
        for attribute in &snapshot.attributes {
            let a = attribute.name.as_str();
            for (group, report) in &attribute.window.groups {
                groups_now.insert((a.to_owned(), group.clone()));
                let labels = [name, a, group.as_str()];
                set(&self.selection_rate, &labels, report.selection_rate);
                set(&self.tpr, &labels, report.tpr);
                set(&self.fpr, &labels, report.fpr);
                self.group_rows
                    .with_label_values(&labels)
                    .set(report.counts.rows as f64);
            }
            let labels = [name, a];
            let w = &attribute.window;
            set(
                &self.dp_difference,
                &labels,
                w.demographic_parity_difference,
            );
            set(&self.dp_ratio, &labels, w.demographic_parity_ratio);
            set(&self.eo_difference, &labels, w.equal_opportunity_difference);
            set(&self.eodds_difference, &labels, w.equalized_odds_difference);
        }
        // Groups that left the window leave the gauges too.
        for (a, group) in model.published_groups.difference(&groups_now) {
            let labels = [name, a.as_str(), group.as_str()];
            for family in [&self.selection_rate, &self.tpr, &self.fpr, &self.group_rows] {
                let _ = family.remove_label_values(&labels);
            }
        }
        model.published_groups = groups_now;
        for version in std::mem::take(&mut model.drift_dropped) {
            for feature in &model.config.features {
                let labels = [name, version.as_str(), feature.name.as_str()];
                for family in [&self.psi, &self.js, &self.ks] {
                    let _ = family.remove_label_values(&labels);
                }
            }
        }
        for (version, drift) in &model.drift {
            let Drift::Active { window, .. } = drift else {
                continue;
            };
            for feature in window.snapshot().features {
                let labels = [name, version.as_str(), feature.name.as_str()];
                let kpis = feature.kpis;
                set(&self.psi, &labels, kpis.map(|k| k.psi));
                set(&self.js, &labels, kpis.map(|k| k.js));
                set(
                    &self.ks,
                    &labels,
                    kpis.and_then(|k| k.ks).map(|ks| ks.statistic),
                );
            }
        }
    }
}

impl KpiMetrics {
    pub(super) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        Ok(Self {
            gauges: KpiGauges::register(registry, "govgate_kpi_", "")?,
            rows: counter(
                registry,
                "govgate_kpi_rows_total",
                "Rows fed to the KPIs.",
                &["model"],
            )?,
            outcomes: counter(
                registry,
                "govgate_kpi_outcomes_total",
                "Rows by group and predicted outcome, for selection rates over any time range.",
                &["model", "attribute", "group", "outcome"],
            )?,
            labels: counter(
                registry,
                "govgate_kpi_labels_total",
                "Labeled rows by group, predicted and actual outcome, for TPR and FPR over any time range.",
                &["model", "attribute", "group", "predicted", "actual"],
            )?,
            misses: counter(
                registry,
                "govgate_kpi_selector_misses_total",
                "Exchanges where a selector found nothing usable.",
                &["model", "selector"],
            )?,
            feedback: counter(
                registry,
                "govgate_feedback_total",
                "Ground-truth labels by result.",
                &["model", "result"],
            )?,
        })
    }
}

/// Sets a gauge, or removes its series when the value is undefined.
fn set(family: &GaugeVec, labels: &[&str], value: Option<f64>) {
    match value {
        Some(value) => family.with_label_values(labels).set(value),
        None => {
            let _ = family.remove_label_values(labels);
        }
    }
}
