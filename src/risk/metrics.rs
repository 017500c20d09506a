//! The risk families: each indicator's value, whether it is breached, and
//! its breaches, labelled by risk id, indicator (`<index>:<kpi>[:<attribute
//! or feature>]`) and model as the register names it: bounded by the
//! register's limits.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The families; cheap to clone.
#[derive(Clone)]
pub(super) struct RiskMetrics {
    value: GaugeVec,
    breached: IntGaugeVec,
    breaches: IntCounterVec,
}

const LABELS: [&str; 3] = ["risk", "indicator", "model"];

impl RiskMetrics {
    pub(super) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let value = GaugeVec::new(
            Opts::new(
                "govgate_risk_indicator_value",
                "A risk indicator's value at its last evaluation (NaN while unknown).",
            ),
            &LABELS,
        )?;
        let breached = IntGaugeVec::new(
            Opts::new(
                "govgate_risk_indicator_breached",
                "1 while a risk indicator is breached (as the ledger records), else 0.",
            ),
            &LABELS,
        )?;
        let breaches = IntCounterVec::new(
            Opts::new(
                "govgate_risk_indicator_breaches_total",
                "Breaches of a risk indicator recorded since the gateway started.",
            ),
            &LABELS,
        )?;
        registry.register(Box::new(value.clone()))?;
        registry.register(Box::new(breached.clone()))?;
        registry.register(Box::new(breaches.clone()))?;
        Ok(Self {
            value,
            breached,
            breaches,
        })
    }

    /// Every series of one indicator exists from the start.
    pub(super) fn expose(&self, labels: &[&str; 3], breached: bool) {
        self.value.with_label_values(labels).set(f64::NAN);
        self.breached
            .with_label_values(labels)
            .set(i64::from(breached));
        self.breaches.with_label_values(labels);
    }

    /// An indicator no longer watched has no series.
    pub(super) fn forget(&self, labels: &[&str; 3]) {
        let _ = self.value.remove_label_values(labels);
        let _ = self.breached.remove_label_values(labels);
        let _ = self.breaches.remove_label_values(labels);
    }

    pub(super) fn value(&self, labels: &[&str; 3], value: Option<f64>) {
        self.value
            .with_label_values(labels)
            .set(value.unwrap_or(f64::NAN));
    }

    pub(super) fn breached(&self, labels: &[&str; 3]) {
        self.breached.with_label_values(labels).set(1);
        self.breaches.with_label_values(labels).inc();
    }

    pub(super) fn recovered(&self, labels: &[&str; 3]) {
        self.breached.with_label_values(labels).set(0);
    }
}
