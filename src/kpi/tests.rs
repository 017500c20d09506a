//! Tests of the KPI math and windows: the golden German Credit values
//! (`golden`), windows against from-scratch recomputation (`property`),
//! and edge cases (`edges`). Shared here: the CSV reader and tolerances.

mod edges;
mod golden;
mod property;

use crate::config::{KpiConfig, ModelConfig, OutcomeRule, Source};
use crate::kpi::{Selector, Side};

/// `[models.kpi]` of a model that answers `{"score": x}` (positive from
/// 0.5), a window of 10 rows, without attributes or features: a test sets
/// what it needs on top.
pub(crate) fn score_kpi() -> KpiConfig {
    KpiConfig {
        window: 10,
        min_group_size: 1,
        max_groups: 10,
        reference_rows: 2,
        snapshot_every: None,
        outcome: Source::Body {
            side: Side::Response,
            selector: Selector::pointer("/score").unwrap(),
        },
        outcome_rule: OutcomeRule::Score { threshold: 0.5 },
        attributes: Vec::new(),
        features: Vec::new(),
    }
}

/// The KServe V2 model `scorer` (default version 1) with `kpi`.
pub(crate) fn scorer(kpi: KpiConfig) -> ModelConfig {
    ModelConfig {
        name: "scorer".to_owned(),
        protocol: crate::decision::Protocol::KserveV2,
        path_prefix: None,
        default_version: "1".to_owned(),
        versions: Vec::new(),
        approval: None,
        credential: None,
        http: crate::config::UpstreamHttp::default(),
        kpi: Some(kpi),
        rate_limit: None,
        subject: None,
        retention: None,
    }
}

/// The credit data as committed, parsed with plain std code.
struct Csv {
    header: Vec<&'static str>,
    rows: Vec<Vec<&'static str>>,
}

const CREDIT_CSV: &str = include_str!("../../tests/data/german_credit.csv");

impl Csv {
    fn credit() -> Csv {
        // The file: UTF-8, `\n` line ends, comma separated, no quoting.
        let mut lines = CREDIT_CSV.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.len(), header.len(), "row {i}");
        }
        Csv { header, rows }
    }

    fn column(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    fn text(&self, row: usize, name: &str) -> &'static str {
        self.rows[row][self.column(name)]
    }

    fn number(&self, row: usize, name: &str) -> f64 {
        self.text(row, name).parse().unwrap()
    }
}

/// `|actual - expected| <= tolerance`, with JSON `null` as `None`.
#[track_caller]
fn assert_close(actual: Option<f64>, expected: &serde_json::Value, tolerance: f64, what: &str) {
    match (actual, expected.as_f64()) {
        (None, None) => assert!(expected.is_null(), "{what}: golden {expected} is no number"),
        (Some(a), Some(e)) => assert!(
            (a - e).abs() <= tolerance,
            "{what}: {a} against golden {e} (off by {})",
            (a - e).abs()
        ),
        (a, _) => panic!("{what}: {a:?} against golden {expected}"),
    }
}
