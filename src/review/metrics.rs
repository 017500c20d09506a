//! The review families: policy verdicts and evaluation errors, the hold
//! and flag queue, reviewers' verdicts and how long they took. Labels are
//! bounded: configured model names, stages, actions, verdicts, and rule
//! reasons capped at [`MAX_REASON_LABELS`] distinct values.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// Distinct reasons kept as label values; later ones count as `other`.
/// Reasons are policy text and may carry data, so they must be capped.
pub(super) const MAX_REASON_LABELS: usize = 64;

/// Time-to-decision buckets in seconds: from a reviewer at the screen to a
/// day-long timeout.
const DECISION_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14_400.0, 43_200.0, 86_400.0,
];

/// The families; cheap to clone.
#[derive(Clone)]
pub struct ReviewMetrics {
    verdicts: IntCounterVec,
    rule_hits: IntCounterVec,
    eval_errors: IntCounterVec,
    reloads: IntCounterVec,
    pending: IntGaugeVec,
    oldest_pending: GaugeVec,
    decision_time: HistogramVec,
    review_verdicts: IntCounterVec,
    override_ratio: GaugeVec,
    not_opened: IntCounterVec,
    bodies_dropped: IntCounterVec,
    kept_bytes: IntGauge,
    reasons_seen: Arc<Mutex<HashSet<String>>>,
}

impl ReviewMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let verdicts = IntCounterVec::new(
            Opts::new(
                "govgate_policy_verdicts_total",
                "Policy verdicts by model, stage and action.",
            ),
            &["model", "stage", "action"],
        )?;
        let rule_hits = IntCounterVec::new(
            Opts::new(
                "govgate_policy_rule_hits_total",
                "Reasons of deny, hold and flag rules by model (reasons beyond the first 64 distinct ones count as `other`).",
            ),
            &["model", "action", "reason"],
        )?;
        let eval_errors = IntCounterVec::new(
            Opts::new(
                "govgate_policy_eval_errors_total",
                "Policy evaluations that failed; the configured default applied.",
            ),
            &["stage", "default"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "govgate_policy_reloads_total",
                "Policy reloads by result (`loaded`, or `kept` when the new set did not load).",
            ),
            &["result"],
        )?;
        let pending = IntGaugeVec::new(
            Opts::new(
                "govgate_reviews_pending",
                "Reviews waiting for a reviewer, by model and kind (hold or flag).",
            ),
            &["model", "kind"],
        )?;
        let oldest_pending = GaugeVec::new(
            Opts::new(
                "govgate_reviews_oldest_pending_seconds",
                "Age of the oldest pending review by model and kind (0 when none).",
            ),
            &["model", "kind"],
        )?;
        let decision_time = HistogramVec::new(
            HistogramOpts::new(
                "govgate_review_decision_seconds",
                "From a review opened to its verdict (or timeout).",
            )
            .buckets(DECISION_BUCKETS.to_vec()),
            &["model", "kind"],
        )?;
        let review_verdicts = IntCounterVec::new(
            Opts::new(
                "govgate_review_verdicts_total",
                "Review verdicts by model, kind and verdict (approve, reject, override, timeout).",
            ),
            &["model", "kind", "verdict"],
        )?;
        let override_ratio = GaugeVec::new(
            Opts::new(
                "govgate_review_override_ratio",
                "Share of decided holds whose answer a reviewer overrode, since start.",
            ),
            &["model"],
        )?;
        let not_opened = IntCounterVec::new(
            Opts::new(
                "govgate_reviews_not_opened_total",
                "Reviews not opened because the queue was at a bound (`limit`: max_pending or max_kept_bytes): holds refused with 503, flags released without a review.",
            ),
            &["model", "kind", "limit"],
        )?;
        let bodies_dropped = IntCounterVec::new(
            Opts::new(
                "govgate_review_bodies_dropped_total",
                "Flag reviews opened without their request and answer bodies because keeping them would pass review.max_kept_bytes.",
            ),
            &["model"],
        )?;
        let kept_bytes = IntGauge::new(
            "govgate_reviews_kept_bytes",
            "Bytes of request and answer bodies the open and recently decided reviews keep in memory (bounded by review.max_kept_bytes).",
        )?;
        registry.register(Box::new(verdicts.clone()))?;
        registry.register(Box::new(rule_hits.clone()))?;
        registry.register(Box::new(eval_errors.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(pending.clone()))?;
        registry.register(Box::new(oldest_pending.clone()))?;
        registry.register(Box::new(decision_time.clone()))?;
        registry.register(Box::new(review_verdicts.clone()))?;
        registry.register(Box::new(override_ratio.clone()))?;
        registry.register(Box::new(not_opened.clone()))?;
        registry.register(Box::new(bodies_dropped.clone()))?;
        registry.register(Box::new(kept_bytes.clone()))?;
        Ok(Self {
            verdicts,
            rule_hits,
            eval_errors,
            reloads,
            pending,
            oldest_pending,
            decision_time,
            review_verdicts,
            override_ratio,
            not_opened,
            bodies_dropped,
            kept_bytes,
            reasons_seen: Arc::default(),
        })
    }

    /// Counts one stage's verdict and the reasons of its winning action.
    pub fn verdict(&self, model: &str, stage: &str, action: &str, reasons: &[String]) {
        self.verdicts
            .with_label_values(&[model, stage, action])
            .inc();
        for reason in reasons {
            let label = self.reason_label(reason);
            self.rule_hits
                .with_label_values(&[model, action, &label])
                .inc();
        }
    }

    fn reason_label(&self, reason: &str) -> String {
        let mut seen = self
            .reasons_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.contains(reason) {
            return reason.to_owned();
        }
        if seen.len() < MAX_REASON_LABELS {
            seen.insert(reason.to_owned());
            return reason.to_owned();
        }
        "other".to_owned()
    }

    /// Counts a failed evaluation.
    pub fn eval_error(&self, stage: &str, default: &str) {
        self.eval_errors.with_label_values(&[stage, default]).inc();
    }

    /// Counts a reload.
    pub fn reload(&self, loaded: bool) {
        let result = if loaded { "loaded" } else { "kept" };
        self.reloads.with_label_values(&[result]).inc();
    }

    /// Sets the queue gauges for one model and kind.
    pub fn queue(&self, model: &str, kind: &str, pending: usize, oldest_seconds: f64) {
        self.pending
            .with_label_values(&[model, kind])
            .set(pending as i64);
        self.oldest_pending
            .with_label_values(&[model, kind])
            .set(oldest_seconds);
    }

    /// Shows the queue's bound counters at 0 for each configured model,
    /// so a rate over them works before the first review is turned away.
    pub fn expect_models<'a>(&self, models: impl IntoIterator<Item = &'a str>) {
        for model in models {
            for kind in ["hold", "flag"] {
                for limit in ["max_pending", "max_kept_bytes"] {
                    self.not_opened.with_label_values(&[model, kind, limit]);
                }
            }
            self.bodies_dropped.with_label_values(&[model]);
        }
    }

    /// Counts a review of `kind` not opened at the queue's bound `limit`.
    pub fn not_opened(&self, model: &str, kind: &str, limit: &str) {
        self.not_opened
            .with_label_values(&[model, kind, limit])
            .inc();
    }

    /// Sets the bytes of bodies the queue keeps.
    pub fn kept_bytes(&self, bytes: usize) {
        self.kept_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts a flag review opened without its bodies.
    pub fn bodies_dropped(&self, model: &str) {
        self.bodies_dropped.with_label_values(&[model]).inc();
    }

    /// Counts a review's verdict and how long it took.
    pub fn review_decided(&self, model: &str, kind: &str, verdict: &str, seconds: f64) {
        self.decision_time
            .with_label_values(&[model, kind])
            .observe(seconds);
        self.review_verdicts
            .with_label_values(&[model, kind, verdict])
            .inc();
        if kind == "hold" {
            let count = |verdict: &str| {
                self.review_verdicts
                    .with_label_values(&[model, kind, verdict])
                    .get() as f64
            };
            let overridden = count("override");
            let decided = count("approve") + count("reject") + overridden + count("timeout");
            self.override_ratio
                .with_label_values(&[model])
                .set(overridden / decided);
        }
    }
}
