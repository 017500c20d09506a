//! Windows equal a from-scratch recomputation over the same last W rows,
//! after arbitrary sequences of rows and late labels: many cases from a
//! small deterministic generator (SplitMix64), so a failure names its
//! case and seed and replays identically.

use std::collections::{BTreeMap, HashMap};

use super::super::*;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, deterministic, good enough
/// to pick test inputs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent` / 100.
    fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn class(&mut self) -> Class {
        if self.percent(50) {
            Class::Positive
        } else {
            Class::Negative
        }
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

const GROUPS: [&str; 5] = ["a", "b", "c", "d", "e"];
const CATEGORIES: [&str; 6] = ["x", "y", "z", "w", "other", "v"];
const CASES: u64 = 400;

/// The test's own record of one row fed.
struct Fed {
    row: Row,
    label: Option<Class>,
}

/// A random row: two attributes, one numeric and one categorical feature.
fn random_row(rng: &mut SplitMix64) -> Row {
    let group = |rng: &mut SplitMix64| (!rng.percent(10)).then(|| rng.pick(&GROUPS).to_owned());
    let groups = vec![group(rng), group(rng)];
    let number = match rng.below(20) {
        0 => FeatureValue::Number(f64::NAN),
        1 => FeatureValue::Missing,
        2 => FeatureValue::Category("x".to_owned()),
        3 => FeatureValue::Number(f64::INFINITY),
        _ => FeatureValue::Number(
            rng.below(15) as f64 - 2.0 + if rng.percent(30) { 0.5 } else { 0.0 },
        ),
    };
    let category = match rng.below(10) {
        0 => FeatureValue::Missing,
        1 => FeatureValue::Number(1.0),
        _ => FeatureValue::Category(rng.pick(&CATEGORIES).to_owned()),
    };
    Row {
        groups,
        predicted: rng.class(),
        label: rng.percent(40).then(|| rng.class()),
        features: vec![number, category],
    }
}

/// A random reference sample per feature.
fn random_references(rng: &mut SplitMix64) -> Vec<(String, Reference)> {
    let n = 1 + rng.below(40) as usize;
    let spread = 1 + rng.below(12);
    let numeric: Vec<f64> = (0..n)
        .map(|_| rng.below(spread) as f64 + if rng.percent(20) { 0.25 } else { 0.0 })
        .collect();
    let n = 1 + rng.below(20) as usize;
    let categorical: Vec<&str> = (0..n).map(|_| rng.pick(&CATEGORIES[..4])).collect();
    vec![
        (
            "n".to_owned(),
            Reference::Numeric(NumericReference::new(&numeric).unwrap()),
        ),
        (
            "c".to_owned(),
            Reference::Categorical(CategoricalReference::new(&categorical).unwrap()),
        ),
    ]
}

/// Fairness counts recomputed from rows: the groups tracked are the first
/// `max_groups` distinct values in feeding order.
fn recount(
    all: &[Fed],
    rows: &[Fed],
    attribute: usize,
    max_groups: usize,
) -> (BTreeMap<String, GroupCounts>, Unassigned) {
    let mut tracked: Vec<&str> = Vec::new();
    for fed in all {
        if let Some(value) = fed.row.groups[attribute].as_deref()
            && !tracked.contains(&value)
            && tracked.len() < max_groups
        {
            tracked.push(value);
        }
    }
    let mut groups: BTreeMap<String, GroupCounts> = BTreeMap::new();
    let mut unassigned = Unassigned::default();
    for fed in rows {
        match fed.row.groups[attribute].as_deref() {
            None => unassigned.missing += 1,
            Some(value) if !tracked.contains(&value) => unassigned.overflow += 1,
            Some(value) => {
                let counts = groups.entry(value.to_owned()).or_default();
                counts.rows += 1;
                let positive = fed.row.predicted == Class::Positive;
                if positive {
                    counts.selected += 1;
                }
                match (positive, fed.label) {
                    (_, None) => {}
                    (true, Some(Class::Positive)) => counts.true_positives += 1,
                    (true, Some(Class::Negative)) => counts.false_positives += 1,
                    (false, Some(Class::Negative)) => counts.true_negatives += 1,
                    (false, Some(Class::Positive)) => counts.false_negatives += 1,
                }
            }
        }
    }
    (groups, unassigned)
}

/// Drift counts recomputed from rows: (counts, missing).
fn recount_drift(reference: &Reference, rows: &[Fed], feature: usize) -> (BinCounts, u64) {
    let values = rows.iter().map(|fed| &fed.row.features[feature]);
    let missing = |usable: &dyn Fn(&FeatureValue) -> bool| {
        rows.iter()
            .filter(|fed| !usable(&fed.row.features[feature]))
            .count() as u64
    };
    match reference {
        Reference::Numeric(r) => {
            let numbers = values.filter_map(|v| match v {
                FeatureValue::Number(x) if !x.is_nan() => Some(*x),
                _ => None,
            });
            let usable = |v: &FeatureValue| matches!(v, FeatureValue::Number(x) if !x.is_nan());
            (r.count(numbers), missing(&usable))
        }
        Reference::Categorical(r) => {
            let categories = values.filter_map(|v| match v {
                FeatureValue::Category(c) => Some(c.as_str()),
                _ => None,
            });
            let usable = |v: &FeatureValue| matches!(v, FeatureValue::Category(_));
            (r.count(categories), missing(&usable))
        }
    }
}

fn check(
    case: u64,
    fairness: &FairnessWindow,
    drift: &DriftWindow,
    fed: &[Fed],
    spec: &FairnessSpec,
) {
    let last = &fed[fed.len().saturating_sub(spec.window)..];
    let snapshot = fairness.snapshot();
    assert_eq!(snapshot.rows_in_window, last.len() as u64, "case {case}");
    assert_eq!(snapshot.rows_total, fed.len() as u64, "case {case}");
    for (a, attribute) in snapshot.attributes.iter().enumerate() {
        let (window, window_unassigned) = recount(fed, last, a, spec.max_groups);
        assert_eq!(
            attribute.window,
            evaluate(&window, spec.min_group_size),
            "case {case}, attribute {a}, after {} rows",
            fed.len()
        );
        assert_eq!(
            attribute.window_unassigned, window_unassigned,
            "case {case}"
        );
        let (cumulative, cumulative_unassigned) = recount(fed, fed, a, spec.max_groups);
        assert_eq!(
            attribute.cumulative, cumulative,
            "case {case}, attribute {a}"
        );
        assert_eq!(
            attribute.cumulative_unassigned, cumulative_unassigned,
            "case {case}"
        );
    }

    let snapshot = drift.snapshot();
    assert_eq!(snapshot.rows_in_window, last.len() as u64, "case {case}");
    for (f, feature) in snapshot.features.iter().enumerate() {
        let (window, missing) = recount_drift(&feature.reference, last, f);
        assert_eq!(feature.window, window, "case {case}, feature {f}");
        assert_eq!(feature.window_missing, missing, "case {case}, feature {f}");
        assert_eq!(
            feature.kpis,
            feature.reference.drift(&window),
            "case {case}, feature {f}"
        );
        let (cumulative, missing) = recount_drift(&feature.reference, fed, f);
        assert_eq!(feature.cumulative, cumulative, "case {case}, feature {f}");
        assert_eq!(
            feature.cumulative_missing, missing,
            "case {case}, feature {f}"
        );
    }
}

#[test]
fn windows_equal_recomputation_over_the_last_w_rows() {
    let mut labels_applied = 0;
    let mut evictions = 0;
    for case in 0..CASES {
        let mut rng = SplitMix64(case);
        let spec = FairnessSpec {
            attributes: vec!["first".to_owned(), "second".to_owned()],
            window: 1 + rng.below(12) as usize,
            min_group_size: rng.below(4),
            max_groups: 1 + rng.below(5) as usize,
        };
        let mut fairness = FairnessWindow::new(spec.clone()).unwrap();
        let mut drift = DriftWindow::new(random_references(&mut rng), spec.window).unwrap();
        let mut fed: Vec<Fed> = Vec::new();
        for _ in 0..rng.below(60) {
            if rng.percent(70) || fed.is_empty() {
                let row = random_row(&mut rng);
                let seq = fairness.push(&row).unwrap();
                assert_eq!(drift.push(&row).unwrap(), seq, "case {case}");
                assert_eq!(seq, RowSeq(fed.len() as u64));
                fed.push(Fed {
                    label: row.label,
                    row,
                });
                evictions += u64::from(fed.len() > spec.window);
            } else {
                // A label for a row fed earlier, or not at all.
                let seq = rng.below(fed.len() as u64 + 2);
                let label = rng.class();
                let answer = fairness.label(RowSeq(seq), label);
                let evicted = (fed.len() as u64).saturating_sub(seq) > spec.window as u64;
                let expected = match fed.get_mut(seq as usize) {
                    None => Labeled::Unknown,
                    Some(_) if evicted => Labeled::Evicted,
                    Some(row) if row.label.is_some() => Labeled::AlreadyLabeled,
                    Some(row) => {
                        row.label = Some(label);
                        labels_applied += 1;
                        Labeled::Applied
                    }
                };
                assert_eq!(answer, expected, "case {case}, label for row {seq}");
                if answer == Labeled::Evicted && fed[seq as usize].label.is_none() {
                    let row = &mut fed[seq as usize];
                    fairness
                        .record_late_label(&row.row.groups, row.row.predicted, label)
                        .unwrap();
                    row.label = Some(label);
                }
            }
            check(case, &fairness, &drift, &fed, &spec);
        }
    }
    // The generator must reach the interesting paths.
    assert!(labels_applied > 100, "{labels_applied} labels applied");
    assert!(evictions > 1000, "{evictions} evictions");
}

#[test]
fn the_generator_is_deterministic_and_spread() {
    let draws = |seed| {
        let mut rng = SplitMix64(seed);
        (0..1000).map(|_| rng.below(10)).collect::<Vec<u64>>()
    };
    assert_eq!(draws(7), draws(7));
    assert_ne!(draws(7), draws(8));
    let mut histogram: HashMap<u64, usize> = HashMap::new();
    for d in draws(7) {
        *histogram.entry(d).or_default() += 1;
    }
    assert_eq!(histogram.len(), 10);
    assert!(
        histogram.values().all(|n| (60..140).contains(n)),
        "{histogram:?}"
    );
}
