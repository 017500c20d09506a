//! Edge cases: empty windows and groups, a group with no row left in the
//! window, the eligibility boundary, undefined rates and ratios, constant
//! samples, values on edges, unseen categories, refused inputs.

use std::collections::BTreeMap;

use super::super::*;

fn row(groups: &[Option<&str>], predicted: Class, label: Option<Class>) -> Row {
    Row {
        groups: groups.iter().map(|g| g.map(str::to_owned)).collect(),
        predicted,
        label,
        features: Vec::new(),
    }
}

fn one_attribute(window: usize, min_group_size: u64) -> FairnessWindow {
    FairnessWindow::new(FairnessSpec {
        attributes: vec!["g".to_owned()],
        window,
        min_group_size,
        max_groups: 8,
    })
    .unwrap()
}

fn counts(entries: &[(&str, u64, u64, u64, u64, u64)]) -> BTreeMap<String, GroupCounts> {
    entries
        .iter()
        .map(|&(name, selected_unlabeled, tp, fp, tn, fn_)| {
            let counts = GroupCounts {
                rows: selected_unlabeled + tp + fp + tn + fn_,
                selected: selected_unlabeled + tp + fp,
                true_positives: tp,
                false_positives: fp,
                true_negatives: tn,
                false_negatives: fn_,
            };
            (name.to_owned(), counts)
        })
        .collect()
}

fn no_aggregates(f: &AttributeFairness) -> bool {
    f.demographic_parity_difference.is_none()
        && f.demographic_parity_ratio.is_none()
        && f.equal_opportunity_difference.is_none()
        && f.equalized_odds_difference.is_none()
}

#[test]
fn an_empty_window_has_no_group_and_no_aggregate() {
    let snapshot = one_attribute(5, 1).snapshot();
    assert_eq!((snapshot.rows_in_window, snapshot.rows_total), (0, 0));
    let attribute = &snapshot.attributes[0];
    assert!(attribute.window.groups.is_empty());
    assert!(attribute.window.eligible_groups.is_empty());
    assert_eq!(attribute.window.n_rows, 0);
    assert!(no_aggregates(&attribute.window));
    assert!(attribute.cumulative.is_empty());

    let f = evaluate(&BTreeMap::new(), 0);
    assert!(f.groups.is_empty() && no_aggregates(&f));
}

#[test]
fn a_group_with_no_row_left_in_the_window_is_not_reported_but_still_counted() {
    let mut window = one_attribute(2, 1);
    let (p, n) = (Class::Positive, Class::Negative);
    window.push(&row(&[Some("x")], p, Some(p))).unwrap();
    window.push(&row(&[Some("y")], n, None)).unwrap();
    window.push(&row(&[Some("y")], p, Some(n))).unwrap();
    let attribute = &window.snapshot().attributes[0];
    assert_eq!(attribute.window.groups.keys().collect::<Vec<_>>(), ["y"]);
    assert!(
        no_aggregates(&attribute.window),
        "one group is no comparison"
    );
    assert_eq!(attribute.cumulative["x"].rows, 1);
    assert_eq!(attribute.cumulative["x"].true_positives, 1);
    assert_eq!(attribute.cumulative["y"].rows, 2);
    // Counts handed over with zero rows are left out too.
    let f = evaluate(&counts(&[("x", 0, 0, 0, 0, 0), ("y", 1, 0, 0, 0, 0)]), 0);
    assert_eq!(f.groups.keys().collect::<Vec<_>>(), ["y"]);
}

#[test]
fn a_group_of_exactly_min_group_size_is_eligible_and_smaller_ones_are_reported_only() {
    // a: 3 rows, b: 2 rows, c: 3 rows; min 3.
    let groups = counts(&[
        ("a", 0, 2, 1, 0, 0),
        ("b", 0, 2, 0, 0, 0),
        ("c", 0, 1, 0, 1, 1),
    ]);
    let f = evaluate(&groups, 3);
    assert_eq!(f.eligible_groups, ["a", "c"]);
    assert!(!f.groups["b"].eligible);
    assert_eq!(f.groups["b"].selection_rate, Some(1.0));
    assert_eq!(f.n_rows, 8);
    // a: sel 1, tpr 1, fpr 1; c: sel 1/3, tpr 1/2, fpr 0. b (sel 1) is ignored.
    assert_eq!(f.demographic_parity_difference, Some(1.0 - 1.0 / 3.0));
    assert_eq!(f.demographic_parity_ratio, Some((1.0 / 3.0) / 1.0));
    assert_eq!(f.equal_opportunity_difference, Some(0.5));
    assert_eq!(f.equalized_odds_difference, Some(1.0));

    // With min 4 nothing is eligible; with b alone eligible, nothing is compared.
    assert!(no_aggregates(&evaluate(&groups, 4)));
    assert!(evaluate(&groups, 4).eligible_groups.is_empty());
    assert!(no_aggregates(&evaluate(
        &counts(&[("a", 0, 5, 0, 0, 0), ("b", 0, 1, 0, 0, 0)]),
        2
    )));
}

#[test]
fn nobody_selected_gives_a_zero_difference_and_no_ratio() {
    let f = evaluate(&counts(&[("a", 0, 0, 0, 3, 2), ("b", 0, 0, 0, 4, 1)]), 1);
    assert_eq!(f.demographic_parity_difference, Some(0.0));
    assert_eq!(f.demographic_parity_ratio, None, "0 / 0 is no ratio");
    assert_eq!(f.equal_opportunity_difference, Some(0.0));
    assert_eq!(f.equalized_odds_difference, Some(0.0));
}

#[test]
fn undefined_rates_are_none_and_left_out_of_the_spreads() {
    // a has no actual positive (tpr undefined), b no actual negative (fpr
    // undefined), c both.
    let groups = counts(&[
        ("a", 0, 0, 1, 1, 0),
        ("b", 0, 1, 0, 0, 1),
        ("c", 0, 1, 1, 0, 1),
    ]);
    let f = evaluate(&groups, 1);
    assert_eq!(f.groups["a"].tpr, None);
    assert_eq!(f.groups["a"].fpr, Some(0.5));
    assert_eq!(f.groups["b"].fpr, None);
    // tpr over b, c: 0.5 and 0.5; fpr over a, c: 0.5 and 1.
    assert_eq!(f.equal_opportunity_difference, Some(0.0));
    assert_eq!(f.equalized_odds_difference, Some(0.5));

    // Only one group with a defined tpr: no equal opportunity, so no
    // equalized odds either; parity is still compared.
    let f = evaluate(&counts(&[("a", 0, 0, 1, 2, 0), ("b", 0, 1, 0, 1, 1)]), 1);
    assert_eq!(f.equal_opportunity_difference, None);
    assert_eq!(f.equalized_odds_difference, None);
    assert_eq!(f.demographic_parity_difference, Some(0.0));

    // Unlabeled rows count in the selection rate only.
    let f = evaluate(&counts(&[("a", 2, 0, 0, 2, 0), ("b", 0, 0, 0, 0, 0)]), 1);
    assert_eq!(f.groups["a"].selection_rate, Some(0.5));
    assert_eq!((f.groups["a"].tpr, f.groups["a"].fpr), (None, Some(0.0)));
}

#[test]
fn labels_fed_back_are_answered_by_where_the_row_is() {
    let mut window = one_attribute(2, 1);
    let (p, n) = (Class::Positive, Class::Negative);
    assert_eq!(window.label(RowSeq(0), p), Labeled::Unknown);
    let first = window.push(&row(&[Some("x")], p, None)).unwrap();
    let second = window.push(&row(&[None], p, Some(n))).unwrap();
    assert_eq!((first, second), (RowSeq(0), RowSeq(1)));
    assert_eq!(window.label(second, p), Labeled::AlreadyLabeled);
    assert_eq!(window.label(first, n), Labeled::Applied);
    assert_eq!(window.label(first, p), Labeled::AlreadyLabeled);
    assert_eq!(
        window.snapshot().attributes[0].window.groups["x"]
            .counts
            .false_positives,
        1
    );
    window.push(&row(&[Some("x")], n, None)).unwrap();
    assert_eq!(window.label(first, p), Labeled::Evicted);
    assert_eq!(window.label(RowSeq(3), p), Labeled::Unknown);
    let attribute = &window.snapshot().attributes[0];
    assert_eq!(attribute.window_unassigned.missing, 1);
    assert_eq!(attribute.window.groups["x"].counts.false_positives, 0);
    assert_eq!(attribute.cumulative["x"].false_positives, 1);
}

#[test]
fn groups_beyond_max_groups_count_as_overflow() {
    let mut window = FairnessWindow::new(FairnessSpec {
        attributes: vec!["g".to_owned()],
        window: 10,
        min_group_size: 0,
        max_groups: 2,
    })
    .unwrap();
    for g in ["a", "b", "c", "a", "d"] {
        window
            .push(&row(&[Some(g)], Class::Positive, None))
            .unwrap();
    }
    let attribute = &window.snapshot().attributes[0];
    assert_eq!(
        attribute.window.groups.keys().collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(attribute.window_unassigned.overflow, 2);
    assert_eq!(attribute.cumulative_unassigned.overflow, 2);
}

#[test]
fn refused_configurations_and_rows() {
    let spec = |window, max_groups| FairnessSpec {
        attributes: vec!["g".to_owned()],
        window,
        min_group_size: 1,
        max_groups,
    };
    assert_eq!(
        FairnessWindow::new(spec(0, 1)).err(),
        Some(KpiError::ZeroWindow)
    );
    assert_eq!(
        FairnessWindow::new(spec(1, 0)).err(),
        Some(KpiError::ZeroMaxGroups)
    );
    assert_eq!(
        DriftWindow::new(Vec::new(), 0).err(),
        Some(KpiError::ZeroWindow)
    );
    let mut window = one_attribute(3, 1);
    let shape = KpiError::RowShape {
        what: "group values",
        expected: 1,
        got: 2,
    };
    assert_eq!(
        window.push(&row(&[None, None], Class::Positive, None)),
        Err(shape.clone())
    );
    assert_eq!(
        window.record_late_label(&[None, None], Class::Positive, Class::Positive),
        Err(shape)
    );
    assert_eq!(
        window.snapshot().rows_total,
        0,
        "a refused row is not counted"
    );
    let mut drift = DriftWindow::new(Vec::new(), 3).unwrap();
    let mut with_feature = row(&[], Class::Positive, None);
    with_feature.features.push(FeatureValue::Missing);
    assert!(matches!(
        drift.push(&with_feature),
        Err(KpiError::RowShape { got: 1, .. })
    ));
}

// ---- drift ----

#[test]
fn quantiles_follow_numpy_linear() {
    let x = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(quantile(&x, 0.0), Some(1.0));
    assert_eq!(quantile(&x, 0.5), Some(2.5));
    assert_eq!(quantile(&x, 1.0), Some(4.0));
    assert!((quantile(&x, 0.1).unwrap() - 1.3).abs() < 1e-15);
    assert_eq!(quantile(&[7.0], 0.3), Some(7.0));
    assert_eq!(quantile(&[], 0.5), None);
    assert_eq!(quantile_edges(&[], 10), Vec::<f64>::new());
    // [1, 1, 1, 2]: deciles 1 (x6), then 1.1, 1.4, 1.7 → duplicates dropped.
    let edges = quantile_edges(&[1.0, 1.0, 1.0, 2.0], 10);
    assert_eq!(edges.len(), 4, "{edges:?}");
    assert_eq!(edges[0], 1.0);
}

#[test]
fn a_value_on_an_edge_falls_in_the_bin_it_closes() {
    let edges = [1.0, 2.0];
    assert_eq!(bin_index(&edges, f64::NEG_INFINITY), 0);
    assert_eq!(bin_index(&edges, 1.0), 0);
    assert_eq!(bin_index(&edges, 1.5), 1);
    assert_eq!(bin_index(&edges, 2.0), 1);
    assert_eq!(bin_index(&edges, 2.000001), 2);
    assert_eq!(bin_index(&edges, f64::INFINITY), 2);
    assert_eq!(bin_index(&[], 5.0), 0);
}

#[test]
fn an_all_same_reference_has_one_edge_and_two_bins() {
    let reference = NumericReference::new(&[5.0; 20]).unwrap();
    assert_eq!(reference.edges(), [5.0]);
    assert_eq!(reference.ks_edges(), [5.0]);
    assert_eq!(reference.counts().bins, [20, 0]);

    // The same value again: no drift at all.
    let same = reference.drift(&reference.count([5.0; 7])).unwrap();
    assert_eq!((same.psi, same.js), (0.0, 0.0));
    assert_eq!(
        same.ks,
        Some(Ks {
            statistic: 0.0,
            at_edge: None
        })
    );

    // Everything moved above: disjoint bins.
    let moved = reference.drift(&reference.count([6.0; 7])).unwrap();
    let expected_psi = 2.0 * (1.0 - PSI_EPSILON) * (1.0 / PSI_EPSILON).ln();
    assert!((moved.psi - expected_psi).abs() < 1e-12, "{}", moved.psi);
    assert_eq!(moved.js, 1.0, "disjoint samples are at distance 1");
    assert_eq!(
        moved.ks,
        Some(Ks {
            statistic: 1.0,
            at_edge: Some(5.0)
        })
    );
}

#[test]
fn psi_js_and_ks_hand_computed() {
    // p = [1/2, 1/2], q = [1/4, 3/4].
    let (p, q) = ([2u64, 2], [1u64, 3]);
    let psi_expected = (0.25 - 0.5) * (0.25f64 / 0.5).ln() + (0.75 - 0.5) * (0.75f64 / 0.5).ln();
    assert!((psi(&p, &q).unwrap() - psi_expected).abs() < 1e-15);
    let m = [0.375, 0.625];
    let d = 0.5 * (0.5 * (0.5f64 / m[0]).log2() + 0.5 * (0.5f64 / m[1]).log2())
        + 0.5 * (0.25 * (0.25f64 / m[0]).log2() + 0.75 * (0.75f64 / m[1]).log2());
    assert!((js_distance(&p, &q).unwrap() - d.sqrt()).abs() < 1e-15);
    // Identical proportions: exactly 0, never NaN from a tiny negative.
    assert_eq!(js_distance(&[3, 1, 0], &[6, 2, 0]), Some(0.0));
    assert_eq!(psi(&[3, 1, 0], &[6, 2, 0]), Some(0.0));
    // KS over edges [1, 2]: F_R = [2/4, 4/4], F_C = [1/4, 4/4].
    let ks_value = ks(&[1.0, 2.0], &[2, 2, 0], &[1, 3, 0]).unwrap();
    assert_eq!(
        ks_value,
        Ks {
            statistic: 0.25,
            at_edge: Some(1.0)
        }
    );
}

#[test]
fn an_empty_sample_has_no_drift() {
    assert_eq!(psi(&[1, 2], &[0, 0]), None);
    assert_eq!(js_distance(&[0, 0], &[1, 2]), None);
    assert_eq!(ks(&[1.0], &[1, 2], &[0, 0]), None);
    let reference = NumericReference::new(&[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(reference.drift(&reference.count([])), None);
    assert_eq!(
        reference.drift(&reference.count([f64::NAN])),
        None,
        "NaN is not a value"
    );
}

#[test]
fn unseen_categories_fall_in_other() {
    let reference = CategoricalReference::new(&["b", "a", "b", "a"]).unwrap();
    assert_eq!(reference.categories(), ["a", "b"]);
    assert_eq!(reference.counts().bins, [2, 2, 0]);
    let current = reference.count(["a", "z", "other"]);
    assert_eq!(current.bins, [1, 0, 2]);
    assert!(current.ks_bins.is_empty());

    // p = [1/2, 1/2, 0], q = [1/2, 0, 1/2].
    let drift = reference.drift(&reference.count(["a", "z"])).unwrap();
    let expected_psi = 2.0 * (0.5 - PSI_EPSILON) * (0.5 / PSI_EPSILON).ln();
    assert!((drift.psi - expected_psi).abs() < 1e-12, "{}", drift.psi);
    assert!((drift.js - 0.5f64.sqrt()).abs() < 1e-15, "{}", drift.js);
    assert_eq!(drift.ks, None);

    // An empty `other` adds nothing.
    let drift = reference.drift(&reference.count(["a", "b", "b"])).unwrap();
    let (p, q) = ([2u64, 2], [1u64, 2]);
    assert_eq!(drift.psi, psi(&p, &q).unwrap());
    assert_eq!(drift.js, js_distance(&p, &q).unwrap());
}

#[test]
fn refused_references() {
    assert_eq!(
        NumericReference::new(&[]).err(),
        Some(KpiError::EmptyReference)
    );
    let empty: [&str; 0] = [];
    assert_eq!(
        CategoricalReference::new(&empty).err(),
        Some(KpiError::EmptyReference)
    );
    assert_eq!(
        NumericReference::new(&[1.0, f64::NAN]).err(),
        Some(KpiError::NonFiniteReference { index: 1 })
    );
    assert_eq!(
        NumericReference::new(&[f64::NEG_INFINITY]).err(),
        Some(KpiError::NonFiniteReference { index: 0 })
    );
}

#[test]
fn unusable_feature_values_count_as_missing() {
    let references = vec![
        (
            "n".to_owned(),
            Reference::Numeric(NumericReference::new(&[1.0, 2.0]).unwrap()),
        ),
        (
            "c".to_owned(),
            Reference::Categorical(CategoricalReference::new(&["a"]).unwrap()),
        ),
    ];
    let mut window = DriftWindow::new(references, 2).unwrap();
    let feed = |window: &mut DriftWindow, n: FeatureValue, c: FeatureValue| {
        let mut r = row(&[], Class::Positive, None);
        r.features = vec![n, c];
        window.push(&r).unwrap();
    };
    feed(
        &mut window,
        FeatureValue::Number(f64::NAN),
        FeatureValue::Number(1.0),
    );
    feed(
        &mut window,
        FeatureValue::Category("1".to_owned()),
        FeatureValue::Missing,
    );
    let snapshot = window.snapshot();
    for feature in &snapshot.features {
        assert_eq!(feature.window_missing, 2, "{}", feature.name);
        assert_eq!(feature.window.total(), 0);
        assert_eq!(feature.kpis, None);
    }
    feed(
        &mut window,
        FeatureValue::Number(1.5),
        FeatureValue::Category("a".to_owned()),
    );
    let snapshot = window.snapshot();
    for feature in &snapshot.features {
        assert_eq!(feature.window_missing, 1, "{}", feature.name);
        assert_eq!(feature.cumulative_missing, 2);
        assert!(feature.kpis.is_some());
    }
}
