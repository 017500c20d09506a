//! KPI update cost per row for a model with 2 protected attributes and 10
//! drift features (8 numeric, 2 categorical), in a full window of 10 000
//! rows (each push also evicts the oldest row):
//!
//! - `windows`: the fairness and drift windows' update (the O(1) part);
//! - `extract_and_windows`: the aggregator's whole per-row work for a
//!   one-row JSON answer: parsing both bodies, the selectors, the windows;
//! - `parse_only`: parsing the same two bodies with serde_json, the
//!   baseline the extraction is compared with;
//! - `snapshot`: reading every KPI once (done once per batch of answers).
//!
//! Run: `cargo bench --bench kpi_update`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use govgate::config::{FeatureKind, KpiConfig, KpiField, OutcomeRule, Source};
use govgate::kpi::{
    CategoricalReference, Class, DriftWindow, Exchange, FairnessSpec, FairnessWindow, FeatureValue,
    NumericReference, Reference, Row, Selector, Side, extract,
};
use std::hint::black_box;

/// The gateway binary's allocator (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WINDOW: usize = 10_000;
const NUMERIC: usize = 8;

/// A small deterministic generator (SplitMix64), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const SEXES: [&str; 2] = ["female", "male"];
const AGES: [&str; 3] = ["young", "middle", "older"];
const PURPOSES: [&str; 5] = ["car", "furniture", "radio_tv", "education", "business"];
const HOUSING: [&str; 3] = ["own", "rent", "free"];

fn row(rng: &mut Rng) -> Row {
    let mut features: Vec<FeatureValue> = (0..NUMERIC)
        .map(|i| FeatureValue::Number((rng.unit() * 1000.0 * (i + 1) as f64).round()))
        .collect();
    features.push(FeatureValue::Category(
        PURPOSES[(rng.next() % 5) as usize].into(),
    ));
    features.push(FeatureValue::Category(
        HOUSING[(rng.next() % 3) as usize].into(),
    ));
    Row {
        groups: vec![
            Some(SEXES[(rng.next() % 2) as usize].into()),
            Some(AGES[(rng.next() % 3) as usize].into()),
        ],
        predicted: if rng.unit() < 0.6 {
            Class::Positive
        } else {
            Class::Negative
        },
        label: None,
        features,
    }
}

fn windows(rng: &mut Rng) -> (FairnessWindow, DriftWindow) {
    let fairness = FairnessWindow::new(FairnessSpec {
        attributes: vec!["sex".into(), "age_group".into()],
        window: WINDOW,
        min_group_size: 30,
        max_groups: 50,
    })
    .expect("spec");
    let reference: Vec<Row> = (0..1000).map(|_| row(rng)).collect();
    let mut features = Vec::new();
    for i in 0..NUMERIC {
        let values: Vec<f64> = reference
            .iter()
            .map(|r| match r.features[i] {
                FeatureValue::Number(x) => x,
                _ => 0.0,
            })
            .collect();
        features.push((
            format!("n{i}"),
            Reference::Numeric(NumericReference::new(&values).expect("reference")),
        ));
    }
    for i in NUMERIC..NUMERIC + 2 {
        let values: Vec<String> = reference
            .iter()
            .map(|r| match &r.features[i] {
                FeatureValue::Category(c) => c.clone(),
                _ => String::new(),
            })
            .collect();
        features.push((
            format!("c{i}"),
            Reference::Categorical(CategoricalReference::new(&values).expect("reference")),
        ));
    }
    let mut drift = DriftWindow::new(features, WINDOW).expect("window");
    let mut fairness = fairness;
    // Fill both windows so every push also evicts.
    for _ in 0..WINDOW {
        let r = row(rng);
        fairness.push(&r).expect("row");
        drift.push(&r).expect("row");
    }
    (fairness, drift)
}

fn pointer(side: Side, text: &str) -> Source {
    Source::Body {
        side,
        selector: Selector::pointer(text).expect("pointer"),
    }
}

fn config() -> KpiConfig {
    let field = |name: &str, kind| KpiField {
        name: name.into(),
        source: pointer(Side::Request, &format!("/{name}")),
        kind,
    };
    let mut features: Vec<KpiField> = (0..NUMERIC)
        .map(|i| field(&format!("n{i}"), FeatureKind::Numeric))
        .collect();
    features.push(field("purpose", FeatureKind::Categorical));
    features.push(field("housing", FeatureKind::Categorical));
    KpiConfig {
        window: WINDOW,
        min_group_size: 30,
        max_groups: 50,
        reference_rows: 1000,
        snapshot_every: None,
        outcome: pointer(Side::Response, "/score"),
        outcome_rule: OutcomeRule::Score { threshold: 0.5 },
        attributes: vec![
            field("sex", FeatureKind::Categorical),
            field("age_group", FeatureKind::Categorical),
        ],
        features,
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(7);
    let (mut fairness, mut drift) = windows(&mut rng);
    let rows: Vec<Row> = (0..4096).map(|_| row(&mut rng)).collect();
    let config = config();
    let request = br#"{"sex":"female","age_group":"young","n0":120,"n1":4300,"n2":12,"n3":3,"n4":45,"n5":2,"n6":1,"n7":780,"purpose":"car","housing":"own"}"#;
    let response = br#"{"score":0.734211}"#;
    let exchange = Exchange {
        request,
        response,
        headers: &[],
    };
    assert_eq!(extract(&config, &exchange).rows.len(), 1);

    let mut group = c.benchmark_group("kpi_update");
    let mut i = 0usize;
    group.bench_function("windows", |b| {
        b.iter(|| {
            let r = &rows[i % rows.len()];
            i += 1;
            fairness.push(black_box(r)).expect("row");
            drift.push(black_box(r)).expect("row");
        })
    });
    group.bench_function("extract_and_windows", |b| {
        b.iter(|| {
            let extracted = extract(&config, black_box(&exchange));
            for (_, r) in &extracted.rows {
                fairness.push(r).expect("row");
                drift.push(r).expect("row");
            }
        })
    });
    group.bench_function("parse_only", |b| {
        b.iter(|| {
            let a: serde_json::Value = serde_json::from_slice(black_box(request)).expect("json");
            let b2: serde_json::Value = serde_json::from_slice(black_box(response)).expect("json");
            black_box((a, b2));
        })
    });
    group.bench_function("snapshot", |b| {
        b.iter(|| black_box((fairness.snapshot(), drift.snapshot())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
