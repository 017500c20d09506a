//! Fairness between the groups of one protected attribute, Fairlearn's
//! definitions with `method="between_groups"`: per-group counts and rates,
//! and the four aggregates over the eligible groups. Pure arithmetic on
//! counts; the windows keep the counts.
//!
//! For a group with `n` rows, `tp` (predicted 1, actual 1), `fp` (1, 0),
//! `tn` (0, 0) and `fn` (0, 1):
//!
//! ```text
//! selection_rate = (tp + fp) / n        tpr = tp / (tp + fn)        fpr = fp / (fp + tn)
//! ```
//!
//! and over the eligible groups E (`n >= min_group_size`):
//!
//! ```text
//! demographic_parity_difference = max_E selection_rate - min_E selection_rate
//! demographic_parity_ratio      = min_E selection_rate / max_E selection_rate   (None if the max is 0)
//! equal_opportunity_difference  = max_E tpr - min_E tpr
//! equalized_odds_difference     = max(equal_opportunity_difference, max_E fpr - min_E fpr)
//! ```
//!
//! All four are `None` when fewer than two groups are eligible. Rows
//! without a label count in `n` and in the selection rate only (see the
//! module choices in [`crate::kpi`]).

use std::collections::BTreeMap;

use super::Class;

/// The counts of one group: rows, predicted positives, and the confusion
/// matrix of its labeled rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// Rows in the group (`n`), labeled or not.
    pub rows: u64,
    /// Rows predicted positive (`tp + fp` when every row is labeled).
    pub selected: u64,
    /// Labeled rows predicted positive and actually positive.
    pub true_positives: u64,
    /// Labeled rows predicted positive and actually negative.
    pub false_positives: u64,
    /// Labeled rows predicted negative and actually negative.
    pub true_negatives: u64,
    /// Labeled rows predicted negative and actually positive.
    pub false_negatives: u64,
}

impl GroupCounts {
    /// Counts one row in.
    pub fn add_row(&mut self, predicted: Class, label: Option<Class>) {
        self.rows += 1;
        if predicted == Class::Positive {
            self.selected += 1;
        }
        if let Some(label) = label {
            self.add_label(predicted, label);
        }
    }

    /// Counts one row out again. It MUST have been counted in with the same
    /// prediction and label (as [`Self::add_row`], or without a label and
    /// then [`Self::add_label`]).
    pub fn remove_row(&mut self, predicted: Class, label: Option<Class>) {
        // INVARIANT: the caller removes only a row it added, so no count
        // goes below zero.
        self.rows -= 1;
        if predicted == Class::Positive {
            self.selected -= 1;
        }
        if let Some(label) = label {
            *self.cell(predicted, label) -= 1;
        }
    }

    /// Counts the label of a row already counted without one.
    pub fn add_label(&mut self, predicted: Class, label: Class) {
        *self.cell(predicted, label) += 1;
    }

    fn cell(&mut self, predicted: Class, label: Class) -> &mut u64 {
        match (predicted, label) {
            (Class::Positive, Class::Positive) => &mut self.true_positives,
            (Class::Positive, Class::Negative) => &mut self.false_positives,
            (Class::Negative, Class::Negative) => &mut self.true_negatives,
            (Class::Negative, Class::Positive) => &mut self.false_negatives,
        }
    }

    /// `(tp + fp) / n`, as predicted positives over all rows; `None` for no
    /// row.
    pub fn selection_rate(&self) -> Option<f64> {
        // SPEC: "selection_rate = (tp + fp) / n"; "A rate whose denominator
        // is 0 is undefined".
        ratio(self.selected, self.rows)
    }

    /// `tp / (tp + fn)`; `None` without an actual positive.
    pub fn tpr(&self) -> Option<f64> {
        // SPEC: "tpr = tp / (tp + fn)"
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// `fp / (fp + tn)`; `None` without an actual negative.
    pub fn fpr(&self) -> Option<f64> {
        // SPEC: "fpr = fp / (fp + tn)"
        ratio(
            self.false_positives,
            self.false_positives + self.true_negatives,
        )
    }
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// One group's counts and rates, and whether it takes part in the
/// aggregates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupReport {
    /// The counts.
    pub counts: GroupCounts,
    /// [`GroupCounts::selection_rate`].
    pub selection_rate: Option<f64>,
    /// [`GroupCounts::tpr`].
    pub tpr: Option<f64>,
    /// [`GroupCounts::fpr`].
    pub fpr: Option<f64>,
    /// `rows >= min_group_size`.
    pub eligible: bool,
}

/// Fairness of one protected attribute over one set of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeFairness {
    /// Every group with at least one row, in byte order of its value.
    pub groups: BTreeMap<String, GroupReport>,
    /// The eligible groups, in byte order.
    pub eligible_groups: Vec<String>,
    /// Rows over all groups.
    pub n_rows: u64,
    /// `max - min` of the eligible groups' selection rates.
    pub demographic_parity_difference: Option<f64>,
    /// `min / max` of the eligible groups' selection rates (`None` if the
    /// max is 0).
    pub demographic_parity_ratio: Option<f64>,
    /// `max - min` of the eligible groups' TPRs.
    pub equal_opportunity_difference: Option<f64>,
    /// The larger of the TPR and the FPR spread over the eligible groups.
    pub equalized_odds_difference: Option<f64>,
}

/// Fairness from per-group counts. Groups with no row are left out, as if
/// absent: the groups are "the distinct values of A in the window".
pub fn evaluate(groups: &BTreeMap<String, GroupCounts>, min_group_size: u64) -> AttributeFairness {
    // SPEC: "Groups: the distinct values of A in the window, sorted by byte
    // order." (String's order is byte order.)
    let groups: BTreeMap<String, GroupReport> = groups
        .iter()
        .filter(|(_, counts)| counts.rows > 0)
        .map(|(name, counts)| {
            let report = GroupReport {
                counts: *counts,
                selection_rate: counts.selection_rate(),
                tpr: counts.tpr(),
                fpr: counts.fpr(),
                // SPEC: "A group is eligible iff n >= min_group_size ... A
                // group of exactly 30 is eligible. Every group is reported,
                // eligible or not."
                eligible: counts.rows >= min_group_size,
            };
            (name.clone(), report)
        })
        .collect();
    let n_rows = groups.values().map(|g| g.counts.rows).sum();
    let eligible: Vec<&GroupReport> = groups.values().filter(|g| g.eligible).collect();
    let eligible_groups = groups
        .iter()
        .filter(|(_, g)| g.eligible)
        .map(|(name, _)| name.clone())
        .collect();
    let aggregates = Aggregates::of(&eligible);
    AttributeFairness {
        groups,
        eligible_groups,
        n_rows,
        demographic_parity_difference: aggregates.demographic_parity_difference,
        demographic_parity_ratio: aggregates.demographic_parity_ratio,
        equal_opportunity_difference: aggregates.equal_opportunity_difference,
        equalized_odds_difference: aggregates.equalized_odds_difference,
    }
}

/// The four aggregates over the eligible groups.
#[derive(Default)]
struct Aggregates {
    demographic_parity_difference: Option<f64>,
    demographic_parity_ratio: Option<f64>,
    equal_opportunity_difference: Option<f64>,
    equalized_odds_difference: Option<f64>,
}

impl Aggregates {
    fn of(eligible: &[&GroupReport]) -> Aggregates {
        // SPEC: "If fewer than 2 groups are eligible, all four aggregates
        // are null."
        if eligible.len() < 2 {
            return Aggregates::default();
        }
        let selection = Spread::of(eligible.iter().map(|g| g.selection_rate));
        let tpr = Spread::of(eligible.iter().map(|g| g.tpr));
        let fpr = Spread::of(eligible.iter().map(|g| g.fpr));
        Aggregates {
            // SPEC: "demographic_parity_difference = max over E of
            // selection_rate − min over E of selection_rate"
            demographic_parity_difference: selection.map(|s| s.max - s.min),
            // SPEC: "demographic_parity_ratio = min over E of selection_rate
            // / max over E of selection_rate (null if the max is 0)"
            demographic_parity_ratio: selection.filter(|s| s.max > 0.0).map(|s| s.min / s.max),
            // SPEC: "equal_opportunity_difference = max over E of tpr − min
            // over E of tpr"
            equal_opportunity_difference: tpr.map(|s| s.max - s.min),
            // SPEC: "equalized_odds_difference =
            // max(equal_opportunity_difference, max over E of fpr − min over
            // E of fpr)"
            equalized_odds_difference: match (tpr, fpr) {
                (Some(t), Some(f)) => Some((t.max - t.min).max(f.max - f.min)),
                _ => None,
            },
        }
    }
}

/// The smallest and largest of the defined rates.
#[derive(Clone, Copy)]
struct Spread {
    min: f64,
    max: f64,
}

impl Spread {
    /// Over the defined values; `None` if fewer than two are defined.
    fn of(values: impl Iterator<Item = Option<f64>>) -> Option<Spread> {
        let mut defined = 0usize;
        let mut spread = Spread {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        };
        for value in values.flatten() {
            defined += 1;
            spread.min = spread.min.min(value);
            spread.max = spread.max.max(value);
        }
        (defined >= 2).then_some(spread)
    }
}
