//! The task taking up a new register at run time: a breach stays open
//! for the indicator of the same risk, index, model and KPI, waits aside
//! while no indicator matches it (taken up again if one comes back, as at
//! a restart), and the series of indicators no longer watched go.

use super::*;
use crate::config::{Direction, Risk, RiskKpi};
use crate::decision::EntrySignatures;
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::SequencerConfig;

fn indicator(kpi: RiskKpi) -> Indicator {
    Indicator {
        kpi,
        threshold: 0.1,
        direction: Direction::Above,
        for_secs: 0,
        min_count: 10,
    }
}

fn parity() -> Indicator {
    indicator(RiskKpi::DemographicParityDifference {
        attribute: "sex".to_owned(),
    })
}

fn register(indicators: Vec<Indicator>) -> RiskRegister {
    RiskRegister {
        risks: vec![Risk {
            id: "bias".to_owned(),
            title: "Bias".to_owned(),
            owner: "cro".to_owned(),
            models: vec![RiskModel {
                model: "credit".to_owned(),
                version: None,
            }],
            controls: Vec::new(),
            indicators,
        }],
        eval_every: Duration::from_secs(1),
        window: Duration::from_secs(2),
    }
}

fn key(risk: &str, indicator: usize) -> IndicatorKey {
    IndicatorKey {
        risk: risk.to_owned(),
        indicator,
        model: "credit".to_owned(),
    }
}

fn open(seq: u64, kpi: &str) -> OpenBreach {
    OpenBreach {
        seq,
        unix_seconds: 0.0,
        kpi: kpi.to_owned(),
    }
}

/// The `govgate_risk_indicator_breached` series: (indicator label, value).
fn breached(metrics: &crate::metrics::Metrics) -> Vec<(String, i64)> {
    metrics
        .registry()
        .gather()
        .iter()
        .filter(|family| family.name() == "govgate_risk_indicator_breached")
        .flat_map(|family| family.get_metric().to_vec())
        .map(|metric| {
            let label = metric
                .get_label()
                .iter()
                .find(|l| l.name() == "indicator")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            (label, metric.get_gauge().get_value() as i64)
        })
        .collect()
}

#[tokio::test]
async fn open_breaches_follow_their_indicator_through_register_changes() {
    let store = Arc::new(MemStore::new());
    let (ledger, _writer) = Ledger::open(
        store,
        SequencerConfig::for_tests(
            "test.example/risk-task",
            &ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
            EntrySignatures::Off,
            16,
            4,
        ),
    )
    .unwrap();
    let metrics = crate::metrics::Metrics::new();
    let first = register(vec![parity(), indicator(RiskKpi::ErrorRate)]);
    let (_tx, rx) = watch::channel(Arc::new(first.clone()));
    let mut recorded = Recorded::default();
    recorded
        .open
        .insert(key("bias", 0), open(5, "demographic_parity_difference:sex"));
    recorded.open.insert(key("gone", 0), open(6, "error_rate"));
    let mut task = RiskTask::new(rx, recorded, ledger, &metrics, None, Scope::Fleet).unwrap();
    assert_eq!(task.watched.len(), 2);
    assert_eq!(task.watched[0].open.as_ref().map(|o| o.seq), Some(5));
    assert!(task.unwatched.contains_key(&key("gone", 0)));
    assert_eq!(
        breached(&metrics),
        [
            ("0:demographic_parity_difference:sex".to_owned(), 1),
            ("1:error_rate".to_owned(), 0)
        ]
    );

    // Index 0 is now another KPI: the breach waits aside, its series go.
    let second = register(vec![indicator(RiskKpi::LatencyP95Ms)]);
    task.watch(&second).unwrap();
    assert_eq!(task.watched.len(), 1);
    assert_eq!(task.watched[0].open, None);
    assert_eq!(task.unwatched[&key("bias", 0)].seq, 5);
    assert_eq!(breached(&metrics), [("0:latency_p95_ms".to_owned(), 0)]);
    assert_eq!(task.register_sha256, register_sha256(&second).unwrap());

    // The parity indicator back at index 0, with another threshold: the
    // breach is its again.
    let mut third = register(vec![parity()]);
    third.risks[0].indicators[0].threshold = 0.2;
    task.watch(&third).unwrap();
    assert_eq!(task.watched[0].open.as_ref().map(|o| o.seq), Some(5));
    assert!(!task.unwatched.contains_key(&key("bias", 0)));
    assert_eq!(
        breached(&metrics),
        [("0:demographic_parity_difference:sex".to_owned(), 1)]
    );
}
