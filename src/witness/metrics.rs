//! The witnessing metric families; the `witness` label takes the configured
//! names only (at most 32), `result` a fixed set.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// The families, registered once at start.
#[derive(Clone)]
pub(crate) struct WitnessMetrics {
    cosigned_size: IntGaugeVec,
    cosigned_time: IntGaugeVec,
    submissions: IntCounterVec,
    served_size: IntGauge,
}

/// How one submission to one witness ended (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A cosignature that verifies was kept.
    Cosigned,
    /// Nothing sent: the witness already cosigned this checkpoint.
    Unchanged,
    /// 409 with a size the log cannot prove from (larger than the log).
    Conflict,
    /// Any other refusal (400, 403, 404, 422, 5xx...).
    Refused,
    /// No answer: unreachable or timed out.
    Unreachable,
    /// 200 without a valid cosignature from the configured key.
    InvalidCosignature,
    /// The gateway could not build the request (store read failed).
    Failed,
}

impl Outcome {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Cosigned => "cosigned",
            Outcome::Unchanged => "unchanged",
            Outcome::Conflict => "conflict",
            Outcome::Refused => "refused",
            Outcome::Unreachable => "unreachable",
            Outcome::InvalidCosignature => "invalid_cosignature",
            Outcome::Failed => "failed",
        }
    }
}

impl WitnessMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            cosigned_size: IntGaugeVec::new(
                Opts::new(
                    "govgate_witness_cosigned_size_entries",
                    "Tree size of the latest checkpoint each witness cosigned.",
                ),
                &["witness"],
            )?,
            cosigned_time: IntGaugeVec::new(
                Opts::new(
                    "govgate_witness_cosigned_timestamp_seconds",
                    "Time (Unix seconds) of each witness's latest cosignature, as it signed it.",
                ),
                &["witness"],
            )?,
            submissions: IntCounterVec::new(
                Opts::new(
                    "govgate_witness_submissions_total",
                    "Checkpoint submissions to witnesses (add-checkpoint), by witness and result.",
                ),
                &["witness", "result"],
            )?,
            served_size: IntGauge::new(
                "govgate_witness_served_size_entries",
                "Tree size of the cosigned checkpoint served (0: none yet).",
            )?,
        };
        registry.register(Box::new(metrics.cosigned_size.clone()))?;
        registry.register(Box::new(metrics.cosigned_time.clone()))?;
        registry.register(Box::new(metrics.submissions.clone()))?;
        registry.register(Box::new(metrics.served_size.clone()))?;
        Ok(metrics)
    }

    pub(crate) fn cosigned(&self, witness: &str, size: u64, time: u64) {
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.cosigned_size
            .with_label_values(&[witness])
            .set(as_i64(size));
        self.cosigned_time
            .with_label_values(&[witness])
            .set(as_i64(time));
    }

    pub(crate) fn outcome(&self, witness: &str, outcome: Outcome) {
        self.submissions
            .with_label_values(&[witness, outcome.label()])
            .inc();
    }

    pub(crate) fn served(&self, size: u64) {
        self.served_size
            .set(i64::try_from(size).unwrap_or(i64::MAX));
    }
}
