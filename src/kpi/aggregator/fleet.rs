//! The fleet's windows: the rows and labels of every replica, folded in
//! the feed's order with the same code as this replica's own windows
//! ([`ModelKpi`]), and published as `govgate_fleet_kpi_*` gauges. Every
//! replica folds the same feed in the same order, so every replica shows
//! the same fleet figures.

use super::metrics::{KpiGauges, counter};
use super::{Feedback, FeedbackResult, ModelKpi, ReferenceUpload};
use crate::config::ModelConfig;
use crate::kpi::fleet::{FeedEvent, FeedSender, SharedLabel, SharedReference, SharedRow};
use crate::kpi::{Class, Row};
use prometheus::{IntCounterVec, Registry};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
        let gauges = KpiGauges::register(
            registry,
            "govgate_fleet_kpi_",
            "Fleet (every replica's rows): ",
        )?;
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
        let mut references: BTreeSet<String> = BTreeSet::new();
        let mut events = events.into_iter().peekable();
        while let Some(event) = events.next() {
            match event {
                FeedEvent::Row(first) => {
                    // A decision's rows are consecutive in the feed (one
                    // replica queues them together and writes its queue in
                    // order under the feed's lock): they are pushed
                    // together, as the replica that served them did (split
                    // only where a page of the feed ends; the decision is
                    // then remembered as one all the same).
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
                FeedEvent::Reference(SharedReference {
                    model: name,
                    version,
                    control_seq,
                    sha256,
                    rows,
                }) => {
                    let Some(model) = self.models.get_mut(&name) else {
                        continue;
                    };
                    let upload = ReferenceUpload { sha256, seq: None };
                    match model.set_reference(&version, &rows, upload) {
                        Ok(()) => {
                            references.insert(name);
                        }
                        Err(problem) => {
                            tracing::warn!(model = %name, %version, control_seq, %problem, "an uploaded drift reference does not fit this replica's [models.kpi]: the fleet windows keep what they had")
                        }
                    }
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
        for name in rows.keys().chain(labels.keys()).chain(&references) {
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

    /// The fleet windows of model `name`.
    pub(super) fn model(&self, name: &str) -> Option<&ModelKpi> {
        self.models.get(name)
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

#[cfg(test)]
mod tests {
    use super::super::model_report;
    use super::*;
    use crate::config::{FeatureKind, KpiConfig, KpiField, OutcomeRule, Source};
    use crate::kpi::FeatureValue;
    use crate::kpi::fleet::{FeedEvent, feed_channel};
    use crate::kpi::{Selector, Side};

    fn config() -> KpiConfig {
        let pointer = |p: &str| Source::Body {
            side: Side::Request,
            selector: Selector::pointer(p).unwrap(),
        };
        KpiConfig {
            window: 4,
            min_group_size: 1,
            max_groups: 10,
            reference_rows: 2,
            snapshot_every: None,
            outcome: pointer("/score"),
            outcome_rule: OutcomeRule::Score { threshold: 0.5 },
            attributes: vec![KpiField {
                name: "sex".into(),
                source: Source::Header("sex".into()),
                kind: FeatureKind::Categorical,
            }],
            features: vec![KpiField {
                name: "amount".into(),
                source: pointer("/amount"),
                kind: FeatureKind::Numeric,
            }],
        }
    }

    fn row(sex: &str, positive: bool, amount: f64) -> Row {
        Row {
            groups: vec![Some(sex.into())],
            predicted: class(positive),
            label: None,
            features: vec![FeatureValue::Number(amount)],
        }
    }

    /// Three answers (of 2, 1 and 3 rows) and their labels, as the feed
    /// holds them, and the same fed into one gateway's windows.
    fn traffic() -> (Vec<FeedEvent>, ModelKpi) {
        let answers = [
            ("d1", vec![row("f", true, 10.0), row("m", false, 20.0)]),
            ("d2", vec![row("f", false, 30.0)]),
            (
                "d3",
                vec![
                    row("m", true, 40.0),
                    row("m", true, 50.0),
                    row("f", true, 60.0),
                ],
            ),
        ];
        let labels = [("d1", 0, true), ("d3", 2, false), ("d2", 0, true)];
        let mut single = ModelKpi::new(config()).unwrap();
        let mut events = Vec::new();
        for (id, rows) in &answers {
            let indexed: Vec<(usize, Row)> = rows.iter().cloned().enumerate().collect();
            single.push_rows("1", (*id).into(), &indexed);
            for (index, row) in indexed {
                events.push(FeedEvent::Row(SharedRow {
                    model: "m".into(),
                    version: "1".into(),
                    decision_id: (*id).into(),
                    index,
                    row,
                }));
            }
        }
        for (id, index, label) in labels {
            single.join_label(id, index, class(label));
            events.push(FeedEvent::Label(SharedLabel {
                model: "m".into(),
                decision_id: id.into(),
                index,
                label,
            }));
        }
        (events, single)
    }

    fn fleet() -> (Fleet, tokio::sync::mpsc::Receiver<FeedEvent>) {
        let registry = Registry::new();
        let (sender, queue, _) = feed_channel(&registry).unwrap();
        let models = [("m".to_owned(), ModelKpi::new(config()).unwrap())]
            .into_iter()
            .collect();
        let fleet = Fleet {
            models,
            gauges: KpiGauges::register(&registry, "test_fleet_", "").unwrap(),
            rows: counter(&registry, "test_rows", "rows", &["model"]).unwrap(),
            labels: counter(&registry, "test_labels", "labels", &["model"]).unwrap(),
            sender,
        };
        (fleet, queue)
    }

    fn report(model: &ModelKpi) -> serde_json::Value {
        serde_json::to_value(model_report("m", model)).unwrap()
    }

    #[test]
    fn the_fold_of_the_feed_equals_one_gateway_fed_the_same_rows_in_the_same_order() {
        let (events, single) = traffic();
        // Folded in one go, and page by page (a decision's rows may be cut
        // across pages only where the feed's page ends).
        for page in [events.len(), 4, 1] {
            let (mut fleet, _queue) = fleet();
            for chunk in events.chunks(page) {
                fleet.fold(chunk.to_vec());
            }
            assert_eq!(
                report(fleet.model("m").unwrap()),
                report(&single),
                "pages of {page}"
            );
            assert_eq!(fleet.rows.with_label_values(&["m"]).get(), 6);
            assert_eq!(fleet.labels.with_label_values(&["m"]).get(), 3);
        }
    }

    #[test]
    fn a_label_for_another_replicas_decision_is_shared_and_answered_from_the_fleet_windows() {
        let (events, _) = traffic();
        let (mut fleet, mut queue) = fleet();
        let rows: Vec<FeedEvent> = events
            .into_iter()
            .filter(|e| matches!(e, FeedEvent::Row(_)))
            .collect();
        fleet.fold(rows);
        let item = |id: &str, row, label| Feedback {
            decision_id: id.into(),
            row,
            label,
        };
        assert_eq!(
            fleet.accept_label(&item("nope", 0, true)),
            (None, FeedbackResult::UnknownDecision)
        );
        assert_eq!(
            fleet.accept_label(&item("d1", 5, true)),
            (Some("m".into()), FeedbackResult::UnknownRow)
        );
        assert!(queue.try_recv().is_err(), "nothing shared for those");
        assert_eq!(
            fleet.accept_label(&item("d3", 1, false)),
            (Some("m".into()), FeedbackResult::Applied)
        );
        let shared = queue.try_recv().expect("the label is shared");
        assert_eq!(
            shared,
            FeedEvent::Label(SharedLabel {
                model: "m".into(),
                decision_id: "d3".into(),
                index: 1,
                label: false,
            })
        );
        // Once the fleet folded it, a second label is answered as such.
        fleet.fold(vec![shared]);
        assert_eq!(
            fleet.accept_label(&item("d3", 1, true)),
            (Some("m".into()), FeedbackResult::AlreadyLabeled)
        );
        assert!(queue.try_recv().is_err());
    }

    #[test]
    fn rows_of_another_shape_are_left_out() {
        let (mut fleet, _queue) = fleet();
        let mut wrong = row("f", true, 1.0);
        wrong.groups.push(Some("extra".into()));
        fleet.fold(vec![FeedEvent::Row(SharedRow {
            model: "m".into(),
            version: "1".into(),
            decision_id: "d".into(),
            index: 0,
            row: wrong,
        })]);
        assert_eq!(fleet.rows.with_label_values(&["m"]).get(), 0);
        assert_eq!(
            report(fleet.model("m").unwrap())["fairness"]["rows_total"],
            0
        );
    }
}
