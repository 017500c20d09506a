//! Every value of tests/data/german_credit_golden.json, recomputed from
//! tests/data/german_credit.csv: fairness over all rows and over a window
//! of the last 500, drift of rows 500..999 against rows 0..499, plain and
//! shifted. Fairness to 1e-9, drift to 1e-6, counts exactly.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::super::*;
use super::{CREDIT_CSV, Csv, assert_close};

const FAIRNESS_TOLERANCE: f64 = 1e-9;
const DRIFT_TOLERANCE: f64 = 1e-6;
// SPEC: "Compare the golden `edges` with a tolerance and the counts
// exactly."
const EDGE_TOLERANCE: f64 = 1e-9;

const ATTRIBUTES: [&str; 3] = ["sex", "age_group", "foreign_worker"];
const NUMERIC: [&str; 7] = [
    "duration_months",
    "credit_amount",
    "installment_rate",
    "residence_since",
    "age_years",
    "existing_credits",
    "dependents",
];
const CATEGORICAL: [&str; 11] = [
    "checking_status",
    "credit_history",
    "purpose",
    "savings",
    "employment_since",
    "housing",
    "job",
    "property",
    "other_debtors",
    "other_installment_plans",
    "telephone",
];

fn golden() -> serde_json::Value {
    serde_json::from_str(include_str!(
        "../../../tests/data/german_credit_golden.json"
    ))
    .unwrap()
}

#[test]
fn the_committed_csv_is_the_one_the_golden_values_were_made_from() {
    let golden = golden();
    let digest: String = Sha256::digest(CREDIT_CSV.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, golden["dataset"]["csv_sha256"].as_str().unwrap());
    assert_eq!(Csv::credit().rows.len(), 1000);
    assert_eq!(golden["parameters"]["threshold"], 0.5);
    assert_eq!(golden["parameters"]["min_group_size"], 30);
    assert_eq!(golden["parameters"]["psi_epsilon"], PSI_EPSILON);
    assert_eq!(
        golden["parameters"]["categorical_other_bucket"],
        OTHER_BUCKET
    );
}

// ---- fairness ----

/// Row `i` as the gateway would see it: groups, decision, label.
fn credit_row(csv: &Csv, i: usize, with_label: bool) -> Row {
    // SPEC: "Predicted positive (credit granted) iff score >= 0.5. Actual
    // positive iff good_credit == 1."
    let class = |positive: bool| {
        if positive {
            Class::Positive
        } else {
            Class::Negative
        }
    };
    Row {
        groups: ATTRIBUTES
            .iter()
            .map(|a| Some(csv.text(i, a).to_owned()))
            .collect(),
        predicted: class(csv.number(i, "score") >= 0.5),
        label: with_label.then(|| class(csv.text(i, "good_credit") == "1")),
        features: Vec::new(),
    }
}

fn fairness_spec(window: usize) -> FairnessSpec {
    FairnessSpec {
        attributes: ATTRIBUTES.iter().map(|a| a.to_string()).collect(),
        window,
        min_group_size: 30,
        max_groups: 16,
    }
}

#[track_caller]
fn assert_fairness(actual: &AttributeFairness, golden: &serde_json::Value, what: &str) {
    let groups = golden["groups"].as_object().unwrap();
    assert_eq!(
        actual.groups.keys().collect::<Vec<_>>(),
        {
            let mut names: Vec<&String> = groups.keys().collect();
            names.sort();
            names
        },
        "{what}: groups"
    );
    for (name, g) in groups {
        let what = format!("{what}.{name}");
        let report = &actual.groups[name];
        let c = report.counts;
        let count = |key: &str| g[key].as_u64().unwrap();
        assert_eq!(c.rows, count("count"), "{what}: count");
        assert_eq!(c.true_positives, count("tp"), "{what}: tp");
        assert_eq!(c.false_positives, count("fp"), "{what}: fp");
        assert_eq!(c.true_negatives, count("tn"), "{what}: tn");
        assert_eq!(c.false_negatives, count("fn"), "{what}: fn");
        assert_eq!(c.selected, count("tp") + count("fp"), "{what}: selected");
        assert_eq!(report.eligible, g["eligible"].as_bool().unwrap(), "{what}");
        for (rate, value) in [
            ("selection_rate", report.selection_rate),
            ("tpr", report.tpr),
            ("fpr", report.fpr),
        ] {
            assert_close(
                value,
                &g[rate],
                FAIRNESS_TOLERANCE,
                &format!("{what}.{rate}"),
            );
        }
    }
    let eligible: Vec<&str> = golden["eligible_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(actual.eligible_groups, eligible, "{what}: eligible groups");
    assert_eq!(actual.n_rows, golden["n_rows"].as_u64().unwrap(), "{what}");
    for (key, value) in [
        (
            "demographic_parity_difference",
            actual.demographic_parity_difference,
        ),
        ("demographic_parity_ratio", actual.demographic_parity_ratio),
        (
            "equal_opportunity_difference",
            actual.equal_opportunity_difference,
        ),
        (
            "equalized_odds_difference",
            actual.equalized_odds_difference,
        ),
    ] {
        assert_close(
            value,
            &golden[key],
            FAIRNESS_TOLERANCE,
            &format!("{what}.{key}"),
        );
    }
}

/// The windows of the golden file: name, W, first row in it.
const FAIRNESS_WINDOWS: [(&str, usize, u64); 2] = [("all_rows", 1000, 0), ("last_500", 500, 500)];

#[test]
fn fairness_windows_reproduce_the_golden_values() {
    let (csv, golden) = (Csv::credit(), golden());
    for (key, window, first) in FAIRNESS_WINDOWS {
        let golden = &golden["fairness"][key];
        assert_eq!(golden["rows"], serde_json::json!([first, 999]));
        let mut fairness = FairnessWindow::new(fairness_spec(window)).unwrap();
        for i in 0..csv.rows.len() {
            fairness.push(&credit_row(&csv, i, true)).unwrap();
        }
        let snapshot = fairness.snapshot();
        assert_eq!(snapshot.rows_in_window, 1000 - first);
        assert_eq!(snapshot.rows_total, 1000);
        for (attribute, name) in snapshot.attributes.iter().zip(ATTRIBUTES) {
            assert_eq!(attribute.name, name);
            assert_eq!(attribute.window_unassigned, Unassigned::default());
            assert_fairness(&attribute.window, &golden[name], &format!("{key}.{name}"));
        }
    }
}

#[test]
fn labels_fed_back_later_give_the_same_values() {
    let (csv, golden) = (Csv::credit(), golden());
    for (key, window, first) in FAIRNESS_WINDOWS {
        let mut fairness = FairnessWindow::new(fairness_spec(window)).unwrap();
        let mut seqs = Vec::new();
        for i in 0..csv.rows.len() {
            seqs.push(fairness.push(&credit_row(&csv, i, false)).unwrap());
        }
        for (i, seq) in seqs.into_iter().enumerate() {
            let row = credit_row(&csv, i, true);
            let label = row.label.unwrap();
            let answer = fairness.label(seq, label);
            if (i as u64) < first {
                assert_eq!(answer, Labeled::Evicted, "row {i}");
                fairness
                    .record_late_label(&row.groups, row.predicted, label)
                    .unwrap();
            } else {
                assert_eq!(answer, Labeled::Applied, "row {i}");
            }
        }
        let snapshot = fairness.snapshot();
        for (attribute, name) in snapshot.attributes.iter().zip(ATTRIBUTES) {
            let what = format!("{key}.{name}");
            assert_fairness(&attribute.window, &golden["fairness"][key][name], &what);
            // Cumulative counters hold every row and every label.
            let cumulative = evaluate(&attribute.cumulative, 30);
            assert_fairness(&cumulative, &golden["fairness"]["all_rows"][name], &what);
        }
    }
}

#[test]
fn fairness_from_scratch_reproduces_the_golden_values() {
    let (csv, golden) = (Csv::credit(), golden());
    for (key, _, first) in FAIRNESS_WINDOWS {
        for name in ATTRIBUTES {
            let mut groups: BTreeMap<String, GroupCounts> = BTreeMap::new();
            for i in first as usize..csv.rows.len() {
                let row = credit_row(&csv, i, true);
                groups
                    .entry(csv.text(i, name).to_owned())
                    .or_default()
                    .add_row(row.predicted, row.label);
            }
            let what = format!("{key}.{name} from scratch");
            assert_fairness(
                &evaluate(&groups, 30),
                &golden["fairness"][key][name],
                &what,
            );
        }
    }
}

// ---- drift ----

/// The drift features of the golden file: where its entry sits, the
/// column, and whether it is numeric.
fn drift_features() -> Vec<(String, &'static str, bool)> {
    let mut features = Vec::new();
    for name in NUMERIC {
        features.push((format!("numeric.{name}"), name, true));
    }
    features.push(("score".to_owned(), "score", true));
    for name in CATEGORICAL {
        features.push((format!("categorical.{name}"), name, false));
    }
    for name in ATTRIBUTES {
        features.push((format!("protected.{name}"), name, false));
    }
    features
}

/// The value of a feature in row `i`, shifted as the `shifted` scenario
/// says for rows 500..999.
fn feature_value(csv: &Csv, i: usize, column: &str, numeric: bool, shifted: bool) -> FeatureValue {
    if !numeric {
        return FeatureValue::Category(csv.text(i, column).to_owned());
    }
    let value = csv.number(i, column);
    let value = match (shifted && i >= 500, column) {
        // SPEC: "credit_amount ← round_half_away_from_zero(1.5 ×
        // credit_amount) ... `(x as f64 * 1.5).round()` in Rust"
        (true, "credit_amount") => (value * 1.5).round(),
        // SPEC: "duration_months ← duration_months + 12"
        (true, "duration_months") => value + 12.0,
        _ => value,
    };
    FeatureValue::Number(value)
}

fn reference(csv: &Csv, column: &str, numeric: bool) -> Reference {
    // SPEC: "R = rows 0..499"
    if numeric {
        let sample: Vec<f64> = (0..500).map(|i| csv.number(i, column)).collect();
        Reference::Numeric(NumericReference::new(&sample).unwrap())
    } else {
        let sample: Vec<&str> = (0..500).map(|i| csv.text(i, column)).collect();
        Reference::Categorical(CategoricalReference::new(&sample).unwrap())
    }
}

fn counts(value: &serde_json::Value) -> Vec<u64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect()
}

#[track_caller]
fn assert_drift(feature: &FeatureSnapshot, golden: &serde_json::Value, what: &str) {
    let reference = &*feature.reference;
    assert_eq!(
        reference.counts().bins,
        counts(&golden["ref_counts"]),
        "{what}: ref_counts"
    );
    assert_eq!(
        feature.window.bins,
        counts(&golden["cur_counts"]),
        "{what}: cur_counts"
    );
    assert_eq!(feature.window_missing, 0, "{what}");
    let kpis = feature.kpis.unwrap();
    assert_close(
        Some(kpis.psi),
        &golden["psi"],
        DRIFT_TOLERANCE,
        &format!("{what}.psi"),
    );
    assert_close(
        Some(kpis.js),
        &golden["js"],
        DRIFT_TOLERANCE,
        &format!("{what}.js"),
    );
    match reference {
        Reference::Numeric(numeric) => {
            let edges = golden["edges"].as_array().unwrap();
            assert_eq!(
                numeric.edges().len(),
                edges.len(),
                "{what}: edges {:?}",
                numeric.edges()
            );
            for (k, (edge, golden_edge)) in numeric.edges().iter().zip(edges).enumerate() {
                assert_close(
                    Some(*edge),
                    golden_edge,
                    EDGE_TOLERANCE,
                    &format!("{what}.edges[{k}]"),
                );
            }
            assert_eq!(
                numeric.ks_edges().len() as u64,
                golden["ks_edge_count"].as_u64().unwrap(),
                "{what}: ks_edge_count"
            );
            let ks = kpis.ks.unwrap();
            assert_close(
                Some(ks.statistic),
                &golden["ks"],
                DRIFT_TOLERANCE,
                &format!("{what}.ks"),
            );
            assert_close(
                ks.at_edge,
                &golden["ks_at_edge"],
                EDGE_TOLERANCE,
                &format!("{what}.ks_at_edge"),
            );
        }
        Reference::Categorical(categorical) => {
            let mut buckets: Vec<&str> = categorical
                .categories()
                .iter()
                .map(String::as_str)
                .collect();
            buckets.push(OTHER_BUCKET);
            let golden_buckets: Vec<&str> = golden["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_str().unwrap())
                .collect();
            assert_eq!(buckets, golden_buckets, "{what}: buckets");
            assert_eq!(kpis.ks, None, "{what}: no KS for a category");
        }
    }
}

#[test]
fn drift_windows_reproduce_the_golden_values() {
    let (csv, golden) = (Csv::credit(), golden());
    let features = drift_features();
    for scenario in ["plain", "shifted"] {
        let golden = &golden["drift"][scenario];
        assert_eq!(golden["reference_rows"], serde_json::json!([0, 499]));
        assert_eq!(golden["current_rows"], serde_json::json!([500, 999]));
        let shifted = scenario == "shifted";
        let references = features
            .iter()
            .map(|(path, column, numeric)| (path.clone(), reference(&csv, column, *numeric)))
            .collect();
        // A window of 500 fed all 1000 rows holds rows 500..999: the
        // reference rows pass through it and leave again.
        let mut drift = DriftWindow::new(references, 500).unwrap();
        for i in 0..csv.rows.len() {
            let row = Row {
                groups: Vec::new(),
                predicted: Class::Negative,
                label: None,
                features: features
                    .iter()
                    .map(|(_, column, numeric)| feature_value(&csv, i, column, *numeric, shifted))
                    .collect(),
            };
            drift.push(&row).unwrap();
        }
        let snapshot = drift.snapshot();
        assert_eq!((snapshot.rows_in_window, snapshot.rows_total), (500, 1000));
        for (feature, (path, _, _)) in snapshot.features.iter().zip(&features) {
            assert_eq!(&feature.name, path);
            let entry = path.split('.').fold(golden, |value, key| &value[key]);
            assert!(
                entry.is_object(),
                "{scenario}.{path}: not in the golden file"
            );
            assert_drift(feature, entry, &format!("{scenario}.{path}"));
            assert_eq!(feature.cumulative.total(), 1000, "{scenario}.{path}");
        }
    }
}

#[test]
fn drift_from_scratch_equals_the_window() {
    let csv = Csv::credit();
    for shifted in [false, true] {
        for (_, column, numeric) in drift_features() {
            let reference = reference(&csv, column, numeric);
            let current: Vec<FeatureValue> = (500..1000)
                .map(|i| feature_value(&csv, i, column, numeric, shifted))
                .collect();
            let counts = match &reference {
                Reference::Numeric(r) => r.count(current.iter().map(|v| match v {
                    FeatureValue::Number(x) => *x,
                    _ => unreachable!(),
                })),
                Reference::Categorical(r) => r.count(current.iter().map(|v| match v {
                    FeatureValue::Category(c) => c.as_str(),
                    _ => unreachable!(),
                })),
            };
            let mut window =
                DriftWindow::new(vec![(column.to_owned(), reference.clone())], 500).unwrap();
            for value in current {
                window
                    .push(&Row {
                        groups: Vec::new(),
                        predicted: Class::Positive,
                        label: None,
                        features: vec![value],
                    })
                    .unwrap();
            }
            let snapshot = window.snapshot();
            assert_eq!(snapshot.features[0].window, counts, "{column}");
            assert_eq!(
                snapshot.features[0].kpis,
                reference.drift(&counts),
                "{column}"
            );
        }
    }
}
