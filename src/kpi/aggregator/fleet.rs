//! The fleet's windows: the rows and labels of every replica, folded in
//! the feed's order with the same code as this replica's own windows
//! ([`ModelKpi`]), and published as `govgate_fleet_kpi_*` gauges. Every
//! replica folds the same feed in the same order, so every replica shows
//! the same fleet figures.

use super::metrics::{KpiGauges, counter};
use super::{Feedback, FeedbackResult, ModelKpi};
use crate::config::ModelConfig;
use crate::kpi::fleet::{FeedEvent, FeedSender, SharedLabel, SharedRow};
use crate::kpi::{Class, Row};
use prometheus::{IntCounterVec, Registry};
use std::collections::{BTreeMap, HashMap};

pub(in crate::kpi) struct Fleet {
    models: HashMap<String, ModelKpi>,
    gauges: KpiGauges,
    /// Rows folded, per model.
    rows: IntCounterVec,
    /// Labels joined to their rows in the fold, per model.
    labels: IntCounterVec,
    /// Where this replica's rows and labels go.
    pub(super) sender: FeedSender,
}

impl Fleet {
    /// Empty fleet windows for every model with `[models.kpi]`.
    pub(super) fn new(
        models: &[ModelConfig],
        registry: &Registry,
        sender: FeedSender,
    ) -> Result<Self, prometheus::Error> {
        let models: HashMap<String, ModelKpi> = models
            .iter()
            .filter_map(|model| Some((model.name.clone(), ModelKpi::new(model.kpi.clone()?)?)))
            .collect();
        let gauges = KpiGauges::register(registry, "govgate_fleet_kpi_", "Fleet (every replica's rows): ")?;
        let rows = counter(
            registry,
            "govgate_fleet_kpi_rows_total",
            "Rows of the fleet's feed this replica folded into the fleet windows; moves after the fleet gauges show them.",
            &["model"],
        )?;
        let labels = counter(
            registry,
            "govgate_fleet_kpi_labels_total",
            "Labels of the fleet's feed this replica joined to their rows in the fleet windows; moves after the fleet gauges show them.",
            &["model"],
        )?;
        for name in models.keys() {
            rows.with_label_values(&[name]).inc_by(0);
            labels.with_label_values(&[name]).inc_by(0);
        }
        Ok(Self {
            models,
            gauges,
            rows,
            labels,
            sender,
        })
    }

    /// Folds `events` (in feed order), publishes the models they touched,
    /// then counts them (so a reader that sees N rows counted sees the
    /// gauges of those N rows).
    pub(super) fn fold(&mut self, events: Vec<FeedEvent>) {
        let mut rows: BTreeMap<String, u64> = BTreeMap::new();
        let mut labels: BTreeMap<String, u64> = BTreeMap::new();
        let mut events = events.into_iter().peekable();
        while let Some(event) = events.next() {
            match event {
                FeedEvent::Row(first) => {
                    // A decision's rows are consecutive in the feed (one
                    // replica writes them in one batch): they are pushed
                    // together, as the replica that served them did.
                    let mut answer = vec![(first.index, first.row)];
                    while let Some(FeedEvent::Row(next)) = events.peek() {
                        if next.decision_id != first.decision_id || next.model != first.model {
                            break;
                        }
                        if let Some(FeedEvent::Row(next)) = events.next() {
                            answer.push((next.index, next.row));
                        }
                    }
                    let SharedRow {
                        model: name,
                        version,
                        decision_id,
                        ..
                    } = first;
                    let Some(model) = self.models.get_mut(&name) else {
                        continue;
                    };
                    let shaped = answer.iter().all(|(_, row)| fits(model, row));
                    if !shaped {
                        tracing::warn!(model = %name, "a fleet row does not fit this replica's [models.kpi]: give every replica the same KPI settings");
                        continue;
                    }
                    model.push_rows(&version, decision_id, &answer);
                    *rows.entry(name).or_default() += answer.len() as u64;
                }
                FeedEvent::Label(SharedLabel {
                    model: name,
                    decision_id,
                    index,
                    label,
                }) => {
                    let Some(model) = self.models.get_mut(&name) else {
                        continue;
                    };
                    let (result, _) = model.join_label(&decision_id, index, class(label));
                    let count = labels.entry(name).or_default();
                    if result == FeedbackResult::Applied {
                        *count += 1;
                    }
                }
            }
        }
        for name in rows.keys().chain(labels.keys()) {
            if let Some(model) = self.models.get_mut(name) {
                self.gauges.publish(name, model);
            }
        }
        for (name, count) in rows {
            self.rows.with_label_values(&[&name]).inc_by(count);
        }
        for (name, count) in labels {
            self.labels.with_label_values(&[&name]).inc_by(count);
        }
    }

    /// A label for a decision this replica did not serve: if the fleet
    /// windows know the decision (another replica served it), the label is
    /// shared with the fleet (the fleet keeps a row's first label) and
    /// answered as the fleet windows stand now.
    pub(super) fn accept_label(&self, item: &Feedback) -> (Option<String>, FeedbackResult) {
        let found = self.models.iter().find_map(|(name, model)| {
            Some((name, model, model.find_row(&item.decision_id, item.row)?))
        });
        let Some((name, model, row)) = found else {
            return (None, FeedbackResult::UnknownDecision);
        };
        let Some((_, seq, ..)) = row else {
            return (Some(name.clone()), FeedbackResult::UnknownRow);
        };
        if model.fairness.is_labeled(*seq) == Some(true) {
            return (Some(name.clone()), FeedbackResult::AlreadyLabeled);
        }
        self.sender.send(FeedEvent::Label(SharedLabel {
            model: name.clone(),
            decision_id: item.decision_id.clone(),
            index: item.row,
            label: item.label,
        }));
        (Some(name.clone()), FeedbackResult::Applied)
    }
}

fn class(label: bool) -> Class {
    if label {
        Class::Positive
    } else {
        Class::Negative
    }
}

/// Whether `row` has the shape `model`'s windows take (replicas with
/// other KPI settings would send rows of another shape).
fn fits(model: &ModelKpi, row: &Row) -> bool {
    row.groups.len() == model.config.attributes.len()
        && row.features.len() == model.config.features.len()
}
